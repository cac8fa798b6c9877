"""What goes down with a node or a release, read from the code location's asset graph.

    python -m platform_assets.blast_radius pi-agent-2     # a node (inventory name)
    python -m platform_assets.blast_radius object_store   # a release

A release is down when a release it needs is down, or when every node one of its workloads may
run on is down (its `picluster/placement` metadata: MetalLB, which may run anywhere, survives one
lost node; Trino's worker, pinned to one node, does not). A data asset is down when anything it
depends on is down. Only the graph's own edges and metadata are read: no second list.
"""

import sys
from dataclasses import dataclass

import dagster as dg

KIND_TAG = "picluster/kind"
PLACEMENT = "picluster/placement"


@dataclass(frozen=True)
class BlastRadius:
    start: dg.AssetKey
    releases: tuple[dg.AssetKey, ...]
    data_assets: tuple[dg.AssetKey, ...]


def _kind(graph, key: dg.AssetKey) -> str:
    return graph.get(key).tags.get(KIND_TAG, "")


def _placement(graph, key: dg.AssetKey) -> dict[str, list[str]]:
    value = graph.get(key).metadata.get(PLACEMENT)
    return dict(getattr(value, "value", value) or {})


def _descendants(graph, start: dg.AssetKey) -> set[dg.AssetKey]:
    seen: set[dg.AssetKey] = set()
    todo = [start]
    while todo:
        for child in graph.get(todo.pop()).child_keys:
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def blast_radius(graph, start: dg.AssetKey) -> BlastRadius:
    """Releases and data assets taken down when `start` (a node or release asset) is down."""
    down = {start}
    nodes_down = {start.path[-1]} if _kind(graph, start) == "node" else set()
    candidates = _descendants(graph, start)
    changed = True
    while changed:  # a fixed point: the graph is small and acyclic
        changed = False
        for key in candidates - down:
            parents = graph.get(key).parent_keys
            if _kind(graph, key) == "release":
                hard = any(p in down and _kind(graph, p) == "release" for p in parents)
                stranded = any(
                    nodes and all(n in nodes_down for n in nodes)
                    for nodes in _placement(graph, key).values()
                )
                is_down = hard or stranded
            else:
                is_down = any(p in down for p in parents if _kind(graph, p) != "node")
            if is_down:
                down.add(key)
                changed = True
    hit = sorted(down - {start}, key=lambda k: k.to_user_string())
    return BlastRadius(
        start,
        tuple(k for k in hit if _kind(graph, k) == "release"),
        # The hand-over check (kind `handover`) fails with its release, but holds no data.
        tuple(k for k in hit if _kind(graph, k) not in ("release", "node", "handover")),
    )


def markdown(radius: BlastRadius) -> str:
    def names(keys):
        return ", ".join(k.to_user_string() for k in keys) or "none"

    return (
        f"- releases down: {names(radius.releases)}\n"
        f"- data assets down: {names(radius.data_assets)}"
    )


def _start_key(graph, name: str) -> dg.AssetKey:
    for key in (dg.AssetKey(["node", name]), dg.AssetKey(name)):
        if graph.has(key) and _kind(graph, key) in ("node", "release"):
            return key
    nodes = sorted(k.path[-1] for k in graph.get_all_asset_keys() if _kind(graph, k) == "node")
    releases = sorted(
        k.to_user_string() for k in graph.get_all_asset_keys() if _kind(graph, k) == "release"
    )
    raise SystemExit(
        f"blast_radius: {name!r} is neither a node ({', '.join(nodes)}) nor a release "
        f"({', '.join(releases)})"
    )


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: python -m platform_assets.blast_radius <node|release>", file=sys.stderr)
        return 2
    from definitions import defs

    graph = defs.resolve_asset_graph()
    radius = blast_radius(graph, _start_key(graph, argv[0]))
    print(f"{argv[0]} down takes down:")
    print(markdown(radius))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
