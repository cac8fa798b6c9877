-- Device health for one day.
--   readings            curated rows of the day
--   rejected_rows       quarantined rows of the day attributed to the device: by the record's
--                       device_id when curation could read one, else by the device whose curated
--                       rows came from the same source object; rows of objects with no good row
--                       and no device_id are reported under the device '(unknown)'
--   rejected_share      rejected / (readings + rejected)
--   last_reading_ts     newest reading up to :as_of, looking back to :since_day, so a device that
--                       went quiet yesterday still shows up today
--   minutes_silent      :as_of minus last_reading_ts (never negative)
--   longest_gap_minutes longest gap between two consecutive readings within the day
--   silent              minutes_silent > :silent_after_minutes (NULL for '(unknown)')
-- Parameters: :day, :since_day ('YYYY-MM-DD'), :as_of (timestamp), :silent_after_minutes.
WITH recent AS (
    SELECT device_id, reading_ts, source_object, dt
    FROM sensor_readings
    WHERE dt BETWEEN :since_day AND :day
        AND reading_ts <= CAST(:as_of AS timestamp(3))
),
last_seen AS (
    SELECT device_id, max(reading_ts) AS last_reading_ts
    FROM recent
    GROUP BY device_id
),
gaps AS (
    SELECT
        device_id,
        date_diff(
            'millisecond',
            lag(reading_ts) OVER (PARTITION BY device_id ORDER BY reading_ts),
            reading_ts
        ) AS gap_ms
    FROM sensor_readings
    WHERE dt = :day
),
day_readings AS (
    SELECT device_id, count(*) AS readings, max(gap_ms) AS longest_gap_ms
    FROM gaps
    GROUP BY device_id
),
object_owner AS (
    SELECT source_object, min(device_id) AS device_id
    FROM recent
    GROUP BY source_object
),
rejected AS (
    SELECT
        coalesce(q.device_id, o.device_id, '(unknown)') AS device_id,
        count(*) AS rejected_rows
    FROM sensor_quarantine AS q
    LEFT JOIN object_owner AS o ON q.source_object = o.source_object
    WHERE q.dt = :day
    GROUP BY coalesce(q.device_id, o.device_id, '(unknown)')
),
devices AS (
    SELECT device_id FROM last_seen
    UNION
    SELECT device_id FROM day_readings
    UNION
    SELECT device_id FROM rejected
),
health AS (
    SELECT
        d.device_id,
        coalesce(r.readings, 0) AS readings,
        coalesce(x.rejected_rows, 0) AS rejected_rows,
        l.last_reading_ts,
        CAST(greatest(
            date_diff('millisecond', l.last_reading_ts, CAST(:as_of AS timestamp(3))), 0
        ) AS double) / 60000 AS minutes_silent,
        CAST(r.longest_gap_ms AS double) / 60000 AS longest_gap_minutes
    FROM devices AS d
    LEFT JOIN day_readings AS r ON r.device_id = d.device_id
    LEFT JOIN rejected AS x ON x.device_id = d.device_id
    LEFT JOIN last_seen AS l ON l.device_id = d.device_id
)
SELECT
    device_id,
    readings,
    rejected_rows,
    CASE
        WHEN readings + rejected_rows = 0 THEN NULL
        ELSE CAST(rejected_rows AS double) / (readings + rejected_rows)
    END AS rejected_share,
    last_reading_ts,
    minutes_silent,
    longest_gap_minutes,
    CASE
        WHEN device_id = '(unknown)' THEN NULL
        WHEN last_reading_ts IS NULL THEN true
        ELSE minutes_silent > CAST(:silent_after_minutes AS double)
    END AS silent,
    CAST(:as_of AS timestamp(3)) AS as_of,
    CAST(:day AS varchar) AS dt
FROM health
