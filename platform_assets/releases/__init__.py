"""The platform's releases on K3s (HelmCharts through K3s's helm-controller), the capacity plan,
the nodes as assets, and the lineage from node to release to table.

`build_defs(settings)` registers the release assets, `capacity_plan`, the node assets and the
`rollback_release` job; they use the `inventory_file` and `kubernetes` resources the platform
package registers. `with_lineage(defs)` is applied to the merged Definitions: each data asset
depends on the releases behind the resources it uses, and the release and node assets carry
their blast radius. Nothing here imports the Kubernetes client at load.
"""

import dagster as dg

from resources.settings import Settings

# The releases behind each resource a data asset may require (the cluster profile's backends):
# the lineage is derived from what an asset really uses, so a new data asset gets it too.
RESOURCE_RELEASES = {
    "object_store": ("object_store",),
    "ledger": ("postgres",),
    # The nightly dumps read every platform database on the PostgreSQL cluster.
    "platform_postgres": ("postgres",),
    "warehouse": ("trino", "metastore", "object_store"),
}


def build_defs(settings: Settings) -> dg.Definitions:
    from platform_assets.inventory import load_inventory
    from platform_assets.releases.assets import (
        apply_releases,
        build_release_assets,
        capacity_plan,
        node_specs,
        rollback_release,
    )

    inv = load_inventory(settings.inventory_path)
    return dg.Definitions(
        assets=[capacity_plan, build_release_assets(inv), *node_specs(inv)],
        jobs=[apply_releases, rollback_release],
    )


def _with_assets(defs: dg.Definitions, assets: list) -> dg.Definitions:
    return dg.Definitions(
        assets=assets,
        asset_checks=defs.asset_checks,
        jobs=defs.jobs,
        schedules=defs.schedules,
        sensors=defs.sensors,
        resources=defs.resources,
        executor=defs.executor,
        loggers=defs.loggers,
        metadata=defs.metadata,
    )


def with_lineage(defs: dg.Definitions) -> dg.Definitions:
    """`defs` with data assets depending on the releases they use, and the blast radius of
    every node and release as their metadata (computed from the resulting asset graph)."""
    from platform_assets import blast_radius

    release_keys = {
        key
        for a in defs.assets or []
        if isinstance(a, dg.AssetsDefinition)
        for key, spec in ((s.key, s) for s in a.specs)
        if spec.tags.get("picluster/kind") == "release"
    }

    def add_deps(asset):
        if not isinstance(asset, dg.AssetsDefinition):
            return asset
        wanted = [
            dg.AssetKey(r)
            for res in sorted(asset.required_resource_keys)
            for r in RESOURCE_RELEASES.get(res, ())
            if dg.AssetKey(r) in release_keys
        ]
        if not wanted:
            return asset
        return dg.map_asset_specs(
            lambda spec: spec.merge_attributes(
                deps=[k for k in dict.fromkeys(wanted) if k not in {d.asset_key for d in spec.deps}]
            ),
            [asset],
        )[0]

    linked = _with_assets(defs, [add_deps(a) for a in defs.assets or []])
    graph = linked.resolve_asset_graph()

    def add_radius(asset):
        def annotate(spec: dg.AssetSpec) -> dg.AssetSpec:
            if spec.tags.get("picluster/kind") not in ("node", "release"):
                return spec
            hit = blast_radius.blast_radius(graph, spec.key)
            return spec.merge_attributes(
                metadata={"blast_radius": dg.MetadataValue.md(blast_radius.markdown(hit))}
            )

        return dg.map_asset_specs(annotate, [asset])[0]

    return _with_assets(linked, [add_radius(a) for a in linked.assets or []])
