-- The current lists with what a page needs to show each video. `catalog` is <warehouse>/tables/catalog.
-- published_at is any time from 0001 to 9999 UTC (9999-12-31 is a common "never"), or NULL: a
-- consumer that converts to pandas reads it as text or epoch seconds (unix_seconds), since pandas'
-- datetime64[ns] holds only the years 1677 to 2262.
CREATE OR REPLACE TEMP VIEW recommendations_with_titles AS
SELECT r.user_id, r.rank, r.video_id, c.title, c.tags, c.published_at, r.score, r.model_version, r.run_date
FROM latest_recommendations r
LEFT JOIN catalog c ON c.video_id = r.video_id
