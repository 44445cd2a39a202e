"""A child process that must not outlive its parent asks the kernel for a signal when
the parent dies (Linux ``prctl(PR_SET_PDEATHSIG)``).

Used by the launcher for daphne and qcluster (a ``make run`` killed with SIGKILL leaves
nothing behind) and inside the cluster for the sentinel, its workers, pusher and monitor
(see dotsocr_site/patches/django_q.py). The signal is sent when the parent *thread* that
forked the child ends; every fork here is made from a main thread. Elsewhere than Linux
this is a no-op: the launcher's and the cluster's own stops still apply.
"""

import ctypes
import ctypes.util
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(signum: int, *, parent_pid: int) -> bool:
    """Have ``signum`` delivered to this process when its parent dies; True if armed.

    ``parent_pid`` is the parent this process was forked from: if it died before the
    request was made (a race the kernel does not cover), ``signum`` is sent at once.
    """
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.Signals(signum).value, 0, 0, 0) != 0:
        return False
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signum)
    return True
