"""Loading the Spark SQL kept in `sql/*.sql`, with simple `{name}` placeholders filled in."""

from __future__ import annotations

from pathlib import Path

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"


def load_sql(name: str, **values: str) -> str:
    text = (SQL_DIR / f"{name}.sql").read_text()
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def timestamp_expr(column: str) -> str:
    """The SQL expression that parses `column` as ISO-8601 or epoch seconds."""
    body = load_sql("parse_timestamp", col=column)
    return "(" + "\n".join(line for line in body.splitlines() if not line.startswith("--")) + ")"
