"""`node_health`: each Pi's SoC temperature, throttling flags and disk use, read over SSH, kept
as Parquet in the warehouse beside the sensor readings, one file per reading run and day.

    warehouse/node_health/dt=YYYY-MM-DD/<run id>.parquet

The day is the UTC day of the reading, like the sensor readings'. The weekly patches' gate reads
the same facts with the same limits (`health_problems`) just before it disrupts a node.
"""

import io
from datetime import UTC, datetime

import dagster as dg

from data_assets.partitions import daily_partitions
from platform_assets.core.engine import for_each_node, may_contact, ssh_targets
from platform_assets.core.facts import read_facts
from platform_assets.node_health.facts import (
    HEALTH_FACTS,
    THROTTLE_FLAGS,
    HealthLimits,
    NodeHealth,
    health_problems,
    node_health,
)
from platform_assets.resources import InventoryFile
from resources.object_store import ObjectStore
from resources.ssh import NodeError, SshResource
from resources.warehouse import ExternalTable, Warehouse, check_day

# Beside the curated readings (data_assets/layout.py: `warehouse/sensor_readings/`).
NODE_HEALTH_PREFIX = "warehouse/node_health/"
NODE_HEALTH_COLUMNS = (
    ("node", "string", "varchar"),
    ("measured_at", "timestamp[ms]", "timestamp(3)"),
    ("soc_temp_c", "double", "double"),
    ("temp_source", "string", "varchar"),
    ("throttled_raw", "int64", "bigint"),
    *(
        (f"{flag}_{when}", "bool", "boolean")
        for flag in THROTTLE_FLAGS
        for when in ("now", "since_boot")
    ),
    ("disk_size_bytes", "int64", "bigint"),
    ("disk_used_bytes", "int64", "bigint"),
    ("disk_avail_bytes", "int64", "bigint"),
)
NODE_HEALTH_TABLE = ExternalTable(
    name="node_health",
    prefix=NODE_HEALTH_PREFIX,
    columns=tuple((name, trino_type) for name, _, trino_type in NODE_HEALTH_COLUMNS),
    file_format="PARQUET",
)
CHECKS = {
    "every_node_answered": "Every inventory node answered the health read over SSH.",
    "not_throttled_now": "No node's firmware reports under-voltage, a capped frequency, "
    "throttling or the soft temperature limit now.",
    "soc_temperature_ok": "Every SoC is below `max_soc_temp_c`.",
    "disk_space_ok": "Every root disk is below `max_disk_used`.",
}


def node_health_key(day: str, run_id: str) -> str:
    return f"{NODE_HEALTH_PREFIX}dt={check_day(day)}/{run_id}.parquet"


def parquet_bytes(readings: list[NodeHealth]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(name, pa.type_for_alias(t)) for name, t, _ in NODE_HEALTH_COLUMNS])
    table = pa.Table.from_pylist([r.row() for r in readings], schema=schema)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def read_health(sessions, inv, names, allow_remote: bool, now: datetime | None = None) -> dict:
    """node -> NodeHealth, or the NodeError of a node that did not answer."""

    def one(name: str) -> NodeHealth:
        if not may_contact(inv.node(name), allow_remote):
            raise NodeError(name, "not contacted from the local profile (loopback only)")
        facts = read_facts(sessions, name, HEALTH_FACTS)
        return node_health(name, facts, now or datetime.now(UTC))

    return for_each_node(sessions, names, one)


class NodeHealthConfig(dg.Config):
    max_soc_temp_c: float = HealthLimits.max_soc_temp_c
    """Above this SoC temperature a node fails `soc_temperature_ok` (and the patch gate)."""
    max_disk_used: float = HealthLimits.max_disk_used
    """Above this share of the root disk used a node fails `disk_space_ok`."""


def _table(readings: dict) -> str:
    rows = [
        "| node | SoC °C | source | throttling | root disk used |",
        "| --- | ---: | --- | --- | ---: |",
    ]
    for name, h in readings.items():
        if isinstance(h, NodeError):
            rows.append(f"| {name} | | | did not answer: {h.reason[:120]} | |")
            continue
        temp = f"{h.soc_temp_c:.1f}" if h.soc_temp_c is not None else "?"
        throttling = h.throttling.describe() if h.throttling else "unreadable"
        disk = f"{h.disk.used_fraction:.0%}" if h.disk else "?"
        rows.append(f"| {name} | {temp} | {h.temp_source} | {throttling} | {disk} |")
    return "\n".join(rows)


