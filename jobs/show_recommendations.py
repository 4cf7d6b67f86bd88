"""Show a few users' current lists from the serving table, with video titles.

    python -m jobs.show_recommendations --warehouse DIR [--users 3] [--user-id ID ...] [--serving-table s3://bucket/prefix]

Reads the Delta table with delta-rs, the way a downstream consumer without Spark would; the titles
come from the warehouse's catalog. Beside each video, its reason from the explanations table
(joined on user, video, run date and model version): "because you watched <title>", or what else
put it there.
"""

from __future__ import annotations

import argparse
import sys

from jobs.plumbing import config
from jobs.plumbing.stage import StageError, add_serving_table_argument, published_warehouse_at
from jobs.plumbing.tables import read_table


REASON_TEXT = {
    "popular_recently": "popular this month",
    "new_video": "a new video",
    "matches_your_taste": "matches your taste",
}


def with_reasons(wh: config.Warehouse, lists, titles):
    """`lists` with a `why` column: the reason of the same night's explanation of each row."""
    keys = [config.USER_ID, config.VIDEO_ID, config.RUN_DATE, config.MODEL_VERSION]
    if wh.explanations.exists():
        explanations = wh.explanations.delta_table().to_pandas(
            columns=[*keys, config.REASON, config.BECAUSE_VIDEO_ID])
    else:
        explanations = None
    if explanations is None or explanations.empty:
        return lists.assign(why="no explanation for this night")
    because_titles = titles.rename(columns={config.VIDEO_ID: config.BECAUSE_VIDEO_ID, config.TITLE: "because_title"})
    lists = lists.merge(explanations, on=keys, how="left").merge(because_titles, on=config.BECAUSE_VIDEO_ID,
                                                                   how="left")

    def why(row) -> str:
        if isinstance(row[config.BECAUSE_VIDEO_ID], str):
            title = row["because_title"] if isinstance(row["because_title"], str) else row[config.BECAUSE_VIDEO_ID]
            prefix = "new video; " if row[config.REASON] == "new_video_like_watched" else ""
            return f"{prefix}because you watched {title}"
        if isinstance(row[config.REASON], str):
            return REASON_TEXT.get(row[config.REASON], row[config.REASON])
        return "no explanation for this night"

    return lists.assign(why=lists.apply(why, axis=1) if len(lists) else [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", default=config.DEFAULT_WAREHOUSE)
    parser.add_argument("--users", type=int, default=3, help="how many users to show")
    parser.add_argument("--user-id", action="append", default=[], help="show this user (repeatable)")
    add_serving_table_argument(parser)
    args = parser.parse_args(argv)
    try:
        wh = published_warehouse_at("show_recommendations", args.warehouse, args.serving_table)
    except StageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1

    table = wh.recommendations.delta_table()
    lists = table.to_pandas()
    titles = read_table(wh.catalog, [config.VIDEO_ID, config.TITLE]).to_pandas()
    lists = lists.merge(titles, on=config.VIDEO_ID, how="left").sort_values([config.USER_ID, config.RANK])
    lists = with_reasons(wh, lists, titles)
    users = args.user_id or sorted(lists[config.USER_ID].unique())[: args.users]
    print(f"serving table: {wh.recommendations} (Delta version {table.version()}, "
          f"{lists[config.USER_ID].nunique()} users, {len(lists)} rows, "
          f"run_date {lists[config.RUN_DATE].iloc[0] if len(lists) else '-'})")
    for user in users:
        rows = lists[lists[config.USER_ID] == user]
        print(f"\nuser {user} (model {rows[config.MODEL_VERSION].iloc[0] if len(rows) else '-'}):")
        for row in rows.itertuples(index=False):
            print(f"  {row.rank:>3}. {row.title or row.video_id}  [{row.video_id}, score {row.score:.3f}]"
                  f"  -- {row.why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
