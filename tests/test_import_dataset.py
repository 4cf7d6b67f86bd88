"""Importing public datasets into landing Parquet files: real MovieLens 100K and small hand-made sources."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.datasets import import_dataset

ML100K = Path(__file__).resolve().parents[2] / "shared" / "data" / "movielens-100k"
MICROLENS_BASE = import_dataset.MICROLENS_BASE_EPOCH


def _run(fmt: str, source: Path, warehouse: Path, *extra: str) -> int:
    return import_dataset.main(["--format", fmt, "--source", str(source), "--warehouse", str(warehouse), *extra])


def _tables(warehouse: Path, fmt: str) -> tuple[pa.Table, pa.Table]:
    landing = warehouse / "landing"
    return (
        pq.read_table(landing / "catalog" / f"{fmt}.parquet"),
        pq.read_table(landing / "interactions" / f"{fmt}.parquet"),
    )


def _by_id(catalog: pa.Table) -> dict[str, dict]:
    return {row["video_id"]: row for row in catalog.to_pylist()}


def test_movielens_100k_real_data(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    if not (ML100K / "u.data").is_file():
        pytest.skip(f"real MovieLens 100K not present at {ML100K}")
    assert _run("movielens-100k", ML100K, tmp_path) == 0
    summary = capsys.readouterr().out.strip().splitlines()
    assert len(summary) == 1 and "interactions=100000" in summary[0]
    catalog, interactions = _tables(tmp_path, "movielens-100k")

    assert catalog.schema.field("video_id").type == pa.string()
    assert interactions.schema.field("user_id").type == pa.string()
    assert interactions.schema.field("video_id").type == pa.string()
    assert interactions.schema.field("ts").type == pa.int64()
    assert catalog.num_rows == 1682 and len(set(catalog.column("video_id").to_pylist())) == 1682
    assert interactions.num_rows == 100_000
    assert len(set(interactions.column("user_id").to_pylist())) == 943

    toy_story = _by_id(catalog)["1"]
    assert toy_story["title"] == "Toy Story (1995)"
    assert {"Animation", "Children's", "Comedy"} <= set(toy_story["tags"].split("|"))
    assert toy_story["published_at"] == "1995-01-01T00:00:00Z"
    assert toy_story["uri"] is None
    # u.data's first row: user 196 rated item 242 with 3 at 881250949.
    first = interactions.slice(0, 1).to_pylist()[0]
    assert first == {"user_id": "196", "video_id": "242", "ts": 881250949, "event": "view", "watch_seconds": None}
    # MovieLens 100K has 34,174 ratings of 4 and 21,201 of 5.
    assert interactions.column("event").to_pylist().count("like") == 34_174 + 21_201

    # Importing again replaces the output instead of adding to it.
    assert _run("movielens-100k", ML100K, tmp_path) == 0
    assert _tables(tmp_path, "movielens-100k")[1].num_rows == 100_000


def _write(path: Path, text: str, newline: str = "\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.replace("\n", newline).encode("utf-8"))


@pytest.fixture
def movielens_latest(tmp_path: Path) -> Path:
    source = tmp_path / "ml-latest-small"
    _write(source / "movies.csv", "movieId,title,genres\n"
           "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
           '11,"American President, The (1995)",Comedy|Drama|Romance\n'
           "12,No Year Given,(no genres listed)\n")  # fmt: skip
    _write(source / "ratings.csv", "userId,movieId,rating,timestamp\n"
           "1,1,4.0,964982703\n1,11,3.5,964981247\n2,1,5.0,964982224\n2,99,2.0,964983000\n")  # fmt: skip
    _write(source / "tags.csv", "userId,movieId,tag,timestamp\n"
           "2,1,fun,1\n2,1,pixar,2\n3,1,Pixar,3\n2,11,politics,4\n")  # fmt: skip
    return source


def test_movielens_latest(movielens_latest: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse"
    assert _run("movielens-latest", movielens_latest, warehouse) == 0
    catalog, interactions = _tables(warehouse, "movielens-latest")
    rows = _by_id(catalog)
    assert set(rows) == {"1", "11", "12", "99"}  # 99 is only rated: it still gets a catalog row
    assert rows["1"]["tags"] == "Adventure|Animation|Children|Comedy|Fantasy|pixar|fun"  # by tag count
    assert rows["11"]["title"] == "American President, The (1995)"
    assert rows["11"]["tags"] == "Comedy|Drama|Romance|politics"
    assert rows["12"]["tags"] is None and rows["12"]["published_at"] is None
    assert rows["1"]["published_at"] == "1995-01-01T00:00:00Z"
    assert rows["99"]["title"] is None
    assert interactions.to_pydict() == {
        "user_id": ["1", "1", "2", "2"],
        "video_id": ["1", "11", "1", "99"],
        "ts": [964982703, 964981247, 964982224, 964983000],
        "event": ["like", "view", "like", "view"],
        "watch_seconds": [None] * 4,
    }


def test_movielens_latest_without_tags_file(movielens_latest: Path, tmp_path: Path) -> None:
    (movielens_latest / "tags.csv").unlink()
    assert _run("movielens-latest", movielens_latest, tmp_path) == 0
    toy_story = _by_id(_tables(tmp_path, "movielens-latest")[0])["1"]
    assert toy_story["tags"] == "Adventure|Animation|Children|Comedy|Fantasy"


@pytest.fixture
def microlens(tmp_path: Path) -> Path:
    source = tmp_path / "microlens"
    _write(source / "MicroLens-50k_pairs.tsv", "1\t30 10 20\n2\t10\n3\t20 30\n")
    _write(source / "MicroLens-50k_titles.csv",
           'item,title\n10,"Cats, dogs and ""friends"""\n20,Plain title\n30,Third one\n40,Never watched\n',
           newline="\r\n")  # fmt: skip
    return source