@dg.asset(
    name="node_health",
    # Its own group: the `platform` group is what apply_cluster applies, unpartitioned.
    group_name="node_health",
    kinds={"ssh", "raspberrypi", "parquet"},
    partitions_def=daily_partitions,
    deps=[dg.AssetKey("inventory")],
    check_specs=[
        dg.AssetCheckSpec(name, asset="node_health", description=text, blocking=False)
        for name, text in CHECKS.items()
    ],
)
def node_health_asset(
    context: dg.AssetExecutionContext,
    config: NodeHealthConfig,
    inventory_file: InventoryFile,
    ssh: SshResource,
    object_store: ObjectStore,
    warehouse: Warehouse,
) -> dg.MaterializeResult:
    """Each Pi's SoC temperature (`vcgencmd measure_temp`, else the thermal zone), the
    firmware's throttling flags (`vcgencmd get_throttled`: under-voltage, capped frequency,
    throttled, soft temperature limit; now and since boot) and its root disk use, read over SSH
    and written as Parquet under `warehouse/node_health/dt=<day>/` (the warehouse table
    `node_health`). The weekly patches refuse to disrupt a node these checks would fail."""
    day = check_day(context.partition_key)
    inv = inventory_file.load()
    names = [n.name for n in inv.nodes]
    limits = HealthLimits(config.max_soc_temp_c, config.max_disk_used)
    with ssh.open(ssh_targets(inv, names), log=context.log) as sessions:
        readings = read_health(sessions, inv, names, inventory_file.allow_remote_nodes)
    answered = [h for h in readings.values() if isinstance(h, NodeHealth)]
    key = None
    if answered:
        key = node_health_key(day, context.run.run_id)
        object_store.put(key, parquet_bytes(answered))
        warehouse.ensure_schema()
        warehouse.ensure_external_table(NODE_HEALTH_TABLE)
        warehouse.register_partition(NODE_HEALTH_TABLE, day)
    silent = [n for n, h in readings.items() if isinstance(h, NodeError)]
    throttled = [
        f"{h.node} ({h.throttling.describe()})"
        for h in answered
        if h.throttling is None or any(h.throttling.now(f) for f in THROTTLE_FLAGS)
    ]
    hot = [
        f"{h.node} ({'unreadable' if h.soc_temp_c is None else f'{h.soc_temp_c:.1f} °C'})"
        for h in answered
        if h.soc_temp_c is None or h.soc_temp_c > limits.max_soc_temp_c
    ]
    full = [
        f"{h.node} ({h.disk.used_fraction:.0%})"
        for h in answered
        if h.disk is not None and h.disk.used_fraction > limits.max_disk_used
    ]
    checks = [
        dg.AssetCheckResult(
            check_name="every_node_answered",
            passed=not silent,
            description=f"no answer from {', '.join(silent)}" if silent else "all answered",
        ),
        dg.AssetCheckResult(
            check_name="not_throttled_now",
            passed=not throttled,
            description="; ".join(throttled) or "no node throttled now",
        ),
        dg.AssetCheckResult(
            check_name="soc_temperature_ok",
            passed=not hot,
            description="; ".join(hot) or f"every SoC below {limits.max_soc_temp_c:g} °C",
        ),
        dg.AssetCheckResult(
            check_name="disk_space_ok",
            passed=not full,
            severity=dg.AssetCheckSeverity.WARN,
            description="; ".join(full) or f"every root disk below {limits.max_disk_used:.0%}",
        ),
    ]
    history = {
        h.node: "; ".join(
            f"{f} since boot" for f in THROTTLE_FLAGS if h.throttling and h.throttling.since_boot(f)
        )
        for h in answered
    }
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(answered),
            "object": key or "(none written: no node answered)",
            "nodes": dg.MetadataValue.md(_table(readings)),
            "since_boot": dg.MetadataValue.json({n: v for n, v in history.items() if v}),
            "problems": dg.MetadataValue.json(
                {h.node: p for h in answered if (p := health_problems(h, limits))}
            ),
        },
        check_results=checks,
    )
