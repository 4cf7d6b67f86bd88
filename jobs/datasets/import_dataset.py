"""Turn a public recommendation dataset into landing files of the warehouse (DESIGN.md contracts).

Run::

    python -m jobs.import_dataset --format movielens-100k --source DIR --warehouse DIR [--media DIR]

Formats and the files read from ``--source``:

- ``movielens-100k``: ``u.data`` (user, item, rating, epoch ts; tab-separated), ``u.item``
  (``|``-separated, latin-1: title in column 2, release date in column 3, 19 genre flags in the last
  19 columns) and ``u.genre`` (the genre names; the built-in MovieLens list when absent).
- ``movielens-latest``: ``ratings.csv`` (userId,movieId,rating,timestamp), ``movies.csv``
  (movieId,title,genres with ``|``) and, optionally, ``tags.csv`` (userId,movieId,tag,timestamp),
  whose tags join the movie's genres (the most frequent ``MAX_USER_TAGS`` per movie).
- ``microlens``: one ``*_pairs.tsv`` (``userID<TAB>item item item ...`` in time order) and one
  ``*_titles.csv`` (``item,title`` with a header; CRLF line endings and quoted titles are fine).
  The data has no times: a user's n-th item gets ``MICROLENS_BASE_EPOCH + n`` seconds, which keeps
  each user's file order.

Ratings become events: a rating >= 4 is a ``like``, anything lower a ``view`` (microlens has no
ratings: every pair is a ``view``).

With ``--media DIR``, a file ``<item id>.<ext>`` directly in DIR is that video's media. It is placed
in the warehouse's media root, ``<warehouse>/landing/media/<format>/<item id>.<ext>``, as a hard link
when DIR is on the same file system and as a copy otherwise (never a symlink: the feature stage
refuses links that lead out of the media roots), and the video's ``uri`` is the path relative to the
media root (``<format>/<item id>.<ext>``). The rest have no uri (null), which the pipeline treats as
a text-only video. Importing again keeps identical files, replaces changed ones atomically and
removes files of items that are no longer given. A hard link shares its bytes with the file in DIR:
replace files in DIR rather than editing them in place.

Output (replacing an earlier import of the same format):

- ``<warehouse>/landing/catalog/<format>.parquet``: video_id, uri, title, description, tags
  (``|``-joined), published_at, updated_at; all strings, times ISO-8601 UTC (``...Z``) or null.
  Every item that occurs in the interactions has a row, with a null title when the item file lacks it.
- ``<warehouse>/landing/interactions/<format>.parquet``: user_id (string), video_id (string),
  ts (int64, Unix epoch seconds), event (string), watch_seconds (float64, null: not in the data).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from jobs.plumbing.config import (
    DESCRIPTION,
    EVENT,
    PUBLISHED_AT,
    TAGS,
    TITLE,
    TS,
    UPDATED_AT,
    URI,
    USER_ID,
    VIDEO_ID,
    WATCH_SECONDS,
    Warehouse,
)

LIKE_RATING = 4.0
MAX_USER_TAGS = 20
MICROLENS_BASE_EPOCH = 1_577_836_800  # 2020-01-01T00:00:00Z
MOVIELENS_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
NO_GENRE = {"unknown", "(no genres listed)"}

CATALOG_SCHEMA = pa.schema(
    [(name, pa.string()) for name in (VIDEO_ID, URI, TITLE, DESCRIPTION, TAGS, PUBLISHED_AT, UPDATED_AT)]
)
INTERACTIONS_SCHEMA = pa.schema(
    [(USER_ID, pa.string()), (VIDEO_ID, pa.string()), (TS, pa.int64()), (EVENT, pa.string()),
     (WATCH_SECONDS, pa.float64())]
)  # fmt: skip


class DatasetError(Exception):
    """The source directory does not hold the dataset the format needs."""


@dataclass
class Dataset:
    catalog: pd.DataFrame  # video_id, title, tags (list[str]), published_at
    interactions: pd.DataFrame  # user_id, video_id, ts (int), event


def _require(source: Path, name: str) -> Path:
    path = source / name
    if not path.is_file():
        raise DatasetError(f"required file {path} is missing")
    return path


def _find_one(source: Path, pattern: str) -> Path:
    matches = sorted(p for p in source.glob(pattern) if p.is_file())
    if not matches:
        raise DatasetError(f"no {pattern} file in {source}")
    if len(matches) > 1:
        raise DatasetError(f"several {pattern} files in {source}: {', '.join(p.name for p in matches)}; keep one")
    return matches[0]


def _iso_day(moment: pd.Timestamp | datetime | None) -> str | None:
    if moment is None or pd.isna(moment):
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _events(ratings: pd.Series) -> pd.Series:
    return pd.Series(np.where(ratings >= LIKE_RATING, "like", "view"), index=ratings.index)


def _as_epoch(values: pd.Series, path: Path) -> pd.Series:
    epoch = pd.to_numeric(values, errors="coerce")
    if epoch.isna().any():
        bad = values[epoch.isna()].iloc[0]
        raise DatasetError(f"{path}: {int(epoch.isna().sum())} rows with an unreadable timestamp (first: {bad!r})")
    return epoch.astype("int64")


def read_movielens_100k(source: Path) -> Dataset:
    data_path, item_path = _require(source, "u.data"), _require(source, "u.item")
    ratings = pd.read_csv(
        data_path, sep="\t", header=None, names=[USER_ID, VIDEO_ID, "rating", TS], dtype=str, engine="c"
    )
    genre_path = source / "u.genre"
    genres = list(MOVIELENS_GENRES)
    if genre_path.is_file():
        lines = [line.split("|") for line in genre_path.read_text(encoding="latin-1").splitlines() if line.strip()]
        genres = [name for name, _ in sorted(((n, int(i)) for n, i in lines), key=lambda pair: pair[1])]
    items = pd.read_csv(
        item_path, sep="|", header=None, dtype=str, encoding="latin-1", keep_default_na=False, quoting=3
    )
    if items.shape[1] < 3 + len(genres):
        raise DatasetError(f"{item_path}: expected at least {3 + len(genres)} columns, found {items.shape[1]}")
    flags = items.iloc[:, -len(genres) :].to_numpy() == "1"
    released = pd.to_datetime(items[2], format="%d-%b-%Y", errors="coerce")
    catalog = pd.DataFrame(
        {
            VIDEO_ID: items[0].str.strip(),
            TITLE: items[1],
            TAGS: [[g for g, on in zip(genres, row) if on and g not in NO_GENRE] for row in flags],
            PUBLISHED_AT: [_iso_day(day) for day in released],
        }
    )
    interactions = pd.DataFrame(
        {
            USER_ID: ratings[USER_ID].str.strip(),
            VIDEO_ID: ratings[VIDEO_ID].str.strip(),
            TS: _as_epoch(ratings[TS], data_path),
            EVENT: _events(pd.to_numeric(ratings["rating"], errors="coerce")),
        }
    )
    return Dataset(catalog, interactions)


def _user_tags(tags_path: Path) -> dict[str, list[str]]:
    """A movie's most frequent user tags (case-insensitive, first spelling kept), most frequent first."""
    tags = pd.read_csv(tags_path, dtype=str, keep_default_na=False)
    missing = {"movieId", "tag"} - set(tags.columns)
    if missing:
        raise DatasetError(f"{tags_path}: missing columns {sorted(missing)}")
    tags = tags[["movieId", "tag"]].copy()
    tags["tag"] = tags["tag"].str.replace("|", "/", regex=False).str.strip()
    tags = tags[tags["tag"] != ""]
    tags["key"] = tags["tag"].str.lower()
    tags["order"] = np.arange(len(tags))
    grouped = tags.groupby(["movieId", "key"], sort=False).agg(
        tag=("tag", "first"), n=("tag", "size"), first=("order", "min")
    )
    grouped = grouped.reset_index().sort_values(["movieId", "n", "first"], ascending=[True, False, True])
    grouped = grouped.groupby("movieId", sort=False).head(MAX_USER_TAGS)
    return grouped.groupby("movieId", sort=False)["tag"].agg(list).to_dict()


