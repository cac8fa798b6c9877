-- Per device, what the hourly table holds for one day. Parameters: :day ('YYYY-MM-DD').
SELECT
    device_id,
    count(*) AS hours,
    sum(readings) AS readings,
    min(temperature_c_min) AS temperature_c_min,
    max(temperature_c_max) AS temperature_c_max,
    min(humidity_pct_min) AS humidity_pct_min,
    max(humidity_pct_max) AS humidity_pct_max,
    min(pressure_hpa_min) AS pressure_hpa_min,
    max(pressure_hpa_max) AS pressure_hpa_max
FROM sensor_readings_hourly
WHERE dt = :day
GROUP BY device_id
ORDER BY device_id
