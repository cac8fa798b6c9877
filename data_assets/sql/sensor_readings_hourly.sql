-- One day of curated readings aggregated per device and hour: count, min, mean, max of each
-- measure. Columns in the order of sensor_readings_hourly, partition column last.
-- Parameters: :day ('YYYY-MM-DD').
SELECT
    device_id,
    date_trunc('hour', reading_ts) AS hour_ts,
    count(*) AS readings,
    min(temperature_c) AS temperature_c_min,
    avg(temperature_c) AS temperature_c_avg,
    max(temperature_c) AS temperature_c_max,
    min(humidity_pct) AS humidity_pct_min,
    avg(humidity_pct) AS humidity_pct_avg,
    max(humidity_pct) AS humidity_pct_max,
    min(pressure_hpa) AS pressure_hpa_min,
    avg(pressure_hpa) AS pressure_hpa_avg,
    max(pressure_hpa) AS pressure_hpa_max,
    dt
FROM sensor_readings
WHERE dt = :day
GROUP BY device_id, date_trunc('hour', reading_ts), dt
