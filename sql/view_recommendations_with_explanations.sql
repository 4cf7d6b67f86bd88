-- The current lists with why each video is there. `recommendation_explanations` is the explanations
-- side table (<warehouse>/tables/recommendation_explanations, beside the serving table), registered
-- by jobs.consumer_views. The join is on the night as well as the row (run_date, model_version), so
-- tonight's lists are never shown with another night's reasons: while the two tables are between
-- commits, a row's reason is NULL rather than stale.
CREATE OR REPLACE TEMP VIEW recommendations_with_explanations AS
SELECT r.user_id, r.rank, r.video_id, r.score, r.model_version, r.run_date,
       e.reason, e.because_video_id, e.because_similarity,
       e.share_text, e.share_visual, e.share_audio, e.share_collaborative, e.ranker_top_features
FROM latest_recommendations r
LEFT JOIN recommendation_explanations e
  ON e.user_id = r.user_id AND e.video_id = r.video_id
 AND e.run_date = r.run_date AND e.model_version = r.model_version
