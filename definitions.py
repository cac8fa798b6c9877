"""The code location: one Definitions for the active profile (`PICLUSTER_PROFILE`).

The UI, the daemon and the CLI all load this module (see workspace.yaml and pyproject's
[tool.dg]). Settings are validated here, at load, so a wrong deployment fails before any run.
Each package contributes its own assets, checks, jobs, sensors and resources.
"""

import dagster as dg

import data_assets
import platform_assets
import sensors
from platform_assets import backups, handover, patching, releases
from platform_assets.inventory import load_inventory
from resources.settings import load_settings


def build_definitions() -> dg.Definitions:
    settings = load_settings()
    inventory = load_inventory(settings.inventory_path)
    return patching.with_patch_gate(
        releases.with_lineage(
            dg.Definitions.merge(
                platform_assets.build_defs(settings),
                releases.build_defs(settings),
                handover.build_defs(),
                data_assets.build_defs(settings),
                backups.build_defs(settings, timezone=inventory.timezone),
                sensors.build_defs(settings),
                # Every run in one process, materializations from the UI included: a process per
                # step costs seconds of start-up and ~150 MB each on a Pi, and one process is what
                # lets a run keep one SSH connection per host across the infrastructure steps.
                dg.Definitions(executor=dg.in_process_executor),
                patching.build_defs(settings, inventory),
            )
        )
    )


defs = build_definitions()
