"""`manage.py run_vllm`: the OCR engine process of DESIGN.md section 1.

Starts ``vllm serve rednote-hilab/dots.ocr`` with the flags the dots.ocr reference uses,
on the address the workers are configured to call (the first of the ``settings.DOTSOCR["base_urls"]``
servers) and under the model name they send, waits until vLLM answers ``GET /health``,
then keeps it running until Ctrl-C or SIGTERM, which it forwards. vLLM itself is not a
dependency of the service: it is installed on GPU hosts from requirements-gpu.txt.

Extra vLLM flags go after ``--``: ``manage.py run_vllm -- --max-num-seqs 64``.
"""

import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from dotsocr_site.launcher import kill_group

DEFAULT_MODEL = "rednote-hilab/dots.ocr"
# dots.ocr README, "vLLM inference" (vLLM >= 0.11, which has dots.ocr built in), and
# demo/launch_model_vllm.sh: 0.95. (The dots.ocr-1.5 README lowers it to 0.9.)
DEFAULT_GPU_MEMORY_UTILIZATION = 0.95
# demo/launch_model_vllm.sh: one GPU per server; DESIGN.md runs one server per GPU.
DEFAULT_TENSOR_PARALLEL_SIZE = 1
# Ours: a first start downloads ~6 GB of weights and compiles CUDA graphs.
DEFAULT_READY_TIMEOUT_SECONDS = 900.0
HEALTH_PATH = "/health"  # vLLM's OpenAI server answers 200 here once the engine is up
HEALTH_POLL_SECONDS = 1.0
PROGRESS_EVERY_SECONDS = 15.0
# vLLM drains running requests on SIGTERM; a minute is ample before killing what is left.
STOP_GRACE_SECONDS = 60.0
WILDCARD_HOSTS = ("", "0.0.0.0", "::")


def vllm_command(
    binary: str,
    *,
    model: str,
    served_model_name: str,
    host: str,
    port: int,
    gpu_memory_utilization: float,
    tensor_parallel_size: int,
    async_scheduling: bool,
    extra_args: list[str],
) -> list[str]:
    """The ``vllm serve`` command line, each flag with where the reference uses it."""
    command = [
        binary,
        "serve",
        model,
        # README ("vllm serve rednote-hilab/dots.ocr --trust-remote-code ...") and
        # demo/launch_model_vllm.sh: the checkpoint ships its own processor code.
        "--trust-remote-code",
        # demo/launch_model_vllm.sh, docker/docker-compose.yml, README of dots.ocr-1.5.
        "--tensor-parallel-size",
        str(tensor_parallel_size),
        "--gpu-memory-utilization",
        f"{gpu_memory_utilization:g}",
        # demo/launch_model_vllm.sh, docker/docker-compose.yml, README of dots.ocr-1.5:
        # the chat template takes the message content as one string, into which the
        # client's <|img|><|imgpad|><|endofimg|> text already places the image.
        "--chat-template-content-format",
        "string",
        # demo/launch_model_vllm.sh (--served-model-name ${model_name}); the name the
        # workers send (VLLM_MODEL_NAME; dots_ocr/parser.py's default is "model").
        "--served-model-name",
        served_model_name,
        "--host",
        host,
        "--port",
        str(port),
    ]
    if async_scheduling:
        # The README recommended it from vLLM 0.11 (rednote-hilab/dots.ocr PR #222) and
        # dropped it again: output quality regressed with it (issue #253, PR #266).
        command.append("--async-scheduling")
    return command + extra_args


def find_vllm(binary: str) -> str:
    """The path of the vLLM executable. Raises CommandError when there is none."""
    path = shutil.which(binary)
    if path is None:
        raise CommandError(
            f"The vLLM executable {binary!r} was not found (looked on PATH for a bare name). "
            "vLLM runs on GPU hosts only and is not in requirements.txt: install it with "
            "`pip install -r requirements-gpu.txt` (ideally in an environment of its own), "
            "or pass --vllm-binary /path/to/vllm."
        )
    return path


def served_address(*, host: str | None, port: int | None) -> tuple[str, int]:
    """Where vLLM listens: the options, else the first configured dots.ocr server."""
    configured = urlsplit(settings.DOTSOCR["base_urls"][0])
    default_port = configured.port or (443 if configured.scheme == "https" else 80)
    hostname = host or configured.hostname
    assert hostname is not None  # the settings accept only http(s) URLs, which have a host
    return hostname, port or default_port


def port_in_use(host: str, port: int) -> bool:
    try:
        with socket.create_connection((local_host(host), port), timeout=1.0):
            return True
    except OSError:
        return False


def local_host(host: str) -> str:
    """The address to reach a server listening on ``host`` from this machine."""
    return "127.0.0.1" if host in WILDCARD_HOSTS else host


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class StopRequest:
    """SIGINT and SIGTERM, recorded instead of raised, so the child can be stopped in order."""

    def __init__(self):
        self.signum: int | None = None
        self.event = threading.Event()
        self.previous = {}

    def __enter__(self) -> "StopRequest":
        for signum in (signal.SIGINT, signal.SIGTERM):
            self.previous[signum] = signal.signal(signum, self.record)
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def record(self, signum, frame) -> None:
        self.signum = signum
        self.event.set()

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def wait(self, seconds: float) -> bool:
        return self.event.wait(seconds)


