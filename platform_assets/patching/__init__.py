"""The weekly rolling patch: `node_patches` (plan, then one node at a time), the `patch_nodes`
and `upgrade_k3s` jobs, the `weekly_patches` schedule, and node health as data
(platform_assets/node_health). See docs/patching.md.

`build_defs(settings, inv)` registers them; they use the platform's `inventory_file`, `ssh`,
`kubernetes` and `k3s_token` and the data assets' `warehouse` and `object_store`.
`with_patch_gate(defs)` gives the patch gate what only the whole code location knows: its
blocking checks.
"""

import dagster as dg

from platform_assets.inventory import Inventory
from resources.settings import Settings

# The jobs that cordon, drain and reboot nodes one by one: the landing sensor starts no
# curation while one of them is in progress (sensors/landing.py).
ROLLING_PATCH_JOBS = ("patch_nodes", "upgrade_k3s")


def build_defs(settings: Settings, inv: Inventory) -> dg.Definitions:
    from platform_assets import node_health
    from platform_assets.patching.assets import node_patches, patch_nodes, upgrade_k3s
    from platform_assets.patching.gates import PatchGate
    from sensors.ownership import schedule_status, with_owner
    from sensors.patches import node_health_job, node_health_schedule, weekly_patches_schedule

    # Running only on the cluster profile where this deployment owns the schedules: a laptop
    # never patches the cluster on its own.
    running = settings.is_cluster and schedule_status() == dg.DefaultScheduleStatus.RUNNING
    return dg.Definitions.merge(
        node_health.build_defs(),
        dg.Definitions(
            assets=[node_patches],
            jobs=[patch_nodes, upgrade_k3s, node_health_job],
            schedules=with_owner(
                [
                    weekly_patches_schedule(inv, running=running),
                    node_health_schedule(running=running),
                ]
            ),
            # Replaced by `with_patch_gate` once the whole code location is known.
            resources={"patch_gate": PatchGate()},
        ),
    )


def with_patch_gate(defs: dg.Definitions) -> dg.Definitions:
    """`defs` with the `patch_gate` resource filled in from them."""
    from platform_assets.patching.gates import PatchGate

    graph = defs.resolve_asset_graph()
    blocking = sorted(
        f"{key.asset_key.to_user_string()}:{key.name}"
        for key in graph.asset_check_keys
        if graph.get_check_spec(key).blocking
    )
    gate = PatchGate(blocking_checks=blocking)
    return dg.Definitions(
        assets=defs.assets,
        asset_checks=defs.asset_checks,
        jobs=defs.jobs,
        schedules=defs.schedules,
        sensors=defs.sensors,
        resources={**(defs.resources or {}), "patch_gate": gate},
        executor=defs.executor,
        loggers=defs.loggers,
        metadata=defs.metadata,
    )
