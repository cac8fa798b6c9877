import dagster as dg

# Sensor data is partitioned by the UTC day of the reading. The start is the platform's first day
# of data; end_offset=1 lets today's partition be materialized while the day is still running.
daily_partitions = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_offset=1)
