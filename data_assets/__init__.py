"""Sensor data: simulator, landing -> curated Parquet + quarantine, warehouse tables, checks.

This package registers the three resources the data assets share: `object_store` and `ledger`
(ours) and `warehouse` (from `resources.warehouse`).
"""

import dagster as dg

from data_assets import warehouse_tables
from data_assets.curated import curated_sensor_readings
from data_assets.simulator import mock_sensor_uploads
from resources.ledger import ledger_for
from resources.object_store import object_store_for
from resources.settings import Settings
from resources.warehouse import warehouse_for


def build_defs(settings: Settings) -> dg.Definitions:
    # The mock devices feed the local demo and CI. On the cluster the landing bucket holds real
    # uploads, so one click must not mix mock readings into them (the simulate CLI still can,
    # deliberately, for an end-to-end test).
    assets = [curated_sensor_readings]
    if not settings.is_cluster:
        assets.append(mock_sensor_uploads)
    pipeline = dg.Definitions(
        assets=assets,
        resources={
            "object_store": object_store_for(settings),
            "ledger": ledger_for(settings),
            "warehouse": warehouse_for(settings),
        },
    )
    return dg.Definitions.merge(pipeline, warehouse_tables.build_defs(settings))
