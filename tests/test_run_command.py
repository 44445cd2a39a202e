"""`make run`'s launcher: embedded PostgreSQL when none is configured, the service up
and converting, and a clean stop on SIGTERM that leaves no process behind."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import ONE_PAGE, REPO
from tests.live import free_port, python_env, submit, wait_for_status

pytestmark = pytest.mark.acceptance


@pytest.fixture
def world_readable_data_dir():
    # pgserver runs PostgreSQL as its own system user when we are root, so the data
    # folder must be reachable by it (pytest's tmp_path is private to root).
    path = Path(tempfile.mkdtemp(prefix="dotsocr-run-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


class OutputWatcher:
    def __init__(self, process: subprocess.Popen):
        self.lines: list[str] = []
        threading.Thread(target=self._read, args=(process.stdout,), daemon=True).start()

    def _read(self, stream):
        for line in stream:
            self.lines.append(line.rstrip())

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if text in line:
                    return line
            time.sleep(0.2)
        raise TimeoutError(f"{text!r} not printed in {timeout}s:\n" + "\n".join(self.lines[-40:]))


def test_run_with_embedded_postgres_serves_converts_and_stops_cleanly(world_readable_data_dir):
    port = free_port()
    env = python_env(
        EMBEDDED_DB="always",
        DATABASE_URL="",
        DATA_DIR=str(world_readable_data_dir),
        API_HOST="127.0.0.1",
        API_PORT=str(port),
        NUM_WORKERS="1",
        SECRET_KEY="",
        ALLOW_ANONYMOUS="",  # the run command's own default lets the anonymous submission below in
    )
    launcher = subprocess.Popen(
        [sys.executable, "-m", "dotsocr_site.launcher", "run"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = OutputWatcher(launcher)
    try:
        output.wait_for(f"dotsocr is running at http://127.0.0.1:{port}/", timeout=180)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            conversion_id = submit(client, ONE_PAGE).json()["id"]
            assert wait_for_status(client, conversion_id)["status"] == "completed"
        # Taken once a job has run, so qcluster has surely forked its workers.
        children = psutil.Process(launcher.pid).children(recursive=True)
        assert len(children) >= 3  # daphne, qcluster and its worker processes

        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(timeout=90) == 0, "\n".join(output.lines[-40:])
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
    assert not [child for child in children if child.is_running() and child.status() != psutil.STATUS_ZOMBIE]
    assert not (world_readable_data_dir / "postgres" / "postmaster.pid").exists()
    output.wait_for("[dotsocr] stopped", timeout=5)
