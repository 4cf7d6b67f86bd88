"""Show a few users' current lists from the serving table, with video titles.

    python -m jobs.show_recommendations --warehouse DIR [--users 3] [--user-id ID ...] [--serving-table s3://bucket/prefix]

Reads the Delta table with delta-rs, the way a downstream consumer without Spark would; the titles
come from the warehouse's catalog.
"""

from __future__ import annotations

import argparse
import sys

from jobs.plumbing import config
from jobs.plumbing.stage import StageError, add_serving_table_argument, warehouse_at
from jobs.plumbing.tables import read_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", default=config.DEFAULT_WAREHOUSE)
    parser.add_argument("--users", type=int, default=3, help="how many users to show")
    parser.add_argument("--user-id", action="append", default=[], help="show this user (repeatable)")
    add_serving_table_argument(parser)
    args = parser.parse_args(argv)
    try:
        wh = warehouse_at("show_recommendations", args.warehouse, args.serving_table)
    except StageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if not wh.recommendations.exists():
        print(f"error: no serving table at {wh.recommendations}", file=sys.stderr)
        return 1

    table = wh.recommendations.delta_table()
    lists = table.to_pandas()
    titles = read_table(wh.catalog, [config.VIDEO_ID, config.TITLE]).to_pandas()
    lists = lists.merge(titles, on=config.VIDEO_ID, how="left").sort_values([config.USER_ID, config.RANK])
    users = args.user_id or sorted(lists[config.USER_ID].unique())[: args.users]
    print(f"serving table: {wh.recommendations} (Delta version {table.version()}, "
          f"{lists[config.USER_ID].nunique()} users, {len(lists)} rows, "
          f"run_date {lists[config.RUN_DATE].iloc[0] if len(lists) else '-'})")
    for user in users:
        rows = lists[lists[config.USER_ID] == user]
        print(f"\nuser {user} (model {rows[config.MODEL_VERSION].iloc[0] if len(rows) else '-'}):")
        for row in rows.itertuples(index=False):
            print(f"  {row.rank:>3}. {row.title or row.video_id}  [{row.video_id}, score {row.score:.3f}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
