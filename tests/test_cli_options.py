"""Each stage option that `--help` documents, passed on the command line as an operator or a DAG
task passes it, on one small warehouse: the functions behind the options have tests of their own,
these show that each flag reaches them and does what its help says.

The warehouse: 40 generated text-only videos watched by 25 users, one bad interaction row, and
five videos with a uri: two real clips (3 s and 1 s) and three missing files, so that media
coverage is 0.4, under the default floor of 0.5.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from jobs.plumbing import config
from jobs.plumbing.stage import read_counters
from jobs.plumbing.tables import read_table
from tests.conftest import PROJECT_ROOT, project_env
from tests.landing import text_only_catalog, write_landing
from tests.test_features import channel_mean_encoder, make_clip

pytestmark = pytest.mark.spark
DAY_1, DAY_2, DAY_3 = "2026-11-20", "2026-11-21", "2026-11-22"
CLIPS = {"long": 3.0, "short": 1.0}            # video_id suffix -> seconds
MISSING = ("gone_1", "gone_2", "gone_3")
SMALL = "testsrc2=size=64x48:rate=10"


def cli(module: str, wh: config.Warehouse, *args: str, run_date: str | None = DAY_1,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    dated = ["--run-date", run_date] if run_date else []
    return subprocess.run([sys.executable, "-m", f"jobs.{module}", "--warehouse", str(wh.root), *dated, *args],
                          cwd=PROJECT_ROOT, env=project_env(**(env or {})), capture_output=True, text=True,
                          timeout=600)


def succeeded(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def error_line(done: subprocess.CompletedProcess) -> str:
    """The failing command's last stderr line: its one-line error."""
    assert done.returncode != 0, done.stderr[-3000:]
    return done.stderr.strip().splitlines()[-1]


def make_landing(wh: config.Warehouse) -> None:
    videos, _, rows = text_only_catalog(seed=5, n_videos=40, n_users=25)
    uris = {f"clip_{name}.mp4" for name in CLIPS} | {f"{name}.mp4" for name in MISSING}
    write_landing(wh, videos, rows + [{**rows[0], config.USER_ID: ""}])   # one bad row: no user
    lines = (wh.landing_catalog / "catalog.jsonl").read_text().splitlines()
    catalog = [json.loads(line) for line in lines]
    for row, uri in zip(catalog, sorted(uris)):
        row[config.URI] = uri
    (wh.landing_catalog / "catalog.jsonl").write_text("".join(json.dumps(r) + "\n" for r in catalog))
    wh.landing_media.mkdir(parents=True, exist_ok=True)
    for name, seconds in CLIPS.items():
        make_clip(wh.landing_media / f"clip_{name}.mp4", video=SMALL, seconds=seconds)


def media_rows(wh: config.Warehouse):
    features = read_table(wh.video_features).to_pandas()
    return features[features["uri"].isin([f"clip_{name}.mp4" for name in CLIPS])].set_index("uri")


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> config.Warehouse:
    """The landing zone, ingested and extracted with every option at its default."""
    wh = config.Warehouse.at(tmp_path_factory.mktemp("cli") / "warehouse")
    make_landing(wh)
    succeeded(cli("ingest", wh))
    succeeded(cli("extract_features", wh))
    return wh


def test_ingest_max_bad_row_share(warehouse):
    # The fixture's ingest passed with the default share (0.2); with none allowed the one bad row fails it.
    line = error_line(cli("ingest", warehouse, "--max-bad-row-share", "0"))
    assert line.startswith("error: [ingest] 1 of ") and "limit 0%" in line, line
    assert read_counters(warehouse, DAY_1)["ingest"]["interactions_rejected"] == 1


