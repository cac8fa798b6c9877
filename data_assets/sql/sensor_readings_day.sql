-- What one day of the curated table holds, per device. Parameters: :day ('YYYY-MM-DD').
SELECT
    device_id,
    count(*) AS readings,
    min(reading_ts) AS first_reading_ts,
    max(reading_ts) AS last_reading_ts,
    count(DISTINCT source_object) AS source_objects
FROM sensor_readings
WHERE dt = :day
GROUP BY device_id
ORDER BY device_id
