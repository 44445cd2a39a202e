"""Every core for the web tier: ``WEB_CONCURRENCY`` daphne processes on one listening socket.

Django runs synchronous views on one thread per daphne process, so one process uses one
core for every HTTP request and socket. The launcher binds the listening socket once and
starts each daphne on its file descriptor (``daphne --fd N``), the way pre-fork servers
(gunicorn, uvicorn --workers) do: the kernel hands each new connection to one of the
processes waiting in ``accept``. Each process has its own database pool
(dotsocr_site/asgi.py), channel-layer connection and fan-out hub (conversions/progress/fanout.py).

What must be right across processes, and how it is:
- WebSocket events: the channel layer is PostgreSQL or Redis (never the in-memory one
  outside unit tests), so an event sent by any process reaches every process's hub.
- Throttles: DRF keeps its counts in Django's default cache, the database cache table.
- ``/metrics``: the open-WebSocket gauge is kept in prometheus-client's multiprocess
  files under ``PROMETHEUS_MULTIPROC_DIR`` (set by the launcher, emptied at start) and
  summed over the live processes at each scrape (conversions/metrics.py).

Launcher side only (no Django): the launcher runs before settings are configured.
"""

import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path

from dotsocr_site.env import env_int, env_str

# The default, as the issue asks: one process per core, at most this many.
MAX_DEFAULT_PROCESSES = 8
# Connections waiting for an accept across all processes: gunicorn's default backlog.
LISTEN_BACKLOG = 2048
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"  # the name prometheus-client reads


def cores() -> int:
    """The cores this process may run on (its CPU affinity, else every core)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def web_concurrency() -> int:
    """``WEB_CONCURRENCY``: how many daphne processes serve the web tier (>= 1); by default
    one per core, at most ``MAX_DEFAULT_PROCESSES``."""
    return env_int("WEB_CONCURRENCY", min(cores(), MAX_DEFAULT_PROCESSES), minimum=1)


def bind_listener(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` that child processes inherit.

    Raises OSError when the address is taken. ``::`` also accepts IPv4 (dual stack), as
    daphne's own ``-b ::`` does on Linux.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        listener.bind((host, port))
        listener.listen(LISTEN_BACKLOG)
        listener.set_inheritable(True)
    except BaseException:
        listener.close()
        raise
    return listener


def web_fd_command(fd: int) -> list[str]:
    """daphne serving the app on an inherited listening socket (pass ``fd`` in pass_fds)."""
    return [sys.executable, "-m", "daphne", "--fd", str(fd), "dotsocr_site.asgi:application"]


def fresh_metrics_dir() -> tuple[Path, bool]:
    """The folder the web processes keep their shared metric files in, empty; and whether
    it was made here (a temporary one, for ``remove_metrics_dir``). ``PROMETHEUS_MULTIPROC_DIR``
    names it when set: files left by an earlier run are deleted, or a dead process's
    sockets would be counted forever."""
    configured = env_str(METRICS_DIR_VARIABLE, "")
    if not configured:
        return Path(tempfile.mkdtemp(prefix="dotsocr-metrics-")), True
    path = Path(configured)
    path.mkdir(parents=True, exist_ok=True)
    for leftover in path.glob("*.db"):
        leftover.unlink(missing_ok=True)
    return path, False


def remove_metrics_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