def read_movielens_latest(source: Path) -> Dataset:
    ratings_path, movies_path = _require(source, "ratings.csv"), _require(source, "movies.csv")
    ratings = pd.read_csv(ratings_path, dtype=str, keep_default_na=False)
    movies = pd.read_csv(movies_path, dtype=str, keep_default_na=False)
    for path, frame, needed in (
        (ratings_path, ratings, {"userId", "movieId", "rating", "timestamp"}),
        (movies_path, movies, {"movieId", "title", "genres"}),
    ):
        if needed - set(frame.columns):
            raise DatasetError(f"{path}: missing columns {sorted(needed - set(frame.columns))}")
    user_tags = _user_tags(source / "tags.csv") if (source / "tags.csv").is_file() else {}
    year = pd.to_numeric(movies["title"].str.extract(r"\((\d{4})\)\s*$")[0], errors="coerce")
    tags = []
    for movie_id, genres in zip(movies["movieId"], movies["genres"]):
        names = [g.strip() for g in genres.split("|") if g.strip() and g.strip() not in NO_GENRE]
        seen = {n.lower() for n in names}
        names += [t for t in user_tags.get(movie_id, []) if t.lower() not in seen]
        tags.append(names)
    catalog = pd.DataFrame(
        {
            VIDEO_ID: movies["movieId"].str.strip(),
            TITLE: movies["title"].str.strip(),
            TAGS: tags,
            # Only the release year is known: published on 1 January of that year.
            PUBLISHED_AT: [None if pd.isna(y) else f"{int(y):04d}-01-01T00:00:00Z" for y in year],
        }
    )
    interactions = pd.DataFrame(
        {
            USER_ID: ratings["userId"].str.strip(),
            VIDEO_ID: ratings["movieId"].str.strip(),
            TS: _as_epoch(ratings["timestamp"], ratings_path),
            EVENT: _events(pd.to_numeric(ratings["rating"], errors="coerce")),
        }
    )
    return Dataset(catalog, interactions)


