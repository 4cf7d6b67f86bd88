"""An S3-compatible server on 127.0.0.1 for the tests: moto's, started as a process of its own.

Not moto's in-process `ThreadedMotoServer`: some delta-rs calls (`DeltaTable.history()`) wait on
the network while holding the GIL, so a server thread in the same interpreter could never answer
them (the test process hung there). moto accepts any credentials; the tests read which ones a
request was signed with from moto's request recorder.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REGION = "us-east-1"


@dataclass
class S3Server:
    endpoint: str
    process: subprocess.Popen
    workdir: Path   # the server's working directory: its log, and the recorder's file

    def environment(self, access_key_id: str = "vrec-test-key", secret: str = "vrec-test-secret") -> dict[str, str]:
        """The AWS_* variables a job reaches this server with."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": REGION,
                "AWS_ACCESS_KEY_ID": access_key_id, "AWS_SECRET_ACCESS_KEY": secret}

    def create_bucket(self, name: str) -> None:
        import boto3

        boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id="admin",
                     aws_secret_access_key="admin").create_bucket(Bucket=name)

    @contextmanager
    def recording(self):
        """The requests the server receives inside the block: method, url and headers of each."""
        requests: list[dict] = []
        self._moto_api("reset-recording")
        self._moto_api("start-recording")
        try:
            yield requests
        finally:
            self._moto_api("stop-recording")
            with urllib.request.urlopen(f"{self.endpoint}/moto-api/recorder/download-recording") as answer:
                requests += [json.loads(line) for line in answer.read().decode().splitlines() if line.strip()]

    def _moto_api(self, action: str) -> None:
        request = urllib.request.Request(f"{self.endpoint}/moto-api/recorder/{action}", method="POST")
        urllib.request.urlopen(request).close()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_s3_server(attempts: int = 3, timeout_s: float = 30.0) -> S3Server:
    """moto's server on a free port; RuntimeError saying why when it does not answer."""
    import moto.server  # noqa: F401 -- ImportError here means moto[server] is not installed

    why = "no attempt made"
    for _ in range(attempts):  # the free port may be taken between the probe and the bind
        port, workdir = _free_port(), Path(tempfile.mkdtemp(prefix="vrec-s3-server-"))
        # The log goes to a file, not a pipe that nobody reads (it would fill and stall the server);
        # the recorder writes `moto_recording` in the working directory.
        with open(workdir / "server.log", "wb") as log:
            process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                       stdout=log, stderr=log, cwd=workdir)
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and process.poll() is None:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                return S3Server(endpoint, process, workdir)
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        if process.poll() is None:
            process.kill()
        process.wait()
        lines = (workdir / "server.log").read_text(errors="replace").strip().splitlines()
        why = lines[-1] if lines else f"no answer on {endpoint} within {timeout_s:.0f} s"
        shutil.rmtree(workdir, ignore_errors=True)
    raise RuntimeError(why)
