"""Graceful shutdown of a worker process.

django-q2 workers die at once on SIGTERM (their default), and a cluster stopped through
its main process waits for every running task to end, which for OCR can be hours. A
worker with our handler instead stops at the next page boundary: pages in flight finish
(bounded by SHUTDOWN_GRACE_SECONDS), are checkpointed, and the job is released back to
the queue, where another worker resumes it. An idle worker exits at once, and a worker
asked to stop claims no other job (it does not read the task queue to its end: the
cluster's stop does not need it to, see dotsocr_site/patches/django_q.py).

The handler is installed in each worker process when it starts (django-q2's
``post_spawn`` signal, see conversions/apps.py); SIGTERM reaches workers from their
sentinel when the cluster stops, from the process group (systemd, Ctrl-C), or from the
kernel when the sentinel dies (``orphans.die_with_parent``).
"""

import os
import signal
import sys
import threading
from multiprocessing import parent_process

from dotsocr_site import orphans

requested = threading.Event()
_busy = threading.Event()
_exiting = threading.Event()


class ShuttingDown(Exception):
    """The worker process was asked to stop; the job goes back to the queue."""


def install() -> None:
    signal.signal(signal.SIGTERM, _handle_sigterm)
    parent = parent_process()
    if parent is not None:  # a django-q2 worker: stop when its sentinel is gone
        orphans.die_with_parent(signal.SIGTERM, parent_pid=parent.pid)


def _handle_sigterm(signum, frame) -> None:
    # A worker hears SIGTERM more than once (its group, its sentinel each second): a
    # repeat changes nothing; SIGKILL is the way to stop it at once.
    if _exiting.is_set():
        return  # a second SystemExit would cut short the exit's flush of the result queue
    if not _busy.is_set():
        # Idle, blocked on the task queue: leave now. SystemExit unwinds through the
        # queue's lock, so the other workers are not left blocked on it.
        _exiting.set()
        raise SystemExit(0)
    requested.set()


def exit_worker_process() -> None:
    """End this worker process now. Not SystemExit: on the way out multiprocessing joins
    every non-daemon thread, and a stuck OCR thread would keep the process alive."""
    _exiting.set()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


class busy:
    """Marks the span in which a job runs: SIGTERM then means 'finish up', not 'exit'."""

    def __enter__(self) -> None:
        _busy.set()

    def __exit__(self, *exc_info) -> None:
        _busy.clear()
