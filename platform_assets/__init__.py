"""Infrastructure as assets: the inventory, node preflight and prep, reboots, K3s, kubeconfig.

Each step keeps its facts, plan and apply side by side in its own package (`preflight/`,
`node_prep/`, `node_reboot/`, `k3s/`, `kubeconfig/`) on the shared engine in `core/`; `assets.py`
turns them into Dagster assets and the `apply_cluster` job; `inventory/` reads and checks the
inventory file.

`build_defs(settings)` reads the inventory once at load (a broken inventory stops the code
location with a message naming the file and field) and registers the resources the platform
assets use: `inventory_file`, `ssh`, `k3s_token`, `kubernetes`.
"""

import os

import dagster as dg

from resources.settings import Settings


def build_defs(settings: Settings) -> dg.Definitions:
    from platform_assets.assets import (
        PLATFORM_ASSETS,
        apply_cluster,
        cluster_ready,
        platform_resources,
    )
    from platform_assets.inventory import load_inventory
    from platform_assets.resources import ssh_resource

    inv = load_inventory(settings.inventory_path)
    # The token is a secret: only its variable's name is known here; Dagster resolves it at run
    # time. Unset (e.g. on a laptop planning the example), plans work and applying K3s refuses.
    token_env = inv.k3s.token_env
    token = dg.EnvVar(token_env) if os.environ.get(token_env) else ""
    return dg.Definitions(
        assets=PLATFORM_ASSETS,
        asset_checks=[cluster_ready],
        jobs=[apply_cluster],
        resources=platform_resources(
            settings.inventory_path,
            ssh_resource(inv),
            kubeconfig_path=settings.kubeconfig_for_resource,
            token=token,
            allow_remote_nodes=settings.is_cluster,
        ),
    )