def test_microlens_keeps_file_order_and_reads_crlf_titles(microlens: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse"
    assert _run("microlens", microlens, warehouse) == 0
    catalog, interactions = _tables(warehouse, "microlens")
    rows = _by_id(catalog)
    assert set(rows) == {"10", "20", "30", "40"}
    assert rows["10"]["title"] == 'Cats, dogs and "friends"'
    assert rows["40"]["title"] == "Never watched"  # no trailing \r from the CRLF file
    assert all(row["uri"] is None for row in rows.values())
    assert interactions.to_pydict() == {
        "user_id": ["1", "1", "1", "2", "3", "3"],
        "video_id": ["30", "10", "20", "10", "20", "30"],
        "ts": [MICROLENS_BASE, MICROLENS_BASE + 1, MICROLENS_BASE + 2, MICROLENS_BASE, MICROLENS_BASE,
               MICROLENS_BASE + 1],
        "event": ["view"] * 6,
        "watch_seconds": [None] * 6,
    }  # fmt: skip


@pytest.fixture
def media(tmp_path: Path) -> Path:
    media = tmp_path / "media"
    media.mkdir()
    for name, data in (("10.mp4", b"ten"), ("10.webm", b"not me"), ("40.webm", b"forty"), ("junk.txt", b"j"),
                       ("30", b"no extension"), ("99.mp4", b"no such item")):
        (media / name).write_bytes(data)
    return media


def _placed(warehouse: Path) -> dict[str, bytes]:
    folder = warehouse / "landing" / "media" / "microlens"
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_media_are_hard_linked_into_the_media_root_with_relative_uris(
    microlens: Path, media: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    warehouse = tmp_path / "warehouse"
    assert _run("microlens", microlens, warehouse, "--media", str(media)) == 0
    assert "with_media=2 " in capsys.readouterr().out
    rows = _by_id(_tables(warehouse, "microlens")[0])
    assert rows["10"]["uri"] == "microlens/10.mp4"  # relative to landing/media; .mp4 before .webm
    assert rows["40"]["uri"] == "microlens/40.webm"
    assert rows["20"]["uri"] is None and rows["30"]["uri"] is None  # "30" has no extension
    assert "junk" not in rows and "99" not in rows
    # Only the files of catalog items, each the very same inode as its source (a hard link).
    assert _placed(warehouse) == {"10.mp4": b"ten", "40.webm": b"forty"}
    placed = warehouse / "landing" / "media" / "microlens" / "10.mp4"
    assert placed.samefile(media / "10.mp4") and not placed.is_symlink()


def _refuse_hard_links(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    def refuse(src, dst, *args, **kwargs):
        raise OSError(code, os.strerror(code), str(src), None, str(dst))

    monkeypatch.setattr(import_dataset.os, "link", refuse)


def test_media_are_copied_where_hard_links_fail(
    microlens: Path, media: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    _refuse_hard_links(monkeypatch, errno.EXDEV)  # the media on another file system
    warehouse = tmp_path / "warehouse"
    assert _run("microlens", microlens, warehouse, "--media", str(media)) == 0
    assert "linked=0 copied=2 unchanged=0" in capsys.readouterr().out
    assert _by_id(_tables(warehouse, "microlens")[0])["40"]["uri"] == "microlens/40.webm"
    placed = warehouse / "landing" / "media" / "microlens" / "40.webm"
    assert placed.read_bytes() == b"forty" and not placed.samefile(media / "40.webm")


def test_media_reimport_keeps_identical_files_and_replaces_changed_ones(
    microlens: Path, media: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    _refuse_hard_links(monkeypatch, errno.EPERM)  # e.g. fs.protected_hardlinks on someone else's files
    warehouse = tmp_path / "warehouse"
    folder = warehouse / "landing" / "media" / "microlens"
    assert _run("microlens", microlens, warehouse, "--media", str(media)) == 0
    inode = (folder / "40.webm").stat().st_ino
    capsys.readouterr()

    assert _run("microlens", microlens, warehouse, "--media", str(media)) == 0
    assert "linked=0 copied=0 unchanged=2 removed=0" in capsys.readouterr().out
    assert (folder / "40.webm").stat().st_ino == inode  # left alone, not written again

    (media / "10.mp4").write_bytes(b"TEN")  # same size, other bytes
    (media / "40.webm").unlink()
    assert _run("microlens", microlens, warehouse, "--media", str(media)) == 0
    assert "copied=1 unchanged=0 removed=1" in capsys.readouterr().out
    assert _placed(warehouse) == {"10.mp4": b"TEN"}  # no temporary files left behind
    assert _by_id(_tables(warehouse, "microlens")[0])["40"]["uri"] is None


def test_media_symlink_in_the_target_is_replaced_by_the_file(microlens: Path, media: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse"
    folder = warehouse / "landing" / "media" / "microlens"
    folder.mkdir(parents=True)
    (folder / "10.mp4").symlink_to(media / "10.mp4")  # same bytes, but a link out of the media root
    assert _run("microlens", microlens, warehouse, "--media", str(media)) == 0
    assert not (folder / "10.mp4").is_symlink() and (folder / "10.mp4").samefile(media / "10.mp4")


def test_media_directory_that_is_already_the_target_is_left_as_it_is(microlens: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse"
    folder = warehouse / "landing" / "media" / "microlens"
    folder.mkdir(parents=True)
    (folder / "10.mp4").write_bytes(b"ten")
    (folder / "notes.txt").write_bytes(b"the user's own file")
    assert _run("microlens", microlens, warehouse, "--media", str(folder)) == 0
    assert _by_id(_tables(warehouse, "microlens")[0])["10"]["uri"] == "microlens/10.mp4"
    assert _placed(warehouse) == {"10.mp4": b"ten", "notes.txt": b"the user's own file"}


def test_formats_write_side_by_side_and_reimport_replaces(
    movielens_latest: Path, microlens: Path, tmp_path: Path
) -> None:
    warehouse = tmp_path / "warehouse"
    assert _run("movielens-latest", movielens_latest, warehouse) == 0
    assert _run("microlens", microlens, warehouse) == 0
    _write(microlens / "MicroLens-50k_pairs.tsv", "1\t10\n")
    assert _run("microlens", microlens, warehouse) == 0
    assert sorted(p.name for p in (warehouse / "landing" / "interactions").iterdir()) == [
        "microlens.parquet", "movielens-latest.parquet"]  # fmt: skip
    assert _tables(warehouse, "microlens")[1].num_rows == 1
    assert _tables(warehouse, "movielens-latest")[1].num_rows == 4


@pytest.mark.parametrize(
    ("fmt", "missing"),
    [("movielens-latest", "movies.csv"), ("movielens-latest", "ratings.csv"), ("microlens", "_titles.csv"),
     ("microlens", "_pairs.tsv")],
)  # fmt: skip
def test_missing_required_file_is_one_clear_error(
    fmt: str, missing: str, movielens_latest: Path, microlens: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    source = movielens_latest if fmt == "movielens-latest" else microlens
    for path in source.iterdir():
        if path.name.endswith(missing):
            path.unlink()
    warehouse = tmp_path / "warehouse"
    assert _run(fmt, source, warehouse) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and missing in err[0]
    assert not (warehouse / "landing").exists()


def test_missing_source_directory(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert _run("movielens-100k", tmp_path / "nowhere", tmp_path) != 0
    assert "nowhere" in capsys.readouterr().err


def test_the_contract_command_python_m_jobs_import_dataset_imports(tmp_path: Path) -> None:
    """`python -m jobs.import_dataset` (DESIGN.md) runs the importer of jobs/datasets/."""
    import subprocess
    import sys

    from tests.conftest import project_env

    source = tmp_path / "ml"
    source.mkdir()
    (source / "u.data").write_text("1\t10\t5\t881250949\n1\t11\t3\t881250950\n")
    (source / "u.item").write_text("10|Ten (1995)|01-Jan-1995||" + "|0" * 19 + "\n"
                                   "11|Eleven (1996)|01-Jan-1996||" + "|0" * 19 + "\n", encoding="latin-1")
    done = subprocess.run([sys.executable, "-m", "jobs.import_dataset", "--format", "movielens-100k",
                           "--source", str(source), "--warehouse", str(tmp_path / "wh")],
                          env=project_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "videos=2 users=1 interactions=2 likes=1" in done.stdout
    catalog, interactions = _tables(tmp_path / "wh", "movielens-100k")
    assert sorted(catalog.column("video_id").to_pylist()) == ["10", "11"]
    assert interactions.column("event").to_pylist() == ["like", "view"]