def test_extract_features_sampling_options_decode_again_and_are_stored(warehouse):
    assert media_rows(warehouse)["sampling"].tolist() == ["fps=1 max_duration_s=600 max_frames=64"] * 2
    assert not media_rows(warehouse)["truncated_by_cap"].any()

    succeeded(cli("extract_features", warehouse, "--fps", "0.5", "--max-duration-s", "2", run_date=DAY_2))
    counters = read_counters(warehouse, DAY_2)["extract_features"]
    assert (counters["videos_decoded"], counters["videos_skipped"]) == (2, 0)   # a new sampling: decoded again
    rows = media_rows(warehouse)
    assert rows["sampling"].tolist() == ["fps=0.5 max_duration_s=2 max_frames=64"] * 2
    assert rows.loc["clip_long.mp4", "truncated_by_cap"] and not rows.loc["clip_short.mp4", "truncated_by_cap"]

    succeeded(cli("extract_features", warehouse, "--fps", "0.5", "--max-duration-s", "2", "--no-full-refresh",
                  run_date=DAY_3))
    counters = read_counters(warehouse, DAY_3)["extract_features"]
    assert (counters["videos_decoded"], counters["videos_skipped"]) == (0, 2)
    assert counters["videos_quarantined"] == len(MISSING)


def test_extract_features_full_refresh_text_precision_and_frame_encoder(warehouse, tmp_path):
    from features.text import TextEmbedder, video_text

    encoder = tmp_path / "encoder.pt"
    channel_mean_encoder().save(str(encoder))
    succeeded(cli("extract_features", warehouse, "--full-refresh", "--text-precision", "float32",
                  "--frame-encoder", str(encoder), "--decode-timeout-s", "60"))
    counters = read_counters(warehouse, DAY_1)["extract_features"]
    assert counters["videos_decoded"] == 2 and counters["frame_encoder"]["dim"] == 3
    rows = media_rows(warehouse)
    assert all(len(vector) == 3 for vector in rows["frame_embedding"])
    # Every text embedded again, in float32: the vectors are the float32 embedder's own.
    features = read_table(warehouse.video_features).to_pandas().sort_values("video_id")
    catalog = read_table(warehouse.catalog).to_pandas().set_index("video_id").loc[features["video_id"]]
    texts = [video_text(t, d, g) for t, d, g in zip(catalog["title"], catalog["description"], catalog["tags"])]
    expected = TextEmbedder(precision="float32").embed(texts)
    assert np.abs(np.stack(features["text_embedding"].to_numpy()) - expected).max() < 1e-5

    line = error_line(cli("extract_features", warehouse, "--text-precision", "fp8"))
    assert line.startswith("error: [extract_features] text precision 'fp8'"), line


def test_the_environment_sets_the_defaults_the_help_names(warehouse):
    """The DAG's tasks pass most settings as VREC_* variables, not flags."""
    line = error_line(cli("ingest", warehouse, env={"VREC_MAX_BAD_ROW_SHARE": "0"}))
    assert line.startswith("error: [ingest] 1 of ") and "limit 0%" in line, line
    succeeded(cli("validate_features", warehouse, env={"VREC_MIN_FEATURE_COVERAGE": "0.3"}))

    succeeded(cli("extract_features", warehouse, run_date=DAY_2,
                  env={"VREC_MAX_DURATION_S": "2", "VREC_MAX_FRAMES": "8"}))
    rows = media_rows(warehouse)
    assert rows["sampling"].tolist() == ["fps=1 max_duration_s=2 max_frames=8"] * 2
    assert rows.loc["clip_long.mp4", "truncated_by_cap"]
    succeeded(cli("extract_features", warehouse))   # back to the defaults, for the tests after this one
    assert media_rows(warehouse)["sampling"].tolist() == ["fps=1 max_duration_s=600 max_frames=64"] * 2


def test_validate_features_min_coverage(warehouse):
    line = error_line(cli("validate_features", warehouse))           # 2 of 5 media files decoded
    assert line.startswith("error: [validate_features]") and "missing" in line, line
    succeeded(cli("validate_features", warehouse, "--min-coverage", "0.3"))
    assert read_counters(warehouse, DAY_1)["validate_features"]["success"]


