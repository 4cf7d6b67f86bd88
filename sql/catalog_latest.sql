-- One current row per video from every landing catalog file.
-- The row with the latest updated_at wins; without one, the last file in name order (and the
-- last row in that file) wins. Rows without a video_id go to rejected_rows instead. A published_at or
-- updated_at that is no time in 0001..9999 UTC (sql/parse_timestamp.sql) is NULL here, the row is kept,
-- and sql/catalog_bad_timestamps.sql counts it; 9999-12-31 ("never") and 0001-01-01 are times.
WITH parsed AS (
  SELECT
    nullif(trim(video_id), '')          AS video_id,
    nullif(trim(uri), '')               AS uri,
    coalesce(title, '')                 AS title,
    coalesce(description, '')           AS description,
    coalesce(tags, '')                  AS tags,
    {published_at_ts}                   AS published_at,
    {updated_at_ts}                     AS updated_at,
    _source_file,
    _row_in_file
  FROM landing_catalog
),
ranked AS (
  SELECT *,
    row_number() OVER (
      PARTITION BY video_id
      ORDER BY updated_at DESC NULLS LAST, _source_file DESC, _row_in_file DESC
    ) AS version_rank
  FROM parsed
  WHERE video_id IS NOT NULL
)
SELECT video_id, uri, title, description, tags, published_at, updated_at
FROM ranked
WHERE version_rank = 1
