"""Graceful shutdown of a worker process.

django-q2 workers die at once on SIGTERM (their default), and a cluster stopped through
its main process waits for every running task to end, which for OCR can be hours. A
worker with our handler instead stops at the next page boundary: pages in flight finish
(bounded by SHUTDOWN_GRACE_SECONDS), are checkpointed, and the job is released back to
the queue, where another worker resumes it. An idle worker exits at once.

The handler is installed in each worker process when it starts (django-q2's
``post_spawn`` signal, see conversions/apps.py); SIGTERM reaches workers either from
the process group (systemd, Ctrl-C) or forwarded by our ``qcluster`` command.
"""

import os
import signal
import sys
import threading

requested = threading.Event()
_busy = threading.Event()


class ShuttingDown(Exception):
    """The worker process was asked to stop; the job goes back to the queue."""


def install() -> None:
    signal.signal(signal.SIGTERM, _handle_sigterm)


def _handle_sigterm(signum, frame) -> None:
    # A worker often hears SIGTERM twice (from its process group and forwarded by
    # qcluster): a repeat changes nothing; SIGKILL is the way to stop it at once.
    if not _busy.is_set():
        # Idle, blocked on the task queue: leave now. SystemExit unwinds through the
        # queue's lock, so the other workers are not left blocked on it.
        raise SystemExit(0)
    requested.set()


def exit_worker_process() -> None:
    """End this worker process now. Not SystemExit: on the way out multiprocessing joins
    every non-daemon thread, and a stuck OCR thread would keep the process alive."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


class busy:
    """Marks the span in which a job runs: SIGTERM then means 'finish up', not 'exit'."""

    def __enter__(self) -> None:
        _busy.set()

    def __exit__(self, *exc_info) -> None:
        _busy.clear()
