"""Reading the inventory file: a hardened YAML loader, pydantic's errors as `<file>: <field
path>: <reason>` lines, then the checks of the plan as a whole. Every problem is reported at
once as `InventoryError`."""

from collections.abc import Iterable
from pathlib import Path

import yaml
from pydantic import ValidationError

from platform_assets.inventory.checks import check_plan
from platform_assets.inventory.models import Inventory

# An inventory of a few Pis is a few KB; a bigger file (or YAML aliases expanding to more
# values) is a mistake or an attack, and must not hang the code location's load.
MAX_FILE_BYTES = 1 << 20
MAX_VALUES = 100_000


class InventoryError(ValueError):
    """The inventory cannot work. One line per problem: `<file>: <field path>: <reason>`."""

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = problems
        lines = [
            f"{source}: {path}: {reason}" if path else f"{source}: {reason}"
            for path, reason in problems
        ]
        super().__init__("\n".join(lines))


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (YAML would keep the last one
    silently, e.g. a node with two `address:` lines). Merge keys (`<<: *defaults`) still work:
    a key written next to them overrides the merged one, as YAML says."""

    def construct_mapping(self, node, deep=False):
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    "a key must be a plain value, not a list or mapping",
                    key_node.start_mark,
                ) from None
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(exc: yaml.YAMLError, text: str) -> tuple[str, str]:
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        where = f"line {mark.line + 1}, column {mark.column + 1}"
    elif isinstance(exc, yaml.reader.ReaderError):
        # The reader reports a character offset only.
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        where = f"line {line}, column {column}"
        char = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return where, f"not valid YAML: character #x{char:04x} is not allowed in YAML text"
    else:
        where = ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    return where, f"not valid YAML: {context + ': ' if context else ''}{problem}"


def _count_values(data: object, limit: int) -> int:
    """Values in the parsed document, aliases counted each time they are used; stops at limit."""
    count, stack = 0, [data]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def load_inventory(path: str | Path) -> Inventory:
    """Reads, parses and validates the inventory file; raises `InventoryError` on any problem.

    Relative SSH key and known_hosts paths are resolved against the file's folder.
    """
    path = Path(path)
    source = path.name
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise InventoryError(
            str(path),
            [
                (
                    "",
                    "file not found; copy inventory.example.yaml and set "
                    "PICLUSTER_INVENTORY to its path",
                )
            ],
        ) from None
    except OSError as exc:
        raise InventoryError(str(path), [("", f"cannot be read: {exc.strerror}")]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise InventoryError(
            source, [("", f"is larger than {MAX_FILE_BYTES // 1024} KiB; not an inventory")]
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InventoryError(
            source,
            [
                (
                    f"line {line}",
                    f"is not UTF-8 text (byte 0x{raw[exc.start]:02x}); save it as UTF-8",
                )
            ],
        ) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise InventoryError(source, [_yaml_problem(exc, text)]) from None
    except RecursionError:
        raise InventoryError(source, [("", "not valid YAML: nested too deeply")]) from None
    if _count_values(data, MAX_VALUES) > MAX_VALUES:
        raise InventoryError(
            source,
            [("", f"holds more than {MAX_VALUES} values once YAML aliases are expanded")],
        )
    inventory = parse_inventory(data, source=source)
    return _resolve_paths(inventory, path.parent)


def parse_inventory(data: object, source: str = "inventory.yaml") -> Inventory:
    """Validates an already-parsed mapping (as YAML gives it)."""
    if not isinstance(data, dict):
        raise InventoryError(source, [("", "expected a mapping with nodes, network, k3s, ssh")])
    if "workloads" in data:
        # Earlier inventories planned memory by hand; a silent "unknown key" would not say why.
        raise InventoryError(
            source,
            [
                (
                    "workloads",
                    "is no longer read: memory is planned from the releases' own limits (the "
                    "capacity_plan asset); remove this list",
                )
            ],
        )
    try:
        inventory = Inventory.model_validate(data)
    except ValidationError as exc:
        raise InventoryError(source, [_pydantic_problem(e) for e in exc.errors()]) from None
    problems = list(check_plan(inventory))
    if problems:
        raise InventoryError(source, problems)
    return inventory


def _resolve_paths(inventory: Inventory, base: Path) -> Inventory:
    ssh = inventory.ssh
    resolved = {
        key: str((base / Path(value).expanduser()).resolve())
        if not Path(value).expanduser().is_absolute()
        else str(Path(value).expanduser())
        for key, value in (
            ("private_key_path", ssh.private_key_path),
            ("known_hosts_path", ssh.known_hosts_path),
        )
    }
    return inventory.model_copy(update={"ssh": ssh.model_copy(update=resolved)})


def _field_path(loc: Iterable[object]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _got(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# Fields whose value may be a secret pasted in the wrong place: never repeated in a message.
_SECRET_FIELDS = ("k3s.token_env", "ssh.private_key_path")


def _pydantic_problem(error: dict) -> tuple[str, str]:
    raw_loc = list(error["loc"])
    kind = error["type"]
    if "[key]" in raw_loc or kind == "invalid_key":
        # A key that is not text, e.g. `1: x` or an unquoted `true:` label key.
        key = raw_loc[raw_loc.index("[key]") - 1] if "[key]" in raw_loc else raw_loc[-1]
        parent = raw_loc[: raw_loc.index("[key]") - 1] if "[key]" in raw_loc else raw_loc[:-1]
        loc = [p for p in parent if not (isinstance(p, str) and "[" in p)]
        return _field_path(loc), f"key {key!r} must be text; put it in quotes"
    # Drop pydantic's internal location parts (e.g. the 'function-after' wrapper names).
    loc = [p for p in raw_loc if not (isinstance(p, str) and "[" in p)]
    path = _field_path(loc)
    value = error.get("input")
    got = "" if path.startswith(_SECRET_FIELDS) else f" (got {_got(value)})"
    if kind == "value_error":
        message = str(error["ctx"]["error"]) if "ctx" in error else error["msg"]
    elif kind == "missing":
        message = "is required"
    elif kind == "extra_forbidden":
        # The value is not repeated: a misplaced key may hold a secret (`token: ...`).
        message = "unknown key; check the spelling and the indentation"
    elif kind == "literal_error":
        message = f"{_got(value)} is not allowed; {error['msg'].lower()}"
    elif kind == "string_type" and isinstance(value, bool | int | float) and got:
        message = (
            f"must be text, but YAML read {_got(value)} as "
            f"{'true/false' if isinstance(value, bool) else 'a number'}; put it in quotes"
        )
    elif kind in ("int_type", "float_type", "bool_type") and isinstance(value, str):
        expected = {"int_type": "a number", "float_type": "a number", "bool_type": "true or false"}
        message = f"must be {expected[kind]} without quotes{got}"
    elif kind in ("dict_type", "model_type", "model_attributes_type"):
        message = f"expected a mapping (key: value lines){got}"
    elif kind == "list_type":
        message = f"expected a list, e.g. [a, b] or '- ' lines{got}"
    else:
        message = f"{error['msg']}{got}"
    return path, message
