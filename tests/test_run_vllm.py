"""`manage.py run_vllm` starts vLLM for dots.ocr with the reference flags on the configured
address, says when it is ready, and stops it on SIGTERM leaving nothing behind.

No GPU here: `--vllm-binary` points at a stand-in script that records its arguments and
answers GET /health, as `vllm serve` does once the model is loaded.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.live import REPO, free_port, python_env

FAKE_VLLM = """#!{python}
# Stands in for `vllm serve`: records argv, then per FAKE_VLLM_BEHAVIOUR serves
# GET /health after a short load, exits at once with code 3, or never becomes ready.
import json, os, signal, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer

record = os.environ["FAKE_VLLM_RECORD"]
behaviour = os.environ.get("FAKE_VLLM_BEHAVIOUR", "serve")
with open(record, "w") as handle:
    json.dump({{"argv": sys.argv[1:], "pid": os.getpid()}}, handle)

def stopped(signum, frame):
    with open(record + ".stopped", "w") as handle:
        handle.write(signal.Signals(signum).name)
    os._exit(0)

signal.signal(signal.SIGTERM, stopped)
signal.signal(signal.SIGINT, stopped)
if behaviour == "exit":
    sys.exit(3)
if behaviour == "hang":
    while True:
        time.sleep(1)

class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

time.sleep(1.5)  # loading the model: /health refuses connections meanwhile
argv = sys.argv[1:]
HTTPServer((argv[argv.index("--host") + 1], int(argv[argv.index("--port") + 1])), Health).serve_forever()
"""


@pytest.fixture
def fake_vllm(tmp_path) -> Path:
    script = tmp_path / "vllm"
    script.write_text(FAKE_VLLM.format(python=sys.executable))
    script.chmod(0o755)
    return script


@pytest.fixture
def record(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "vllm-argv.json"
    monkeypatch.setenv("FAKE_VLLM_RECORD", str(path))
    return path


class Output:
    """The lines a process prints, read as they come."""

    def __init__(self, process: subprocess.Popen):
        self.lines: list[str] = []
        threading.Thread(target=self._read, args=(process.stdout,), daemon=True).start()

    def _read(self, stream):
        for line in stream:
            self.lines.append(line.rstrip())

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            time.sleep(0.1)
        raise TimeoutError(f"{text!r} not printed in {timeout}s:\n" + "\n".join(self.lines[-40:]))


def test_serves_with_the_reference_flags_until_sigterm_and_leaves_no_process(fake_vllm, record, tmp_path):
    port = free_port()
    env = python_env(
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/dotsocr",
        DATA_DIR=str(tmp_path / "data"),
        VLLM_IP="127.0.0.1",
        VLLM_PORT=str(port),
        VLLM_MODEL_NAME="dots",
        OCR_ENGINE_URLS="",
    )
    command = [sys.executable, "manage.py", "run_vllm", "--vllm-binary", str(fake_vllm), "--", "--max-num-seqs", "64"]
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    output = Output(process)
    try:
        ready = output.wait_for("ready", timeout=60)
        assert f"http://127.0.0.1:{port}/v1" in ready
        launched = json.loads(record.read_text())
        assert launched["argv"] == [
            "serve",
            "rednote-hilab/dots.ocr",
            "--trust-remote-code",
            "--tensor-parallel-size",
            "1",
            "--gpu-memory-utilization",
            "0.95",
            "--chat-template-content-format",
            "string",
            "--served-model-name",
            "dots",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--max-num-seqs",
            "64",
        ]
        assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, "\n".join(output.lines)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert not psutil.pid_exists(launched["pid"])
    assert Path(f"{record}.stopped").read_text() == "SIGTERM"  # forwarded, not killed
    output.wait_for("[run_vllm] stopped", timeout=5)


def test_missing_vllm_points_to_the_gpu_requirements(tmp_path):
    with pytest.raises(CommandError, match="requirements-gpu.txt"):
        call_command("run_vllm", vllm_binary=str(tmp_path / "no-vllm-here"))


def test_vllm_exiting_before_it_is_ready_is_an_error_with_its_exit_code(fake_vllm, record, monkeypatch):
    monkeypatch.setenv("FAKE_VLLM_BEHAVIOUR", "exit")

    with pytest.raises(CommandError, match="exited with code 3 before it was ready"):
        call_command("run_vllm", vllm_binary=str(fake_vllm), port=free_port())

    assert not psutil.pid_exists(json.loads(record.read_text())["pid"])


def test_vllm_not_ready_in_time_is_stopped(fake_vllm, record, monkeypatch):
    monkeypatch.setenv("FAKE_VLLM_BEHAVIOUR", "hang")

    with pytest.raises(CommandError, match="within 2 s"):
        call_command("run_vllm", vllm_binary=str(fake_vllm), port=free_port(), ready_timeout=2)

    assert not psutil.pid_exists(json.loads(record.read_text())["pid"])
    assert Path(f"{record}.stopped").read_text() == "SIGTERM"


def test_a_busy_port_is_refused_before_starting_vllm(fake_vllm, record):
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        with pytest.raises(CommandError, match=f"already listens on 127.0.0.1:{port}"):
            call_command("run_vllm", vllm_binary=str(fake_vllm), host="127.0.0.1", port=port)
    assert not record.exists()
