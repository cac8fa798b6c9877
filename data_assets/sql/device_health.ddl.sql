-- Device health per day: one row per device seen in the look-back window (or named in the day's
-- quarantine). Trino dialect; DuckDB runs it without the WITH properties.
CREATE TABLE IF NOT EXISTS device_health (
    device_id varchar,
    readings bigint,
    rejected_rows bigint,
    rejected_share double,
    last_reading_ts timestamp(3),
    minutes_silent double,
    longest_gap_minutes double,
    silent boolean,
    as_of timestamp(3),
    dt varchar
)
WITH (format = 'PARQUET', partitioned_by = ARRAY['dt'])
