"""Chaos scenario `stop-backlog` (issue 21): stop a cluster under load, again and again.

Each trial starts `manage.py qcluster` (NUM_WORKERS 1, 2 or 4) over a backlog of
one-page `noop` jobs (topped up to ``BACKLOG`` queued), waits until it has finished a few
(so the pusher has filled the task queue and jobs are running), then stops it: SIGTERM
to the main process, SIGTERM to the whole process group, or SIGINT, in turn. Measured:
the time until every process of the cluster has ended, the processes still alive at
the bound (SHUTDOWN_GRACE_SECONDS + 10 s), and jobs left `running`. A trial is clean
when nothing is left and no job is running. At the end a cluster runs the whole
remaining backlog, to show the released and prefetched jobs all complete.

Run through bench/chaos.py: `.venv/bin/python -m bench.chaos --only stop-backlog
[--trials 20]`. Its own scratch database is named after DATABASE_URL's (with
`_chaos_stop`), so parallel checkouts on one server do not share it.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import drop_database, enqueue_bulk, job_counts, setup_django
from dotsocr_site.launcher import connection_kwargs, ensure_database, prepare_database
from tests.live import DEFAULT_DATABASE_URL, alive, process_tree, python_env, start_cluster, url_for_database

WORKER_COUNTS = (1, 2, 4)
BACKLOG = 300
GRACE_SECONDS = 5
BOUND_SECONDS = GRACE_SECONDS + 10
SIGNALS = ("SIGTERM main", "SIGTERM group", "SIGINT main")


def stop_backlog(trials: int, worker_counts: tuple[int, ...] = WORKER_COUNTS) -> dict:
    base = connection_kwargs(os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL)["dbname"]
    database_url = url_for_database(f"{base}_chaos_stop")
    drop_database(database_url)
    ensure_database(database_url)
    workdir = Path(tempfile.mkdtemp(prefix="dotsocr-chaos-stop-"))
    env = python_env(
        DATABASE_URL=database_url,
        DATA_DIR=str(workdir / "data"),
        OCR_ENGINE="noop",
        DPI="36",
        LOG_LEVEL="INFO",
        SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS),
        BENCH_VARIANTS="",
    )
    try:
        prepare_database(env)
        setup_django(env)
        rows = []
        for workers in worker_counts:
            outcomes = [stop_trial(env, workers, SIGNALS[n % len(SIGNALS)], workdir) for n in range(trials)]
            rows.append(summary(workers, outcomes))
            print_row(rows[-1])
        return {"bound_s": BOUND_SECONDS, "rows": rows, "after_restart": drain_after_restart(env, workdir)}
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(database_url)
        shutil.rmtree(workdir, ignore_errors=True)


def stop_trial(env: dict, workers: int, how: str, workdir: Path) -> dict:
    from conversions.models import Conversion

    enqueue_bulk(max(0, BACKLOG - job_counts()["queued"]))
    completed_before = job_counts()["completed"]
    log = workdir / "qcluster.log"
    log_start = log.stat().st_size if log.exists() else 0
    cluster = start_cluster({**env, "NUM_WORKERS": str(workers)}, workdir)
    try:
        if not wait_for(lambda: job_counts()["completed"] >= completed_before + workers + 1, 120):
            return {"how": how, "clean": False, "why": "the cluster did not get going", "stop_s": None, "left": []}
        pids = process_tree(cluster.process.pid)
        if how == "SIGTERM group":
            os.killpg(cluster.process.pid, signal.SIGTERM)
        else:
            cluster.process.send_signal(signal.SIGINT if how == "SIGINT main" else signal.SIGTERM)
        signalled = time.monotonic()
        wait_for(lambda: not alive(pids), BOUND_SECONDS)
        stop_s = time.monotonic() - signalled
        left = alive(pids)
        stacks = dump_stacks(left)
    finally:
        cluster.stop(timeout=1)
    running = Conversion.objects.filter(status="running").count()
    outcome = {
        "how": how,
        "clean": not left and not running,
        "stop_s": round(stop_s, 2),
        "left": left,
        "running": running,
        "stacks": stacks,
    }
    if not outcome["clean"]:  # the trial's log, for the post-mortem (the folder is removed)
        with open(log, "rb") as handle:
            handle.seek(log_start)
            outcome["log"] = handle.read().decode(errors="replace").splitlines()[-150:]
    return outcome


def dump_stacks(pids: list[int]) -> dict[int, str]:
    """Python stacks of the processes left at the bound, for the post-mortem, when py-spy is
    installed (a profiler, not a requirement: `pip install py-spy`)."""
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=os.path.dirname(sys.executable))
    if not spy:
        return {}
    stacks = {}
    for pid in pids:
        done = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=30)
        stacks[pid] = done.stdout + done.stderr
    return stacks


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def drain_after_restart(env: dict, workdir: Path) -> dict:
    """A fresh cluster runs everything the stops left queued."""
    queued = job_counts()["queued"]
    started = time.monotonic()
    cluster = start_cluster({**env, "NUM_WORKERS": "4"}, workdir)
    try:
        drained = wait_for(lambda: job_counts()["queued"] == 0 and job_counts()["running"] == 0, 900)
    finally:
        cluster.stop()
    counts = job_counts()
    return {"queued_at_restart": queued, "drained": drained, "seconds": round(time.monotonic() - started, 1), **counts}


def summary(workers: int, outcomes: list[dict]) -> dict:
    times = [outcome["stop_s"] for outcome in outcomes if outcome["stop_s"] is not None]
    return {
        "workers": workers,
        "trials": len(outcomes),
        "clean": sum(outcome["clean"] for outcome in outcomes),
        "stop_s_max": max(times) if times else None,
        "stop_s_mean": round(sum(times) / len(times), 2) if times else None,
        "left_processes": sum(len(outcome["left"]) for outcome in outcomes),
        "left_running_jobs": sum(outcome.get("running", 0) for outcome in outcomes),
        "unclean": [outcome for outcome in outcomes if not outcome["clean"]],
    }


def print_row(row: dict) -> None:
    print(
        f"stop-backlog workers={row['workers']} clean {row['clean']}/{row['trials']} "
        f"stop max {row['stop_s_max']} s mean {row['stop_s_mean']} s (bound {BOUND_SECONDS} s) "
        f"left processes {row['left_processes']} jobs left running {row['left_running_jobs']}",
        flush=True,
    )