def read_microlens(source: Path) -> Dataset:
    pairs_path, titles_path = _find_one(source, "*_pairs.tsv"), _find_one(source, "*_titles.csv")
    users, items, positions = [], [], []
    with open(pairs_path, encoding="utf-8", errors="replace", newline="") as handle:
        for line in handle:
            # Tab after the user id, spaces between items; any whitespace is accepted.
            tokens = line.split()
            if not tokens or tokens[0].lower() in {"userid", "user_id", "user"}:
                continue  # a blank or header line
            user, sequence = tokens[0], tokens[1:]
            users.extend([user] * len(sequence))
            items.extend(sequence)
            positions.extend(range(len(sequence)))
    titles = pd.read_csv(titles_path, dtype=str, keep_default_na=False, encoding="utf-8", encoding_errors="replace")
    titles.columns = [c.strip().lower() for c in titles.columns]
    if not {"item", "title"} <= set(titles.columns):
        raise DatasetError(f"{titles_path}: expected a header line 'item,title', found {list(titles.columns)}")
    catalog = pd.DataFrame(
        {
            VIDEO_ID: titles["item"].str.strip(),
            TITLE: titles["title"].str.strip(),
            TAGS: [[] for _ in range(len(titles))],
            PUBLISHED_AT: None,
        }
    )
    interactions = pd.DataFrame(
        {
            USER_ID: users,
            VIDEO_ID: items,
            TS: MICROLENS_BASE_EPOCH + np.asarray(positions, dtype="int64"),
            EVENT: "view",
        }
    )
    return Dataset(catalog, interactions)


READERS: dict[str, Callable[[Path], Dataset]] = {
    "movielens-100k": read_movielens_100k,
    "movielens-latest": read_movielens_latest,
    "microlens": read_microlens,
}


def media_index(media_dir: Path) -> dict[str, Path]:
    """Item id -> the file ``<item id>.<ext>`` directly in media_dir (first by name on ties)."""
    index: dict[str, Path] = {}
    for path in sorted(media_dir.iterdir()):
        if path.is_file() and not path.name.startswith(".") and path.suffix:
            index.setdefault(path.stem, path)
    return index


@dataclass
class MediaPlacement:
    """What placing the media files did: item id -> uri, and how each file got there."""

    uris: dict[str, str]
    linked: int = 0
    copied: int = 0
    unchanged: int = 0
    removed: int = 0


def _same_content(source: Path, target: Path, chunk_size: int = 1 << 20) -> bool:
    """Whether target already holds source's bytes (the same inode, or equal bytes)."""
    if target.is_symlink():  # replaced by the file itself: the feature stage refuses links out of the root
        return False
    try:
        if os.path.samefile(source, target):
            return True
        if source.stat().st_size != target.stat().st_size:
            return False
    except FileNotFoundError:
        return False
    with open(source, "rb") as left, open(target, "rb") as right:
        while chunk := left.read(chunk_size):
            if chunk != right.read(chunk_size):
                return False
    return True


def _link_or_copy(source: Path, target: Path) -> str:
    """Put source's bytes at target in one rename; 'linked' or 'copied'."""
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(source, tmp)
            how = "linked"
        except OSError:  # another file system (EXDEV), not allowed (EPERM), no hard links: copy
            shutil.copy2(source, tmp)
            how = "copied"
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return how


def place_media(media_dir: Path, video_ids: set[str], media_root: Path, subdir: str) -> MediaPlacement:
    """Hard-link (or copy) the file of each of video_ids in media_dir to ``media_root/subdir/``.

    The uris are relative to the media root, which the feature stage reads them from. Files in
    ``subdir`` that no video names any more are removed: the directory belongs to this import.
    """
    target_dir = media_root / subdir
    files = {video_id: path for video_id, path in media_index(media_dir).items() if video_id in video_ids}
    target_dir.mkdir(parents=True, exist_ok=True)
    placement = MediaPlacement(uris={})
    for video_id, source in files.items():
        target = target_dir / source.name
        if _same_content(source, target):
            placement.unchanged += 1
        elif _link_or_copy(source, target) == "linked":
            placement.linked += 1
        else:
            placement.copied += 1
        placement.uris[video_id] = f"{subdir}/{source.name}"
    if media_dir.resolve() == target_dir.resolve():
        return placement  # --media is this very directory: its other files are the user's
    kept = {source.name for source in files.values()}
    for path in target_dir.iterdir():
        if path.name not in kept and path.is_file() and not path.is_symlink():
            path.unlink()
            placement.removed += 1
    return placement


