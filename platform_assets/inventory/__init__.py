"""The inventory: the nodes, the network plan, K3s and SSH settings, validated before anything runs.

`load_inventory(path)` parses the YAML file into `Inventory` (pydantic: types, ranges, unknown
keys, models.py) and then checks the plan as a whole (checks.py: addresses inside the subnet, no
overlaps between the LAN, the MetalLB pool, the pod and service networks, one K3s server). Memory
per node is not the inventory's job: the `capacity_plan` asset sums the releases' own limits
(platform_assets/releases/capacity.py). Every problem is reported at once as `InventoryError`,
one line per problem, each naming the file and the field path:
`inventory.yaml: nodes[2].address: 192.168.0.300 is not an IPv4 address`.

`inventory.schema.json` is generated from the models (`python -m platform_assets.inventory
--schema`, cli.py), so editors can check the file as it is typed.
"""

from platform_assets.inventory.cli import json_schema, main
from platform_assets.inventory.loader import InventoryError, load_inventory, parse_inventory
from platform_assets.inventory.models import Inventory, Node

__all__ = [
    "Inventory",
    "InventoryError",
    "Node",
    "json_schema",
    "load_inventory",
    "main",
    "parse_inventory",
]
