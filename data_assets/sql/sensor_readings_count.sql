-- Curated readings of one day. Parameters: :day ('YYYY-MM-DD').
SELECT count(*) AS readings FROM sensor_readings WHERE dt = :day
