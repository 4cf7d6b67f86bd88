"""Print the pseudonym of a user id: what the tables (the serving table included) hold for that user
when pseudonymisation is on, and what a consumer looks the user up by.

    python -m jobs.pseudonym --user-id X [--user-id Y ...]

One line per id: the pseudonym (HMAC-SHA256 under the key of $VREC_PSEUDONYM_KEY_FILE or the
Airflow connection $VREC_PSEUDONYM_KEY_CONN_ID; `jobs.plumbing.privacy.pseudonym_of` in Python).
A missing or empty key is an error.
"""

from __future__ import annotations

import argparse
import sys

from jobs.plumbing import privacy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--user-id", action="append", required=True, help="a user id (repeatable)")
    args = parser.parse_args(argv)
    try:
        key = privacy.load_pseudonym_key()
    except privacy.PrivacySettingError as err:
        print(f"error: [pseudonym] {err}", file=sys.stderr)
        return 1
    for user_id in args.user_id:
        print(privacy.pseudonym(user_id, key))
    return 0


if __name__ == "__main__":
    sys.exit(main())
