"""Loading the Spark SQL kept in `sql/*.sql`, with simple `{name}` placeholders filled in.

The files are read as package data (`importlib.resources`), so the same code works from a
checkout and from the project archive shipped to a cluster.
"""

from __future__ import annotations

from importlib.resources import files


def load_sql(name: str, **values: str) -> str:
    text = files("sql").joinpath(f"{name}.sql").read_text()
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def timestamp_expr(column: str) -> str:
    """The SQL expression that parses `column` as ISO-8601 or epoch seconds."""
    body = load_sql("parse_timestamp", col=column)
    return "(" + "\n".join(line for line in body.splitlines() if not line.startswith("--")) + ")"
