-- Every landing interaction with its parsed fields and, for a bad row, the reason it is set aside.
-- Interactions after the end of the run date are kept out, so a backfill of an earlier date
-- sees only what was known on that date. A ts that is no time in 0001..9999 UTC (sql/parse_timestamp.sql)
-- is bad_timestamp; any time up to the end of the run date is kept, year 0001 included.
WITH parsed AS (
  SELECT
    nullif(trim(i.user_id), '')                          AS user_id,
    nullif(trim(i.video_id), '')                         AS video_id,
    {ts_parsed}                                          AS ts,
    lower(coalesce(nullif(trim(i.event), ''), '{default_event}')) AS event,
    try_cast(i.watch_seconds AS DOUBLE)                  AS watch_seconds,
    nullif(trim(i.watch_seconds), '') IS NOT NULL        AS has_watch_seconds,
    i._source_file,
    i._raw
  FROM landing_interactions i
)
SELECT p.*,
  CASE
    WHEN p.user_id IS NULL THEN 'missing_user_id'
    WHEN p.video_id IS NULL THEN 'missing_video_id'
    WHEN p.ts IS NULL THEN 'bad_timestamp'
    WHEN p.ts >= TIMESTAMP '{run_date}' + INTERVAL 1 DAY THEN 'after_run_date'
    WHEN c.video_id IS NULL THEN 'unknown_video'
    -- Given but not a finite, non-negative number of seconds ('abc', 'NaN', 'Infinity', -3).
    WHEN p.has_watch_seconds AND (p.watch_seconds IS NULL OR p.watch_seconds < 0 OR isnan(p.watch_seconds)
                                  OR p.watch_seconds = double('Infinity')) THEN 'bad_watch_seconds'
  END AS reason
FROM parsed p
LEFT JOIN catalog c ON p.video_id = c.video_id
