"""Privacy settings and their primitives: keyed pseudonyms of user ids, the interaction retention,
deletion requests, and the one list of the tables that hold user ids (what an erasure cleans).

Settings (environment; off unless set):

- `VREC_PSEUDONYMISE=1`: ingest replaces every user id with `pseudonym(user_id)`, an HMAC-SHA256
  under a secret key, so every table downstream holds only pseudonyms. The key comes from the file
  named by `VREC_PSEUDONYM_KEY_FILE`, else from the password of the Airflow connection named by
  `VREC_PSEUDONYM_KEY_CONN_ID`; it is never written to the warehouse. No mapping from pseudonym to
  user id is kept anywhere: the pseudonym is recomputed from the id (`python -m jobs.pseudonym`).
- `VREC_INTERACTION_RETENTION_DAYS=N`: ingest drops interactions older than N days before the run
  date (and the rejected-row records of runs that old); unset or empty: keep all.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

# Tables (under <warehouse>/tables/) that hold user ids, keyed by the column `user_id`; an erasure
# removes the user's rows from every one of them, in every run date's directory. A new table with
# user rows is added here, and nowhere else. The published Delta tables (the serving table and its
# explanations, `Warehouse.published_tables()`, local or on S3) are erased with their history cut.
USER_KEYED_TABLES = ("interactions", "candidate_lists", "candidate_explanations")
# Tables whose rows keep the raw landing row as JSON (`_raw`, with its `user_id`).
RAW_ROW_TABLES = ("rejected_rows",)
# Where deletion requests arrive: one file per request, one user id per line.
DELETION_REQUESTS_DIR = ("landing", "deletion_requests")

PSEUDONYM_PREFIX = "ps_"
_ON = ("1", "true", "yes", "on")


class PrivacySettingError(ValueError):
    """A privacy setting is missing or unreadable; the run must not start."""


@dataclass(frozen=True)
class PrivacySettings:
    pseudonymise: bool
    key: bytes | None
    interaction_retention_days: int | None


def pseudonymisation_on() -> bool:
    return os.environ.get("VREC_PSEUDONYMISE", "").strip().lower() in _ON


def interaction_retention_days() -> int | None:
    """VREC_INTERACTION_RETENTION_DAYS as a whole number of days; None (keep everything) when unset."""
    text = os.environ.get("VREC_INTERACTION_RETENTION_DAYS", "").strip()
    if not text:
        return None
    try:
        days = int(text)
    except ValueError:
        days = -1
    if days < 0:
        raise PrivacySettingError(f"VREC_INTERACTION_RETENTION_DAYS must be a whole number of days >= 0, "
                                  f"got {text!r}")
    return days


def load_pseudonym_key() -> bytes:
    """The secret key of the pseudonyms: from $VREC_PSEUDONYM_KEY_FILE, else from the password of
    the Airflow connection $VREC_PSEUDONYM_KEY_CONN_ID. Missing or empty is an error."""
    path = os.environ.get("VREC_PSEUDONYM_KEY_FILE", "").strip()
    connection_id = os.environ.get("VREC_PSEUDONYM_KEY_CONN_ID", "").strip()
    if path:
        try:
            key = Path(path).expanduser().read_bytes().strip()
        except OSError as err:
            raise PrivacySettingError(f"cannot read the pseudonym key file VREC_PSEUDONYM_KEY_FILE={path}: "
                                      f"{err.strerror or err}") from err
        if not key:
            raise PrivacySettingError(f"the pseudonym key file VREC_PSEUDONYM_KEY_FILE={path} is empty")
        return key
    if connection_id:
        from airflow.sdk import Connection  # Airflow loads only when a connection is named

        password = Connection.get(connection_id).password or ""
        if not password.strip():
            raise PrivacySettingError(f"the Airflow connection {connection_id!r} (VREC_PSEUDONYM_KEY_CONN_ID) "
                                      f"has no password to use as the pseudonym key")
        return password.strip().encode()
    raise PrivacySettingError("no pseudonym key: set VREC_PSEUDONYM_KEY_FILE to a file holding the secret key, "
                              "or VREC_PSEUDONYM_KEY_CONN_ID to an Airflow connection whose password is the key")


def load_settings() -> PrivacySettings:
    """Every privacy setting, checked; raises PrivacySettingError before any work is done."""
    on = pseudonymisation_on()
    try:
        key = load_pseudonym_key() if on else None
    except PrivacySettingError as err:
        raise PrivacySettingError(f"pseudonymisation is on (VREC_PSEUDONYMISE) but {err}") from err
    return PrivacySettings(on, key, interaction_retention_days())


def pseudonym(user_id: str, key: bytes) -> str:
    """The keyed pseudonym of a user id (after trimming, as ingest trims ids): HMAC-SHA256, 128 bits."""
    digest = hmac.new(key, user_id.strip().encode("utf-8"), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:32]


def pseudonym_of(user_id: str) -> str:
    """The pseudonym a consumer looks `user_id` up by, with the configured key."""
    return pseudonym(user_id, load_pseudonym_key())


def table_user_id(user_id: str) -> str:
    """What the tables hold for `user_id`: its pseudonym when pseudonymisation is on, else the id."""
    return pseudonym_of(user_id) if pseudonymisation_on() else user_id.strip()


def pseudonym_column(column, key: bytes):
    """A Spark column of pseudonyms of the string column `column`; NULL and blank ids stay as they
    are (ingest sets them aside as `missing_user_id`). The key travels in the function's closure,
    never in a query plan."""
    import pandas as pd
    from pyspark.sql.functions import pandas_udf

    def pseudonymise(ids):
        return ids.map(lambda v: pseudonym(v, key) if isinstance(v, str) and v.strip() else v)

    # Real types (this module's annotations are strings): what tells Spark it is a Series -> Series UDF.
    pseudonymise.__annotations__ = {"ids": pd.Series, "return": pd.Series}
    return pandas_udf(pseudonymise, "string")(column)


def read_deletion_request(path: Path) -> tuple[list[str], str]:
    """(user ids, SHA-256 of the file's bytes) of one request file: one id per line; blank lines and
    lines starting with `#` (e.g. a request id that makes the hash unguessable) are ignored."""
    data = path.read_bytes()
    ids = [line.strip() for line in data.decode("utf-8").splitlines()]
    return [i for i in ids if i and not i.startswith("#")], hashlib.sha256(data).hexdigest()
