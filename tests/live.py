"""Real processes for acceptance tests: daphne, qcluster and the `make run` launcher."""

import os
import secrets
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil

from dotsocr_site.launcher import DEFAULT_DATABASE_URL, cluster_command, kill_group, web_command
from dotsocr_site.web_process import HEADER as WEB_PROCESS_HEADER
from dotsocr_site.web_tier import METRICS_DIR_VARIABLE, bind_listener, web_fd_command

REPO = Path(__file__).resolve().parent.parent
FINISHED = ("completed", "failed", "cancelled")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def url_for_database(name: str) -> str:
    """The configured DATABASE_URL, pointed at another database on the same server."""
    url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    return urlsplit(url)._replace(path=f"/{name}").geturl()


class ServiceProcess:
    """A child process in its own process group, with its output in a log file."""

    def __init__(self, command: list[str], env: dict, log_path: Path, pass_fds: tuple[int, ...] = ()):
        self.command, self.env, self.log_path, self.pass_fds = command, env, log_path, pass_fds
        self.process: subprocess.Popen | None = None

    def start(self) -> "ServiceProcess":
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.command,
            env=self.env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=self.pass_fds,
        )
        log.close()
        return self

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM the process (as `make run` does) and return its exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        kill_group(self.process.pid)
        return self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def start_web(env: dict, port: int, log_dir: Path) -> ServiceProcess:
    web = ServiceProcess(web_command("127.0.0.1", port), env, log_dir / "daphne.log").start()
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", web)
    except BaseException:
        web.stop()
        raise
    return web


def start_web_tier(env: dict, port: int, count: int, log_dir: Path) -> list[ServiceProcess]:
    """``count`` daphne processes on one listening socket, as the launcher starts them for
    WEB_CONCURRENCY (dotsocr_site/web_tier.py); returns once every one has answered."""
    metrics_dir = log_dir / "metrics"
    metrics_dir.mkdir(exist_ok=True)
    env = {**env, "WEB_CONCURRENCY": str(count), METRICS_DIR_VARIABLE: str(metrics_dir)}
    with bind_listener("127.0.0.1", port) as listener:
        fd = listener.fileno()
        webs = [
            ServiceProcess(web_fd_command(fd), env, log_dir / f"daphne-{index}.log", pass_fds=(fd,)).start()
            for index in range(count)
        ]
    try:
        wait_until_every_process_answers(f"http://127.0.0.1:{port}", webs)
    except BaseException:
        for web in webs:
            web.stop()
        raise
    return webs


def wait_until_every_process_answers(base_url: str, webs: list[ServiceProcess], timeout: float = 90) -> None:
    """Wait until /health has been answered by each of ``webs`` (X-Web-Process), each
    request on a new connection so that the kernel may hand it to any of them."""
    expected = {str(web.process.pid) for web in webs}
    answered: set[str] = set()
    deadline = time.monotonic() + timeout
    while answered != expected:
        for web in webs:
            if web.process.poll() is not None:
                raise RuntimeError(f"{web.command} exited:\n{web.log_tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {answered} of {expected} answered in {timeout}s:\n{webs[0].log_tail()}")
        try:
            response = httpx.get(f"{base_url}/health", timeout=2)
            if response.status_code == 200:
                answered.add(response.headers[WEB_PROCESS_HEADER])
        except httpx.HTTPError:
            time.sleep(0.2)


def start_cluster(env: dict, log_dir: Path, timeout: float = 60) -> ServiceProcess:
    """Start qcluster and wait until it says it is running (its signal handlers are set)."""
    cluster = ServiceProcess(cluster_command(), env, log_dir / "qcluster.log").start()
    deadline = time.monotonic() + timeout
    while "] running." not in cluster.log_path.read_text(errors="replace"):
        if cluster.process.poll() is not None or time.monotonic() > deadline:
            cluster.stop()
            raise RuntimeError(f"qcluster did not start:\n{cluster.log_tail()}")
        time.sleep(0.1)
    return cluster


def wait_until_healthy(base_url: str, service: ServiceProcess, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(f"{service.command} exited:\n{service.log_tail()}")
        try:
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{base_url} not healthy in {timeout}s:\n{service.log_tail()}")


def wait_for_status(client: httpx.Client, conversion_id: str, statuses=FINISHED, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/v1/conversions/{conversion_id}").json()
        if body["status"] in statuses:
            return body
        time.sleep(0.1)
    raise TimeoutError(f"conversion {conversion_id} still {body['status']} after {timeout}s")


def submit(client: httpx.Client, path: Path, name: str | None = None, content: bytes | None = None) -> httpx.Response:
    data = path.read_bytes() if content is None else content
    return client.post("/api/v1/conversions", files={"file": (name or path.name, data, "application/pdf")})


# Web and worker children must share a key; benchmarks run outside pytest get one too.
RUN_SECRET_KEY = os.environ.get("SECRET_KEY") or secrets.token_urlsafe(50)
# Children run the service's own settings as the single-user install `make run` starts
# (anonymous requests act as the built-in user), without submission limits: the live
# processes of a test session share one throttle history. Security tests override these.
SINGLE_USER_INSTALL = {
    "DJANGO_SETTINGS_MODULE": "dotsocr_site.settings",
    "ALLOW_ANONYMOUS": "true",
    "SUBMIT_RATE": "off",
    "MAX_QUEUED_PER_USER": "0",
}


def pdf_of(pages: int, label: str) -> bytes:
    """A PDF with a line of text on each page, made here (no file to commit)."""
    import pymupdf

    document = pymupdf.open()
    for number in range(pages):
        document.new_page().insert_text((72, 72), f"{label} page {number + 1}")
    return document.tobytes()


def python_env(**overrides) -> dict:
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "SECRET_KEY": RUN_SECRET_KEY,
        **SINGLE_USER_INSTALL,
        **overrides,
        "PATH": os.environ["PATH"],
    }


def process_tree(pid: int) -> set[int]:
    """``pid`` and every process below it (a cluster's sentinel, pusher, monitor, workers)."""
    return {pid} | {child.pid for child in psutil.Process(pid).children(recursive=True)}


def alive(pids) -> list[str]:
    """The processes among ``pids`` still running, each as "pid cmdline (status)"; a zombie
    has ended (only not yet reaped by its parent) and is left out."""
    running = []
    for pid in pids:
        try:
            process = psutil.Process(pid)
            if process.status() != psutil.STATUS_ZOMBIE:
                running.append(f"{pid} {' '.join(process.cmdline())} ({process.status()})")
        except psutil.NoSuchProcess:
            continue
    return running
