"""The code location: one Definitions for the active profile (`PICLUSTER_PROFILE`).

The UI, the daemon and the CLI all load this module (see workspace.yaml and pyproject's
[tool.dg]). Settings are validated here, at load, so a wrong deployment fails before any run.
Each package contributes its own assets, checks, jobs, sensors and resources.
"""

import dagster as dg

import data_assets
import platform_assets
import platform_assets.releases
import sensors
from resources.settings import load_settings


def build_definitions() -> dg.Definitions:
    settings = load_settings()
    return platform_assets.releases.with_lineage(
        dg.Definitions.merge(
            platform_assets.build_defs(settings),
            platform_assets.releases.build_defs(settings),
            data_assets.build_defs(settings),
            sensors.build_defs(settings),
        )
    )


defs = build_definitions()
