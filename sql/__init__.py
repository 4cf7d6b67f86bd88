"""The pipeline's Spark SQL (`*.sql`), read as package data so that it ships in the project archive."""
