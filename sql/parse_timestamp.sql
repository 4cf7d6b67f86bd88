-- Template: parses an ISO-8601 string (UTC when no offset) or Unix epoch seconds; NULL otherwise.
-- {col} is replaced by the column to parse.
-- Only instants from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z are times: ISO-8601's
-- four-digit years, all of which every stage holds (Spark and Parquet as microseconds; pandas and
-- numpy only ever get seconds since the epoch). An instant outside that range is NULL, as an
-- unreadable text is: an epoch in milliseconds read as seconds (year 57805), `10000-01-01`, or
-- `9999-12-31T23:59:59-05:00` (year 10000 in UTC). The bounds are checked before the epoch
-- seconds are scaled, so no number overflows.
CASE
  WHEN trim({col}) RLIKE '^-?[0-9]+(\\.[0-9]+)?$'
    THEN CASE
      WHEN try_cast(trim({col}) AS DECIMAL(20, 6)) BETWEEN -62135596800 AND 253402300799.999999
        THEN timestamp_micros(CAST(try_cast(trim({col}) AS DECIMAL(20, 6)) * 1000000 AS BIGINT))
    END
  WHEN try_to_timestamp(trim({col}))
       BETWEEN timestamp_micros(-62135596800000000) AND timestamp_micros(253402300799999999)
    THEN try_to_timestamp(trim({col}))
END
