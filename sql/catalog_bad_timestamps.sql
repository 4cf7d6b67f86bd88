-- Catalog rows (with a video_id) whose published_at or updated_at is given but is not a time
-- (sql/parse_timestamp.sql: unreadable, or outside 0001-01-01 .. 9999-12-31 UTC). The row is kept
-- with that time NULL; these counts are the record of it (the `catalog_bad_timestamps` counter).
SELECT
  count_if(nullif(trim(published_at), '') IS NOT NULL AND {published_at_ts} IS NULL) AS published_at,
  count_if(nullif(trim(updated_at), '') IS NOT NULL AND {updated_at_ts} IS NULL)     AS updated_at
FROM landing_catalog
WHERE nullif(trim(video_id), '') IS NOT NULL
