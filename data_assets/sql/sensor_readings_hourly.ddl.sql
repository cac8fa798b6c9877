-- The hourly aggregate table: one row per device and hour, partitioned by the reading's UTC day.
-- Trino dialect (a Hive managed table under the schema's location); DuckDB runs the same
-- statement without the WITH properties.
CREATE TABLE IF NOT EXISTS sensor_readings_hourly (
    device_id varchar,
    hour_ts timestamp(3),
    readings bigint,
    temperature_c_min double,
    temperature_c_avg double,
    temperature_c_max double,
    humidity_pct_min double,
    humidity_pct_avg double,
    humidity_pct_max double,
    pressure_hpa_min double,
    pressure_hpa_avg double,
    pressure_hpa_max double,
    dt varchar
)
WITH (format = 'PARQUET', partitioned_by = ARRAY['dt'])
