"""Where a Delta table lives: a local directory, or an `s3://bucket/prefix` on an S3-compatible
object store, and what deltalake, polars, DuckDB and pyarrow need to reach it.

A location is a `uri` plus `storage_options` (delta-rs names: `AWS_ENDPOINT_URL`, `AWS_REGION`,
`AWS_ACCESS_KEY_ID`, ...). The options come from the environment, or from an Airflow connection
when one is named; never from a file. They are read when first needed, so a stage that never
touches the table never looks them up, and they are left out of `repr` and `str`, which only
ever show the uri.

    deltalake  DeltaTable(location.uri, storage_options=location.storage_options)
    polars     pl.read_delta(location.uri, storage_options=location.storage_options)
    pyarrow    location.delta_table().to_pyarrow_dataset()
    DuckDB     duckdb.register("recommendations", location.delta_table().to_pyarrow_dataset())

DuckDB gets the table as the Arrow dataset of delta-rs because its own `delta` and `httpfs`
extensions are not bundled with the wheel and would be downloaded at run time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit

OBJECT_STORE_SCHEMES = ("s3",)

# The environment variables an S3 client is configured with; delta-rs takes the same names as
# storage options, and polars passes them on to it.
S3_ENVIRONMENT = ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                  "AWS_SESSION_TOKEN", "AWS_ALLOW_HTTP")


@dataclass(frozen=True)
class TableLocation:
    """A Delta table's uri (an absolute local path, or `s3://bucket/prefix`) and, for an object
    store, the Airflow connection its settings come from (None: the environment)."""

    uri: str
    connection_id: str | None = None

    @classmethod
    def local(cls, path: Path) -> "TableLocation":
        return cls(str(path))

    @classmethod
    def parse(cls, text: str, *, connection_id: str | None = None) -> "TableLocation":
        """A directory (relative, absolute or `file://`) or `s3://bucket/prefix`; else ValueError."""
        parts = urlsplit(text)
        if parts.scheme in ("", "file"):
            return cls.local(Path(parts.path if parts.scheme else text).expanduser().resolve())
        if parts.scheme not in OBJECT_STORE_SCHEMES or not parts.netloc:
            raise ValueError(f"{text!r} is not a table location: give a directory or s3://bucket/prefix")
        return cls(text.rstrip("/"), connection_id or None)

    @property
    def is_local(self) -> bool:
        return urlsplit(self.uri).scheme not in OBJECT_STORE_SCHEMES

    @property
    def path(self) -> Path:
        if not self.is_local:
            raise ValueError(f"{self.uri} is on an object store, not a local path")
        return Path(self.uri)

    @cached_property
    def storage_options(self) -> dict[str, str]:
        """What delta-rs (and polars through it) needs to reach the table; empty when local."""
        if self.is_local:
            return {}
        return s3_storage_options(os.environ, self.connection_id)

    def sibling(self, name: str) -> "TableLocation":
        """The table `name` beside this one, in the same storage and with the same settings:
        `<parent>/<name>`. A table at a bucket's root has no place beside it (a table nested inside
        it would be deleted by its vacuum), so that is a ValueError."""
        if self.is_local:
            sibling = TableLocation.local(self.path.parent / name)
        else:
            parts = urlsplit(self.uri)
            prefix = parts.path.strip("/")
            if not prefix:
                raise ValueError(f"{self.uri} is a bucket's root: give the serving table a prefix "
                                 f"(s3://bucket/prefix), so that {name} can sit beside it")
            parent = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
            sibling = TableLocation(f"{parts.scheme}://{parts.netloc}/{parent}{name}", self.connection_id)
        if sibling.uri == self.uri:
            raise ValueError(f"{self.uri} is itself named {name}: give the serving table another name")
        return sibling

    def exists(self) -> bool:
        """Whether a Delta table (its log) is there."""
        if self.is_local:
            return (self.path / "_delta_log").is_dir()
        from deltalake import DeltaTable

        return DeltaTable.is_deltatable(self.uri, storage_options=self.storage_options)

    def delta_table(self, version: int | None = None):
        """The table at its latest version, or at `version`."""
        from deltalake import DeltaTable

        return DeltaTable(self.uri, version=version, storage_options=self.storage_options or None)

    def __str__(self) -> str:
        return self.uri


def s3_storage_options(environ: Mapping[str, str], connection_id: str | None = None) -> dict[str, str]:
    """S3 settings from the environment; each one the Airflow connection `connection_id` gives
    replaces the environment's."""
    options = {name: environ[name] for name in S3_ENVIRONMENT if environ.get(name)}
    if "AWS_REGION" not in options and environ.get("AWS_DEFAULT_REGION"):
        options["AWS_REGION"] = environ["AWS_DEFAULT_REGION"]
    if connection_id:
        options.update(connection_storage_options(connection_id))
    # A plain-HTTP endpoint (a MinIO or test server on the host) is what the operator asked for;
    # delta-rs refuses HTTP unless told.
    if options.get("AWS_ENDPOINT_URL", "").startswith("http://"):
        options.setdefault("AWS_ALLOW_HTTP", "true")
    return options


def connection_storage_options(connection_id: str) -> dict[str, str]:
    """An Airflow `aws` connection as storage options: login and password are the access key and
    secret, extra's `endpoint_url`, `region_name` and `aws_session_token` the rest."""
    from airflow.sdk import Connection  # Airflow loads only when a connection is named

    connection = Connection.get(connection_id)
    extra = connection.extra_dejson
    settings = {
        "AWS_ACCESS_KEY_ID": connection.login,
        "AWS_SECRET_ACCESS_KEY": connection.password,
        "AWS_ENDPOINT_URL": extra.get("endpoint_url"),
        "AWS_REGION": extra.get("region_name"),
        "AWS_SESSION_TOKEN": extra.get("aws_session_token"),
    }
    return {name: str(value) for name, value in settings.items() if value}
