-- The day's device health as shown in the UI: silent devices first, then by rejected share.
-- Parameters: :day ('YYYY-MM-DD').
SELECT
    device_id,
    silent,
    readings,
    rejected_rows,
    rejected_share,
    last_reading_ts,
    minutes_silent,
    longest_gap_minutes
FROM device_health
WHERE dt = :day
ORDER BY silent DESC NULLS LAST, rejected_share DESC NULLS LAST, device_id
