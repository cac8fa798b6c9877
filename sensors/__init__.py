"""Sensors and schedules: the landing-files sensor (more to come: backups, patches)."""

import dagster as dg

from resources.settings import Settings
from sensors.landing import curate_landing_batch, landing_files
from sensors.ownership import with_owner


def build_defs(settings: Settings) -> dg.Definitions:
    # The sensor's resources (`object_store`, `ledger`) are registered by `data_assets`.
    return dg.Definitions(jobs=[curate_landing_batch], sensors=with_owner([landing_files]))
