"""`python -m platform_assets.inventory FILE...` checks files; `--schema` prints the JSON schema
(`inventory.schema.json` is generated from it, so editors check the file as it is typed)."""

import json
import sys

from platform_assets.inventory.loader import InventoryError, load_inventory
from platform_assets.inventory.models import Inventory


def json_schema() -> dict:
    schema = Inventory.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "PiClusterOps inventory"
    return schema


def main(argv: list[str]) -> int:
    """`python -m platform_assets.inventory FILE...` checks files; `--schema` prints the schema."""
    if argv == ["--schema"]:
        print(json.dumps(json_schema(), indent=2))
        return 0
    if not argv or any(arg.startswith("-") for arg in argv):
        print("usage: python -m platform_assets.inventory FILE... | --schema", file=sys.stderr)
        return 2
    failed = False
    for arg in argv:
        try:
            inv = load_inventory(arg)
        except InventoryError as exc:
            print(exc, file=sys.stderr)
            failed = True
            continue
        print(f"{arg}: ok ({len(inv.nodes)} nodes)")
    return 1 if failed else 0
