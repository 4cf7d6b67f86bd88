-- One user's current list, best first. `:user_id` is a named parameter:
--   spark.sql(load_sql("user_recommendations"), args={"user_id": "42"})
SELECT rank, video_id, title, score, run_date
FROM recommendations_with_titles
WHERE user_id = :user_id
ORDER BY rank
