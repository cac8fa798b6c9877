"""Infrastructure as assets: the inventory, node preflight and prep, reboots, K3s, kubeconfig.

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
    from resources.ssh import SshResource

    inv = load_inventory(settings.inventory_path)
    # The token is a secret: only its variable's name is known here; Dagster resolves it at run
    # time. Unset (e.g. on a laptop planning the example), plans work and applying K3s refuses.
    token_env = inv.k3s.token_env
    token = dg.EnvVar(token_env) if os.environ.get(token_env) else ""
    ssh = SshResource(
        known_hosts_path=inv.ssh.known_hosts_path,
        private_key_path=inv.ssh.private_key_path,
        connect_timeout_s=inv.ssh.connect_timeout_s,
        command_timeout_s=inv.ssh.command_timeout_s,
        max_parallel=inv.ssh.max_parallel,
    )
    return dg.Definitions(
        assets=PLATFORM_ASSETS,
        asset_checks=[cluster_ready],
        jobs=[apply_cluster],
        resources=platform_resources(
            settings.inventory_path,
            ssh,
            kubeconfig_path=settings.kubeconfig_for_resource,
            token=token,
            allow_remote_nodes=settings.is_cluster,
        ),
    )
