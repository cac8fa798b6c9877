"""Node health as data: the `node_health` asset (facts.py, assets.py).

`build_defs()` registers the asset; it uses the `inventory_file` and `ssh` resources the
platform package registers and the `object_store` and `warehouse` of `data_assets`.
"""

import dagster as dg


def build_defs() -> dg.Definitions:
    from platform_assets.node_health.assets import node_health_asset

    return dg.Definitions(assets=[node_health_asset])
