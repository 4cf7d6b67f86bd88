"""Local cluster: a real Spark standalone cluster on 127.0.0.1, to try the pipeline as it runs on one.

    python -m jobs.local_cluster [--workers 2] [--worker-memory 1536m] [--dir .cluster]

Starts a master and `--workers` workers from the pyspark distribution (`spark-class`
...deploy.master.Master / ...deploy.worker.Worker), one core each, on free ports, prints the master
URL and the UI, and runs until Ctrl-C, when it stops them. Each worker starts with a clean
environment (no PYTHONPATH) in a working directory of its own, outside the checkout: executors can
import the project only from what a job ships (`--py-files`, the DAG's `package` task).

`<dir>/conf/spark-defaults.conf` is written for clients (`SPARK_CONF_DIR=<dir>/conf`): the master,
event logs in `<dir>/events`, jobs that wait for every worker's executor before they start, and
three shuffle partitions per worker core (Spark's 200 are meant for clusters of hundreds of cores).
Logs of the master and workers are in `<dir>/logs`. The test suite uses the same class as a fixture.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


@dataclass
class LocalCluster:
    """A standalone master and workers on 127.0.0.1; `start()` returns once every worker is ALIVE."""

    directory: Path
    workers: int = 2
    worker_memory: str = "1536m"
    master_port: int = field(default_factory=free_port)
    master_ui_port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def master_url(self) -> str:
        return f"spark://{HOST}:{self.master_port}"

    @property
    def ui_url(self) -> str:
        return f"http://{HOST}:{self.master_ui_port}"

    @property
    def conf_dir(self) -> Path:
        return self.directory / "conf"

    @property
    def event_dir(self) -> Path:
        return self.directory / "events"

    @property
    def log_dir(self) -> Path:
        return self.directory / "logs"

    def start(self, timeout: float = 120) -> "LocalCluster":
        for folder in (self.conf_dir, self.event_dir, self.log_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._write_client_conf()
        self._launch("master", "org.apache.spark.deploy.master.Master",
                     "--host", HOST, "--port", str(self.master_port), "--webui-port", str(self.master_ui_port))
        for number in range(1, self.workers + 1):
            work = self.directory / f"worker-{number}"
            work.mkdir(exist_ok=True)
            self._launch(f"worker-{number}", "org.apache.spark.deploy.worker.Worker", self.master_url,
                         "--host", HOST, "--cores", "1", "--memory", self.worker_memory,
                         "--webui-port", str(free_port()), "--work-dir", str(work), cwd=work)
        self._wait_for_workers(timeout)
        return self

    def stop(self) -> None:
        """Workers first, then the master: SIGTERM, then SIGKILL for one that does not exit."""
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in reversed(self.processes):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()

    def status(self) -> dict:
        """The master's JSON status page: workers, active and completed applications."""
        with urllib.request.urlopen(f"{self.ui_url}/json/", timeout=10) as response:
            return json.load(response)

    def __enter__(self) -> "LocalCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _write_client_conf(self) -> None:
        self.conf_dir.joinpath("spark-defaults.conf").write_text("\n".join([
            f"spark.master {self.master_url}",
            "spark.eventLog.enabled true",
            f"spark.eventLog.dir file://{self.event_dir}",
            "spark.eventLog.compress false",   # one file of plain JSON lines per application
            "spark.eventLog.rolling.enabled false",
            f"spark.driver.host {HOST}",
            # Without these a small job can finish on the first executor before the others register.
            "spark.scheduler.minRegisteredResourcesRatio 1.0",
            "spark.scheduler.maxRegisteredResourcesWaitingTime 60s",
            "spark.executor.memory 1g",
            f"spark.sql.shuffle.partitions {3 * self.workers}",
        ]) + "\n")

    def _launch(self, name: str, main_class: str, *args: str, cwd: Path | None = None) -> None:
        # A clean environment: what a cluster node has, not this shell's PYTHONPATH or checkout.
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(self.directory), "SPARK_HOME": str(spark_home()),
               "SPARK_LOCAL_IP": HOST, "SPARK_LOG_DIR": str(self.log_dir)}
        if os.environ.get("JAVA_HOME"):
            env["JAVA_HOME"] = os.environ["JAVA_HOME"]
        log = (self.log_dir / f"{name}.log").open("ab")
        self.processes.append(subprocess.Popen(
            [str(spark_home() / "bin" / "spark-class"), main_class, *args],
            env=env, cwd=cwd or self.directory, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def _wait_for_workers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(process.poll() is not None for process in self.processes):
                break
            try:
                alive = [w for w in self.status().get("workers", []) if w.get("state") == "ALIVE"]
                if len(alive) >= self.workers:
                    return
            except OSError:
                pass
            time.sleep(1)
        self.stop()
        raise RuntimeError(f"the standalone cluster did not come up with {self.workers} workers "
                           f"within {timeout:.0f} s; logs in {self.log_dir}")


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="workers started, one core each (default 2)")
    parser.add_argument("--worker-memory", default="1536m", help="memory each worker offers (default 1536m)")
    parser.add_argument("--dir", type=Path, default=Path(".cluster"), help="conf, event logs, logs, work dirs")
    args = parser.parse_args(argv)
    cluster = LocalCluster(args.dir.resolve(), workers=args.workers, worker_memory=args.worker_memory)
    # The master and workers run in sessions of their own: a SIGTERM to this process (a supervisor,
    # `timeout`) must stop them as Ctrl-C does, not leave them running.
    signal.signal(signal.SIGTERM, _interrupt)
    with cluster:
        print(f"master {cluster.master_url}  ui {cluster.ui_url}  workers {args.workers}\n"
              f"submit with: SPARK_CONF_DIR={cluster.conf_dir} (or --master {cluster.master_url})\n"
              f"the DAG: AIRFLOW_CONN_SPARK_DEFAULT='{{\"conn_type\": \"spark\", \"host\": \"spark://{HOST}\", "
              f"\"port\": {cluster.master_port}}}'\nCtrl-C stops it; logs in {cluster.log_dir}", flush=True)
        try:
            while all(process.poll() is None for process in cluster.processes):
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