def test_train_options(warehouse):
    line = error_line(cli("train", warehouse, "--training-mode", "incremental", "--no-full-refresh"))
    assert line.startswith("error: [train] training_mode=incremental is not possible"), line

    succeeded(cli("train", warehouse, "--training-mode", "incremental", "--full-refresh", "--epochs", "2",
                  "--fine-tune-epochs", "1", "--batch-size", "64", "--seed", "3"))
    counters = read_counters(warehouse, DAY_1)["train"]
    assert (counters["training_mode"], counters["mode_reason"]) == ("full", "full_refresh")
    assert (counters["max_epochs"], counters["fine_tune_epochs"], counters["batch_size"]) == (2, 1, 64)
    model = json.loads((warehouse.models / counters["model_version"] / "model.json").read_text())
    assert model["seed"] == 3


def test_publish_and_rollback_options(warehouse):
    from jobs.plumbing.serving import published_versions

    if "train" not in read_counters(warehouse, DAY_1):
        succeeded(cli("train", warehouse, "--epochs", "2"))
    succeeded(cli("score", warehouse, "--top-n", "5"))           # the model trained for DAY_1
    succeeded(cli("publish", warehouse, "--top-n", "5"))
    succeeded(cli("score", warehouse, "--top-n", "5", "--model-version", "production", run_date=DAY_2))
    succeeded(cli("publish", warehouse, "--top-n", "5", run_date=DAY_2))
    assert sorted(published_versions(warehouse.recommendations.delta_table()).values()) == [DAY_1, DAY_2]

    def current_run_date() -> str:
        lists = warehouse.recommendations.delta_table().to_pyarrow_table(columns=[config.RUN_DATE])
        return str(lists.column(0)[0].as_py())

    succeeded(cli("rollback", warehouse, "--to-version", "0", run_date=None))
    assert current_run_date() == DAY_1
    # With no retention, the rollback vacuums the files no current version reads: version 0's lists.
    done = succeeded(cli("rollback", warehouse, "--to-date", DAY_2, "--retention-days", "0", run_date=None))
    assert current_run_date() == DAY_2
    line = error_line(cli("rollback", warehouse, "--to-version", "0", run_date=None))
    assert line.startswith("error: [rollback] version 0 can no longer be restored"), (line, done.stderr)

    succeeded(cli("score", warehouse, "--top-n", "5", "--model-version", "production", run_date=DAY_3))
    succeeded(cli("publish", warehouse, "--top-n", "5", "--retention-days", "0", run_date=DAY_3))
    assert read_counters(warehouse, DAY_3)["publish"]["files_vacuumed"] > 0


def test_run_nightly_passes_its_options_to_the_stages(tmp_path):
    wh = config.Warehouse.at(tmp_path / "warehouse")
    make_landing(wh)
    done = cli("run_nightly", wh, "--max-bad-row-share", "0")
    assert error_line(done).startswith("error: [ingest] 1 of "), done.stderr[-2000:]
    # The media coverage (0.4) passes only the lowered floor; then an incremental night with no
    # production model fails in train, saying why.
    done = cli("run_nightly", wh, "--min-coverage", "0.3", "--training-mode", "incremental", "--decode-timeout-s",
               "60", "--seed", "3", "--top-n", "5")
    assert error_line(done).startswith("error: [train] training_mode=incremental is not possible"), \
        done.stderr[-2000:]
    assert read_counters(wh, DAY_1)["validate_features"]["success"]


def test_local_cluster_options(tmp_path):
    directory = tmp_path / "cluster"
    process = subprocess.Popen([sys.executable, "-m", "jobs.local_cluster", "--workers", "1", "--worker-memory", "700m",
                                "--dir", str(directory)], cwd=PROJECT_ROOT, env=project_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = process.stdout.readline()
        assert first.startswith("master spark://127.0.0.1:"), (first, process.stderr.read() if process.poll() else "")
        ui = first.split(" ui ")[1].split()[0]
        with urllib.request.urlopen(f"{ui}/json/", timeout=10) as response:
            status = json.load(response)
        assert [(w["cores"], w["memory"]) for w in status["workers"]] == [(1, 700)]
        assert (directory / "logs").is_dir()
        assert "spark.sql.shuffle.partitions 3\n" in (directory / "conf" / "spark-defaults.conf").read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    time.sleep(1)
    with pytest.raises(OSError):   # the master went with it
        urllib.request.urlopen(f"{ui}/json/", timeout=5)
