"""Sensors and schedules: the landing-files sensor, the asset-check metrics pushed to the
monitoring release (more to come: backups, patches)."""

import dagster as dg

from resources.settings import Settings
from sensors.asset_check_metrics import PushgatewayResource, asset_check_metrics, pushgateway_url
from sensors.landing import curate_landing_batch, landing_files
from sensors.ownership import with_owner


def build_defs(settings: Settings) -> dg.Definitions:
    # The sensor's resources (`object_store`, `ledger`) are registered by `data_assets`.
    return dg.Definitions(
        jobs=[curate_landing_batch],
        sensors=with_owner([landing_files, asset_check_metrics]),
        resources={"pushgateway": PushgatewayResource(url=pushgateway_url())},
    )
