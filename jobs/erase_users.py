"""Erase users: carry out the deletion requests in `landing/deletion_requests/`, the night's first stage.

    python -m jobs.erase_users --warehouse DIR --run-date YYYY-MM-DD [--serving-table s3://bucket/prefix]

A request is a file with one user id per line (blank lines and `#` lines ignored), dropped there by
an upstream system or written by `python -m jobs.forget_user --user-id X`. For the named users (and
their pseudonyms, when pseudonymisation is on) the stage removes:

- their rows from the landing interaction files (each such file is rewritten without them), so no
  later ingest brings them back;
- their rows from every user-keyed table (`privacy.USER_KEYED_TABLES`: interactions, every night's
  candidate lists and candidate explanations), and the rejected-row records whose raw row names them;
- their rows from every saved model (`users.parquet` entry and user-embedding row);
- their rows from the published tables, the explanations table and the serving table (local or
  on S3): the latest version of each is rewritten without them, and every earlier version (files
  and log) is deleted, which also ends rollback to the nights before;
- their ids from the runs' reports and logs (replaced by `[erased]`);
- finally the request files themselves.

Nothing keeps a mapping from pseudonym to user id, so there is none to delete. The counters name
no one: how many requests and users, the SHA-256 of each request file, and what was removed where.
A run with no requests does nothing. Every step is idempotent: a night that fails half-way leaves
the request in place, and the next run finishes the erasure.
"""

from __future__ import annotations

import sys

from jobs.ingest import landing_files
from jobs.plumbing import config, erasure, privacy
from jobs.plumbing.stage import StageError, add_serving_table_argument, base_parser, run_stage, write_counters
from jobs.plumbing.table_location import TableLocation

STAGE = "erase_users"


def deletion_request_files(wh: config.Warehouse):
    directory = wh.root.joinpath(*privacy.DELETION_REQUESTS_DIR)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith((".", "_")))


def erase_users(wh: config.Warehouse, run_date: str) -> dict:
    from models.artifact import erase_users as erase_from_model

    requests = deletion_request_files(wh)
    user_ids, hashes = set(), []
    for path in requests:
        ids, sha256 = privacy.read_deletion_request(path)
        user_ids.update(ids)
        hashes.append(sha256)
    counters = {"deletion_requests": len(requests), "deletion_request_sha256": hashes, "users_erased": len(user_ids)}
    if user_ids:
        try:
            settings = privacy.load_settings()
        except privacy.PrivacySettingError as err:
            raise StageError(STAGE, str(err)) from err
        erased = set(user_ids)
        if settings.pseudonymise:
            erased |= {privacy.pseudonym(user_id, settings.key) for user_id in user_ids}
        counters["landing_rows_removed"] = sum(erasure.erase_from_landing_file(path, user_ids)
                                               for path in landing_files(wh.landing_interactions))
        counters["table_rows_removed"] = {}
        for name in privacy.USER_KEYED_TABLES:
            location = wh.table(name)
            if (location / "_delta_log").is_dir():
                counters["table_rows_removed"][name] = erasure.erase_from_delta_table(
                    TableLocation.local(location), erased)["rows"]
            else:
                counters["table_rows_removed"][name] = erasure.erase_from_user_table(location, erased)
        for name in privacy.RAW_ROW_TABLES:
            counters["table_rows_removed"][name] = erasure.erase_from_raw_rows(wh.table(name), erased)
        counters["model_rows_removed"] = sum(erase_from_model(model_dir, erased)
                                             for model_dir in sorted(wh.models.glob("*/"))
                                             if (model_dir / "users.parquet").exists())
        # The explanations first, as a night commits them: never lists without their reasons.
        for name, location in wh.published_tables().items():
            if location.exists():
                published = erasure.erase_from_delta_table(location, erased)
                prefix = "serving" if name == "recommendations" else name
                counters.update({f"{prefix}_rows_removed": published["rows"],
                                 f"{prefix}_versions_cut": published["versions_cut"],
                                 f"{prefix}_files_vacuumed": published["files_vacuumed"]})
        counters["run_files_scrubbed"] = erasure.scrub_run_files(wh.runs, erased)
    for path in requests:
        path.unlink()
    write_counters(wh, run_date, STAGE, counters)
    return counters


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    add_serving_table_argument(parser)
    args = parser.parse_args(argv)
    return run_stage(STAGE, args.warehouse, lambda wh: erase_users(wh, args.run_date),
                     serving_table=args.serving_table)


if __name__ == "__main__":
    sys.exit(main())
