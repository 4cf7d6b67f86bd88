"""Shared fixtures: the project root, the real data in ../shared/data, one SparkSession, an S3 test
server and the AWS_* environment that reaches it, and the environment for running the project's
CLIs and Airflow in subprocesses."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"

# The tests start over a hundred short-lived Spark driver JVMs on tiny data, which spend most of
# their life loading classes and compiling: the quick (C1) JIT alone and the serial collector make
# a stage about a quarter faster here, and an archive of the classes a driver loads
# (tests/spark_class_archive.py) takes a session's start from about 7 s to 4. Every spark-submit
# reads SPARK_SUBMIT_OPTS: the SparkSessions pyspark launches, the CLIs' and the DAG's stages (the
# subprocesses and xdist's workers inherit the environment). Production runs keep the JVM's defaults.
TEST_JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def pytest_configure(config):
    config.addinivalue_line("markers", "spark: needs a local SparkSession")
    config.addinivalue_line("markers", "slow: runs the whole pipeline (minutes)")
    config.addinivalue_line("markers", "gpu: needs CUDA")
    config.addinivalue_line("markers", "cluster: runs on the Spark standalone cluster of the `spark_cluster` fixture")
    if not hasattr(config, "workerinput") and config.getoption("numprocesses", None):
        # With the files in parallel processes, two trainings often share the cores, and OpenMP's
        # waiting threads (torch's, LightGBM's) spin on the core the other process needs: two
        # MovieLens-100k nights side by side took 14 min 22 s each, 4 min 2 s with them asleep (one
        # alone: 2 min 33 s). Set before xdist starts its workers, which inherit it; production
        # nodes keep OpenMP's default.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if hasattr(config, "workerinput") or "SPARK_SUBMIT_OPTS" in os.environ:
        return   # an xdist worker: the controller has set it; or whoever runs the tests chose their own
    from tests.spark_class_archive import build

    directory = Path(tempfile.mkdtemp(prefix="vrec-spark-classes-"))
    config.add_cleanup(lambda: shutil.rmtree(directory, ignore_errors=True))
    archive = directory / "driver.jsa"
    shared = f" -XX:SharedArchiveFile={archive}" if build(archive, TEST_JVM_OPTIONS) else ""
    os.environ["SPARK_SUBMIT_OPTS"] = TEST_JVM_OPTIONS + shared


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


def project_env(**extra: str) -> dict[str, str]:
    """Environment for subprocesses: the venv's tools first, the project importable, offline."""
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ)
    env.update({
        "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONPATH": str(PROJECT_ROOT),
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "VREC_PYTHON": sys.executable,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    })
    env.update(extra)
    return env


def _can_isolate_network() -> bool:
    try:
        return subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


def offline(command: list[str]) -> list[str]:
    """`command` in a network namespace with only loopback up, so any download would fail.

    Where namespaces are not allowed (not root) the command runs as it is.
    """
    if not _can_isolate_network():
        return command
    return ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *command]


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["VREC_SPARK_LOCAL_DIR"] = str(tmp_path_factory.mktemp("spark-local"))
    os.environ.setdefault("VREC_SHUFFLE_PARTITIONS", "2")
    from jobs.plumbing.spark import get_spark

    session = get_spark("vrec-tests", master="local[2]")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def s3_server():
    """An S3-compatible server (moto) on a free port of 127.0.0.1, for the whole session. The tests
    that need it skip, saying why, only when it cannot start."""
    from tests.s3_server import start_s3_server

    try:
        server = start_s3_server()
    except (ImportError, RuntimeError) as err:
        pytest.skip(f"moto's S3 server could not start: {err}")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def s3_env(s3_server) -> dict[str, str]:
    """The AWS_* environment that reaches the test server, set in this process for the module."""
    env = s3_server.environment()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        yield env


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory, request):
    """A Spark standalone master and two one-core workers on 127.0.0.1 (`jobs.local_cluster`), workers
    with a clean environment outside the checkout. When a test failed while it ran, its logs, event
    logs and executor logs are kept in test-artifacts/spark-cluster/."""
    from jobs.local_cluster import LocalCluster

    failed_before = request.session.testsfailed
    cluster = LocalCluster(tmp_path_factory.mktemp("spark-cluster"), workers=2).start()
    yield cluster
    cluster.stop()
    if request.session.testsfailed > failed_before:
        kept = PROJECT_ROOT / "test-artifacts" / "spark-cluster"
        shutil.rmtree(kept, ignore_errors=True)
        shutil.copytree(cluster.directory, kept, ignore=shutil.ignore_patterns("*.zip", "*.jar"))
