"""Ask for a user's erasure: write a deletion request that the next night carries out.

    python -m jobs.forget_user --warehouse DIR --user-id X [--user-id Y ...]

Writes one request file to `<warehouse>/landing/deletion_requests/` (the ids, one a line, after a
`# request <random id>` line that makes the file's hash unguessable) and prints its name and
SHA-256, which the night's counters will show once the erasure is done (`erase_users`). The
request file is the only place the id is written, and the erasure deletes it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import sys
import uuid

from jobs.plumbing import config, privacy


def request_erasure(wh: config.Warehouse, user_ids: list[str]) -> tuple[str, str]:
    """Queue a deletion request for `user_ids`; (the request file's path, its SHA-256)."""
    ids = [user_id.strip() for user_id in user_ids if user_id.strip()]
    if not ids:
        raise ValueError("no user id given")
    directory = wh.root.joinpath(*privacy.DELETION_REQUESTS_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    request_id = uuid.uuid4().hex
    data = "".join([f"# request {request_id}\n", *(f"{user_id}\n" for user_id in ids)]).encode("utf-8")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"forget-{stamp}-{request_id[:12]}.txt"
    tmp = directory / f"_{path.name}"          # in progress: the erasure skips `_` names
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return str(path), hashlib.sha256(data).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", default=config.DEFAULT_WAREHOUSE,
                        help="warehouse root (default: $VREC_WAREHOUSE or ./warehouse)")
    parser.add_argument("--user-id", action="append", required=True, help="a user to erase (repeatable)")
    args = parser.parse_args(argv)
    try:
        path, sha256 = request_erasure(config.Warehouse.at(args.warehouse), args.user_id)
    except (ValueError, OSError) as err:
        print(f"error: [forget_user] {err}", file=sys.stderr)
        return 1
    print(json.dumps({"request_file": path, "sha256": sha256, "users": len(args.user_id)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
