-- The current lists with what a page needs to show each video. `catalog` is <warehouse>/tables/catalog.
CREATE OR REPLACE TEMP VIEW recommendations_with_titles AS
SELECT r.user_id, r.rank, r.video_id, c.title, c.tags, c.published_at, r.score, r.model_version, r.run_date
FROM latest_recommendations r
LEFT JOIN catalog c ON c.video_id = r.video_id
