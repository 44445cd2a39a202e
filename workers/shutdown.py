"""Graceful shutdown of a worker process.

django-q2 workers die at once on SIGTERM (their default), and a cluster stopped through
its main process waits for every running task to end, which for OCR can be hours. A
worker with our handler instead stops at the next page boundary: pages in flight finish
(bounded by SHUTDOWN_GRACE_SECONDS), are checkpointed, and the job is released back to
the queue, where another worker resumes it.

A worker blocked waiting for its next task exits at once. Anywhere else (claiming a
job, running it, django-q2's bookkeeping around it) SIGTERM only records the request:
an exception raised at an arbitrary point could land inside a database commit (the
claim) and be swallowed there. A worker asked to stop takes no further task: it leaves
when it next asks for one (``waiting_for_task``, wrapped around django-q2's task-queue
read by dotsocr_site/patches/django_q.py), so it never reads the queue to its end; the
cluster's stop does not need it to.

The handler is installed in each worker process when it starts (django-q2's
``post_spawn`` signal, see conversions/apps.py); SIGTERM reaches workers from their
sentinel when the cluster stops, from the process group (systemd, Ctrl-C), or from the
kernel when the sentinel dies (``orphans.die_with_parent``).
"""

import os
import signal
import sys
import threading
from contextlib import contextmanager
from multiprocessing import parent_process

from dotsocr_site import orphans

requested = threading.Event()
_waiting = threading.Event()
_exiting = threading.Event()


class ShuttingDown(Exception):
    """The worker process was asked to stop; the job goes back to the queue."""


def install() -> None:
    signal.signal(signal.SIGTERM, _handle_sigterm)
    parent = parent_process()
    if parent is not None and parent.pid is not None:  # a django-q2 worker: stop when its sentinel is gone
        orphans.die_with_parent(signal.SIGTERM, parent_pid=parent.pid)


def _handle_sigterm(signum, frame) -> None:
    # A worker hears SIGTERM more than once (its group, its sentinel each second): a
    # repeat changes nothing; SIGKILL is the way to stop it at once.
    if _exiting.is_set():
        return  # a second SystemExit would cut short the exit's flush of the result queue
    if _waiting.is_set():
        # Blocked on the task queue: leave now. SystemExit unwinds through the queue's
        # lock, so the other workers are not left blocked on it.
        _exiting.set()
        raise SystemExit(0)
    requested.set()


@contextmanager
def waiting_for_task():
    """The span in which the worker waits for its next task: SIGTERM ends it at once.
    A worker already asked to stop does not wait (SystemExit)."""
    _waiting.set()
    try:
        if requested.is_set():  # also when SIGTERM came just before the line above
            _exiting.set()
            raise SystemExit(0)
        yield
    finally:
        _waiting.clear()


def exit_worker_process() -> None:
    """End this worker process now. Not SystemExit: on the way out multiprocessing joins
    every non-daemon thread, and a stuck OCR thread would keep the process alive."""
    _exiting.set()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
