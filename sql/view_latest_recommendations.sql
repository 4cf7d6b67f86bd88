-- The current night's lists: one row per (user, rank). `recommendations` is the serving table's
-- latest Delta version (registered by jobs.consumer_views, or on a cluster:
--   CREATE TEMP VIEW recommendations AS SELECT * FROM delta.`<warehouse>/tables/recommendations`).
CREATE OR REPLACE TEMP VIEW latest_recommendations AS
SELECT user_id, rank, video_id, score, model_version, run_date, generated_at
FROM recommendations
