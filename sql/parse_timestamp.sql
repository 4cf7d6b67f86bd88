-- Template: parses an ISO-8601 string (UTC when no offset) or Unix epoch seconds; NULL otherwise.
-- {col} is replaced by the column to parse.
CASE
  WHEN trim({col}) RLIKE '^-?[0-9]+(\\.[0-9]+)?$'
    THEN timestamp_micros(CAST(try_cast(trim({col}) AS DECIMAL(20, 6)) * 1000000 AS BIGINT))
  ELSE try_to_timestamp(trim({col}))
END
