"""The plumbing the stages share: configuration, the stage runner, the Spark session, SQL and table
I/O, the serving table, quality suites, model inputs, the evaluation report, the frame encoder file."""