def build_tables(dataset: Dataset, media: dict[str, str]) -> tuple[pa.Table, pa.Table]:
    """The landing tables: a catalog row for every item (also those only seen in interactions)."""
    catalog = dataset.catalog[dataset.catalog[VIDEO_ID] != ""].drop_duplicates(VIDEO_ID, keep="last")
    unknown = pd.unique(dataset.interactions.loc[~dataset.interactions[VIDEO_ID].isin(catalog[VIDEO_ID]), VIDEO_ID])
    if len(unknown):
        catalog = pd.concat(
            [catalog, pd.DataFrame({VIDEO_ID: unknown, TITLE: None, TAGS: [[] for _ in unknown], PUBLISHED_AT: None})],
            ignore_index=True,
        )
    catalog_table = pa.table(
        {
            VIDEO_ID: catalog[VIDEO_ID].tolist(),
            URI: [media.get(video_id) for video_id in catalog[VIDEO_ID]],
            TITLE: catalog[TITLE].tolist(),
            DESCRIPTION: [None] * len(catalog),
            TAGS: ["|".join(tags) if tags else None for tags in catalog[TAGS]],
            PUBLISHED_AT: catalog[PUBLISHED_AT].tolist(),
            UPDATED_AT: [None] * len(catalog),
        },
        schema=CATALOG_SCHEMA,
    )
    interactions = dataset.interactions
    interactions_table = pa.table(
        {
            USER_ID: interactions[USER_ID].astype(str).tolist(),
            VIDEO_ID: interactions[VIDEO_ID].astype(str).tolist(),
            TS: interactions[TS].to_numpy(dtype="int64"),
            EVENT: interactions[EVENT].astype(str).tolist(),
            WATCH_SECONDS: pa.nulls(len(interactions), pa.float64()),
        },
        schema=INTERACTIONS_SCHEMA,
    )
    return catalog_table, interactions_table


def write_parquet(table: pa.Table, path: Path) -> None:
    """Replace path atomically, so a reader never sees half an import."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.import_dataset", description=__doc__.splitlines()[0])
    parser.add_argument("--format", required=True, choices=sorted(READERS))
    parser.add_argument("--source", required=True, type=Path, help="directory holding the dataset files")
    parser.add_argument("--warehouse", default=None, help="warehouse root (default: $VREC_WAREHOUSE or ./warehouse)")
    parser.add_argument(
        "--media", type=Path, default=None, metavar="DIR",
        help="directory of <item id>.<ext> media files: each is hard-linked (or copied, across file systems) "
             "to <warehouse>/landing/media/<format>/ and its catalog uri is <format>/<item id>.<ext>",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warehouse = Warehouse.at(args.warehouse)
    placement = MediaPlacement(uris={})
    try:
        if not args.source.is_dir():
            raise DatasetError(f"--source {args.source} is not a directory")
        if args.media is not None and not args.media.is_dir():
            raise DatasetError(f"--media {args.media} is not a directory")
        dataset = READERS[args.format](args.source)
        if args.media is not None:
            video_ids = set(dataset.catalog[VIDEO_ID]) | set(dataset.interactions[VIDEO_ID])
            placement = place_media(args.media, video_ids, warehouse.landing_media, args.format)
        catalog, interactions = build_tables(dataset, placement.uris)
    except (DatasetError, OSError, ValueError, pd.errors.ParserError) as error:
        print(f"import_dataset: {args.format}: {error}", file=sys.stderr)
        return 2
    catalog_path = warehouse.landing_catalog / f"{args.format}.parquet"
    interactions_path = warehouse.landing_interactions / f"{args.format}.parquet"
    write_parquet(catalog, catalog_path)
    write_parquet(interactions, interactions_path)
    n_users = len(pd.unique(dataset.interactions[USER_ID]))
    n_likes = int((dataset.interactions[EVENT] == "like").sum())
    media = ""
    if args.media is not None:
        media = (f" (media: linked={placement.linked} copied={placement.copied} unchanged={placement.unchanged} "
                 f"removed={placement.removed} in {warehouse.landing_media / args.format})")
    print(
        f"import_dataset: format={args.format} videos={catalog.num_rows} users={n_users} "
        f"interactions={interactions.num_rows} likes={n_likes} with_media={len(placement.uris)} "
        f"-> {catalog_path}, {interactions_path}{media}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