class Command(BaseCommand):
    help = "Run the vLLM server for dots.ocr on the address the workers call, until Ctrl-C or SIGTERM."
    requires_system_checks = []  # starts a GPU server: nothing of Django's is involved

    def add_arguments(self, parser):
        parser.add_argument("--model", default=DEFAULT_MODEL, help=f"Hub id or local path (default {DEFAULT_MODEL}).")
        parser.add_argument("--vllm-binary", default="vllm", help="The vllm executable: a name on PATH or a path.")
        parser.add_argument(
            "--gpu-memory-utilization",
            type=float,
            default=DEFAULT_GPU_MEMORY_UTILIZATION,
            help=f"Share of GPU memory vLLM may take (default {DEFAULT_GPU_MEMORY_UTILIZATION}, as dots.ocr's README).",
        )
        parser.add_argument("--tensor-parallel-size", type=int, default=DEFAULT_TENSOR_PARALLEL_SIZE)
        parser.add_argument("--host", help="Address to listen on (default: the host of VLLM_IP / OCR_ENGINE_URLS).")
        parser.add_argument(
            "--port", type=int, help="Port to listen on (default: the port of VLLM_PORT / OCR_ENGINE_URLS)."
        )
        parser.add_argument(
            "--ready-timeout",
            type=float,
            default=DEFAULT_READY_TIMEOUT_SECONDS,
            help=f"Seconds to wait for GET /health to answer 200 (default {DEFAULT_READY_TIMEOUT_SECONDS:g}).",
        )
        parser.add_argument(
            "--async-scheduling",
            action="store_true",
            help="Pass vLLM's --async-scheduling (faster; dots.ocr withdrew it over output quality).",
        )
        parser.add_argument("vllm_args", nargs="*", help="Further vLLM flags, after `--`.")

    def handle(self, *args, **options):
        if not 0 < options["gpu_memory_utilization"] <= 1:
            raise CommandError(
                f"--gpu-memory-utilization must be in (0, 1], got {options['gpu_memory_utilization']:g}."
            )
        binary = find_vllm(options["vllm_binary"])
        host, port = served_address(host=options["host"], port=options["port"])
        if port_in_use(host, port):
            raise CommandError(f"Something already listens on {host}:{port}; stop it or pass --port.")
        command = vllm_command(
            binary,
            model=options["model"],
            served_model_name=settings.DOTSOCR["model_name"],
            host=host,
            port=port,
            gpu_memory_utilization=options["gpu_memory_utilization"],
            tensor_parallel_size=options["tensor_parallel_size"],
            async_scheduling=options["async_scheduling"],
            extra_args=options["vllm_args"],
        )
        with StopRequest() as stop:
            self.say(f"starting {shlex.join(command)}")
            # Its own session: a Ctrl-C in the terminal reaches only us, and we stop it.
            child = subprocess.Popen(command, start_new_session=True)
            try:
                self.serve(child, stop, host=host, port=port, model=options["model"], timeout=options["ready_timeout"])
            finally:
                self.stop_child(child, stop.signum or signal.SIGTERM)

    def serve(self, child: subprocess.Popen, stop: StopRequest, *, host: str, port: int, model: str, timeout: float):
        base_url = f"http://{url_host(local_host(host))}:{port}"
        if not self.wait_until_ready(child, stop, f"{base_url}{HEALTH_PATH}", timeout):
            return
        self.say(
            f"vLLM is ready at {base_url}/v1 serving {model} as {settings.DOTSOCR['model_name']!r}; "
            "Ctrl-C or SIGTERM stops it"
        )
        while not stop.wait(HEALTH_POLL_SECONDS):
            if child.poll() is not None:
                raise CommandError(f"vLLM exited with code {child.returncode} while serving; its log is above.")

    def wait_until_ready(self, child: subprocess.Popen, stop: StopRequest, health_url: str, timeout: float) -> bool:
        """True once ``health_url`` answers 200; False if asked to stop first. Raises
        CommandError when vLLM exits or the timeout passes."""
        started = time.monotonic()
        next_progress = started + PROGRESS_EVERY_SECONDS
        self.say(f"waiting up to {timeout:g} s for {health_url} (loading the model)")
        while not stop.requested:
            if child.poll() is not None:
                raise CommandError(f"vLLM exited with code {child.returncode} before it was ready; its log is above.")
            if answers_health(health_url):
                return True
            now = time.monotonic()
            if now - started > timeout:
                raise CommandError(f"vLLM did not answer {health_url} within {timeout:g} s; stopped it.")
            if now >= next_progress:
                self.say(f"still waiting for vLLM ({now - started:.0f} s of {timeout:g} s)")
                next_progress += PROGRESS_EVERY_SECONDS
            stop.wait(HEALTH_POLL_SECONDS)
        return False

    def stop_child(self, child: subprocess.Popen, signum: int) -> None:
        """Forward the stop signal, wait for vLLM to shut down, then kill what is left of
        its process group (its engine-core processes must not outlive it)."""
        if child.poll() is None:
            self.say(f"stopping vLLM (pid {child.pid}, {signal.Signals(signum).name})")
            child.send_signal(signum)
            try:
                child.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                self.say(f"vLLM did not stop within {STOP_GRACE_SECONDS:g} s; killing it")
        kill_group(child.pid)
        child.wait()
        self.say("stopped")

    def say(self, message: str) -> None:
        self.stdout.write(f"[run_vllm] {message}")
        self.stdout.flush()


# No proxy: the server is local; and not httpx, which logs every poll at INFO.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def answers_health(url: str) -> bool:
    try:
        with DIRECT.open(url, timeout=2.0) as response:
            return response.status == 200
    except OSError:  # refused, reset, timed out, or an HTTP error status
        return False
