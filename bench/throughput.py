"""Scenarios 3 and 4: jobs/s through real qcluster processes, and the profile.

3. throughput: a backlog of one-page noop jobs (5,000 by default) is inserted with the
   workers stopped, then one qcluster with NUM_WORKERS = 2, 4, 8 drains it. Rate = jobs
   completed / (last finished_at - first started_at), read from the rows; a run that
   reaches its time bound is stopped and its rate counts the jobs finished by then.
4. scale-out: the same backlog drained by two qcluster processes on the one database, as
   if on two hosts. Each cluster's claims are read from its own log ("conversion=<id>
   claimed ..."), and the rows must show no job claimed twice (attempts), no job with
   two results and no completed job without its result.

The profile runs the task function the workers run (workers.tasks.run_conversion) in
this process, under pyinstrument, over a backlog of its own, and counts the SQL
statements of one job. It cannot see django-q2's own processes (pusher, monitor): their
share is the gap between the in-process rate and the cluster's.
"""

import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import (
    Bench,
    backend_cpu_seconds,
    children_cpu_seconds,
    claims_in_log,
    empty_queue,
    enqueue_bulk,
    finished_timeline,
    integrity,
    job_counts,
    saved_task_results,
    wait_drained,
)

# Stages of a job, by the function that runs them; time inside nested stages counts for
# the innermost one (so "progress events" is never also counted in "checkpoint").
STAGES = {
    ("transitions.py", "claim_next"): "claim (claim_next)",
    ("pipeline.py", "__enter__"): "heartbeat thread start/stop",
    ("pipeline.py", "__exit__"): "heartbeat thread start/stop",
    ("pipeline.py", "engine_for"): "engine_for",
    ("pdf.py", "open_pdf"): "open PDF",
    ("pdf.py", "check"): "content budget (decompression bomb scan)",
    ("running.py", "record_pdf_loaded"): "record_pdf_loaded (UPDATE)",
    ("selectors.py", "checkpointed_page_numbers"): "resume check (SELECT pages)",
    ("selectors.py", "cancel_requested"): "cancel check (SELECT)",
    ("pages.py", "recognize"): "engine.recognize",
    ("pdf.py", "render"): "render page image",
    ("pdf.py", "jpeg"): "JPEG encode",
    ("outputs.py", "write_page_images"): "write page image",
    ("layout.py", "cells_to_markdown"): "cells -> Markdown",
    ("running.py", "checkpoint_page"): "checkpoint_page (one statement; was INSERT + count + UPDATE)",
    ("running.py", "record_finalizing"): "record_finalizing (UPDATE)",
    ("pipeline.py", "publish_outputs"): "publish outputs (files, rename)",
    ("pipeline.py", "after_publishing"): "after publishing (earlier attempts, original-layout symlinks)",
    ("pages.py", "run"): "page thread (the engine, waited for; hand-off)",
    ("running.py", "complete_conversion"): "complete_conversion (UPDATE)",
    ("groups.py", "send_stored_state"): "progress events (SELECT + channel layer)",
    ("groups.py", "send_state"): "progress events (channel layer)",
}
OTHER = "other (task entry, logging, ORM glue)"


def drain(
    bench: Bench,
    *,
    clusters: dict[str, int],
    jobs: int,
    seconds: float,
    idle_cpu: float = 0.0,
    cluster_env: dict[str, dict] | None = None,
) -> dict:
    """Insert ``jobs`` queued jobs, start the named clusters (name -> NUM_WORKERS) and
    wait until all jobs are done or ``seconds`` have passed since the first started.
    ``idle_cpu`` (a cluster's start, idle and stop) is taken off the CPU counted per job;
    ``cluster_env`` (name -> variables) is added to a cluster's environment."""
    from django.utils import timezone

    empty_queue()
    saved = saved_task_results()
    enqueue_bulk(jobs)
    processes = {}
    cpu_before = children_cpu_seconds()
    try:
        for name, workers in clusters.items():
            processes[name] = bench.cluster(name, workers, **(cluster_env or {}).get(name, {}))
        finished_all = wait_drained(jobs, time.monotonic() + seconds)
        cutoff = timezone.now()
        database_cpu = backend_cpu_seconds()  # while the clusters' connections are open
    finally:
        for process in processes.values():
            bench.stop(process)
    cluster_cpu = max(children_cpu_seconds() - cpu_before - idle_cpu * len(clusters), 0.0)
    starts, ends = finished_timeline()
    counted = [end for end in ends if end <= cutoff]
    first = min(starts) if starts else cutoff
    window_end = max(counted) if finished_all and counted else cutoff
    elapsed = max((window_end - first).total_seconds(), 1e-6)
    claims = {name: claims_in_log(process) for name, process in processes.items()}
    done_by_stop = job_counts()
    claimed_by_two = set.intersection(*(set(ids) for ids in claims.values())) if len(claims) > 1 else set()
    result = {
        "clusters": clusters,
        "jobs": jobs,
        "completed": len(counted),
        "finished_all": finished_all,
        "seconds": round(elapsed, 2),
        "jobs_per_s": round(len(counted) / elapsed, 1),
        "counts_after_stop": done_by_stop,
        **cpu_per_job(cluster_cpu, database_cpu, done_by_stop["completed"]),
        "task_results_saved_before": saved,
        "idle_cluster_cpu_s_subtracted": round(idle_cpu * len(clusters), 2),
        "claims_per_cluster": {name: len(ids) for name, ids in claims.items()},
        "claimed_by_two_clusters": len(claimed_by_two),
        **integrity(),
    }
    empty_queue()
    return result


def cpu_per_job(processes_cpu: float, database_cpu: float, jobs: int) -> dict:
    """CPU ms per completed job: what the rate would be bounded by on an idle machine
    (cores / CPU per job), however busy this one is. PostgreSQL's share counts only the
    backends still connected at the end (a recycled worker's connection is gone)."""
    jobs = max(jobs, 1)
    total = (processes_cpu + database_cpu) / jobs
    return {
        "cpu_ms_per_job": {
            "queue_processes": round(processes_cpu / jobs * 1000, 2),
            "postgres_backends": round(database_cpu / jobs * 1000, 2),
            "total": round(total * 1000, 2),
        },
        "jobs_per_s_if_cpu_bound_on_all_cores": round((os.cpu_count() or 1) / total, 1) if total else None,
    }


def idle_cluster_cpu(bench: Bench, *, workers: int, seconds: float = 3.0) -> float:
    """CPU seconds a cluster spends starting, idling ``seconds`` on an empty queue and
    stopping: the part of a run's CPU that is not per job."""
    empty_queue()
    before = children_cpu_seconds()
    process = bench.cluster(f"idle-{workers}", workers)
    time.sleep(seconds)
    bench.stop(process)
    return children_cpu_seconds() - before


def run_throughput(bench: Bench, *, worker_counts: tuple[int, ...], jobs: int, seconds: float) -> list[dict]:
    rows = []
    for workers in worker_counts:
        idle = idle_cluster_cpu(bench, workers=workers)
        row = drain(bench, clusters={f"throughput-{workers}": workers}, jobs=jobs, seconds=seconds, idle_cpu=idle)
        row["workers"] = workers
        rows.append(row)
        print(
            f"  throughput NUM_WORKERS={workers}: {row['completed']}/{jobs} jobs in {row['seconds']} s = "
            f"{row['jobs_per_s']} jobs/s (all done: {row['finished_all']}); CPU ms/job {row['cpu_ms_per_job']}",
            flush=True,
        )
    return rows


def run_scale_out(bench: Bench, *, workers_each: int, jobs: int, seconds: float) -> dict:
    idle = idle_cluster_cpu(bench, workers=workers_each)
    row = drain(
        bench, clusters={"host-a": workers_each, "host-b": workers_each}, jobs=jobs, seconds=seconds, idle_cpu=idle
    )
    row["workers_each"] = workers_each
    print(
        f"  scale-out 2 clusters x {workers_each} workers: {row['completed']}/{jobs} jobs, {row['jobs_per_s']} "
        f"jobs/s, claims {row['claims_per_cluster']}, claimed by both: {row['claimed_by_two_clusters']}, "
        f"claimed twice: {row['jobs_claimed_twice']}",
        flush=True,
    )
    return row


# --- profile ----------------------------------------------------------------------------


@dataclass
class ProfiledRun:
    done: int  # jobs completed
    elapsed: float  # wall seconds
    cpu: float  # this process's CPU seconds, the profiler's included
    stages: dict[str, float]  # seconds per stage (STAGES)
    root_frame: Any  # pyinstrument's root frame
    files: list[str]  # the profile as text and HTML


def profile_jobs(jobs: int, *, results_dir: Path, name: str, deadline: float | None = None) -> ProfiledRun:
    """Run up to ``jobs`` queued jobs one after another through the workers' task function
    in this process under pyinstrument (stopping at the first that does not complete, or
    at ``deadline``, a time.monotonic() value); writes ``<name>.txt`` and ``<name>.html``
    to ``results_dir``."""
    from pyinstrument import Profiler

    from workers.tasks import run_conversion

    profiler = Profiler(interval=0.0005)
    done = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    profiler.start()
    while done < jobs and (deadline is None or time.monotonic() < deadline):
        if run_conversion("profile") != "completed":
            break
        done += 1
    profiler.stop()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    results_dir.mkdir(parents=True, exist_ok=True)
    files = [results_dir / f"{name}.txt", results_dir / f"{name}.html"]
    files[0].write_text(profiler.output_text(unicode=False, color=False))
    files[1].write_text(profiler.output_html())
    root = profiler.last_session.root_frame()
    return ProfiledRun(done, elapsed, cpu, stage_times(root), root, [str(path) for path in files])


def run_profile(bench: Bench, *, jobs: int, seconds: float, results_dir: Path) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from workers.tasks import run_conversion

    empty_queue()
    enqueue_bulk(jobs)
    with CaptureQueriesContext(connection) as queries:
        assert run_conversion("profile") == "completed"
    statements = Counter(statement_kind(query["sql"]) for query in queries.captured_queries)
    run = profile_jobs(jobs - 1, results_dir=results_dir, name="profile", deadline=time.monotonic() + seconds)
    done, elapsed, cpu, stages = run.done, run.elapsed, run.cpu, run.stages
    total = sum(stages.values()) or 1
    in_database = sum_time(run.root_frame, lambda frame: "psycopg" in (frame.file_path or ""))
    result = {
        "monitor_save_task": monitor_save_cost(),
        "jobs": done,
        "seconds": round(elapsed, 2),
        "jobs_per_s_one_process": round(done / elapsed, 1),
        "ms_per_job": round(elapsed / max(done, 1) * 1000, 2),
        "cpu_ms_per_job": round(cpu / max(done, 1) * 1000, 2),  # this process only, profiler included
        "sql_statements_per_job": len(queries.captured_queries),
        "sql_statements_by_kind": dict(statements.most_common()),
        "ms_in_psycopg_per_job": round(in_database / max(done, 1) * 1000, 2),
        "stages_ms_per_job": {
            name: round(seconds_ / max(done, 1) * 1000, 2)
            for name, seconds_ in sorted(stages.items(), key=lambda item: -item[1])
        },
        "stages_share": {name: round(seconds_ / total, 3) for name, seconds_ in stages.items()},
        "profile_files": run.files,
    }
    empty_queue()
    monitor = result["monitor_save_task"]
    print(
        f"  django-q2 monitor save_task per finished task: {monitor['ms_per_task_as_configured']} ms "
        f"(save_limit={monitor['save_limit']}, {monitor['saved_successes']} saved) vs "
        f"{monitor['ms_per_task_save_limit_-1']} ms with save_limit=-1",
        flush=True,
    )
    print(
        f"  profile: {done} jobs in one process, {result['ms_per_job']} ms/job ({result['cpu_ms_per_job']} CPU), "
        f"{result['sql_statements_per_job']} SQL statements/job, {result['ms_in_psycopg_per_job']} ms/job in psycopg",
        flush=True,
    )
    return result


def statement_kind(text: str) -> str:
    """'UPDATE conversions_conversion', 'SELECT django_q_ormq', ... for counting."""
    words = text.split()
    upper = [word.upper() for word in words]
    verb = upper[0] if words else "?"
    marker = {"SELECT": "FROM", "DELETE": "FROM", "INSERT": "INTO", "UPDATE": "UPDATE"}.get(verb)
    if marker in upper and upper.index(marker) + 1 < len(words):
        table = words[upper.index(marker) + 1].strip('"')
        return f"{verb} {table}"
    return verb


def stage_of(frame) -> str | None:
    path = frame.file_path or ""
    for (file_name, function), stage in STAGES.items():
        # conversions/services.py may be a package (conversions/services/<part>.py)
        if frame.function == function and (path.endswith(file_name) or f"/{file_name[:-3]}/" in path):
            return stage
    return None


def stage_times(root) -> dict[str, float]:
    """Self time of every frame, credited to the innermost stage around it."""
    totals: Counter = Counter()
    stack = [(root, OTHER)]
    while stack:
        frame, stage = stack.pop()
        stage = stage_of(frame) or stage
        totals[stage] += frame.time - sum(child.time for child in frame.children)
        stack.extend((child, stage) for child in frame.children)
    return dict(totals)


def sum_time(root, matches) -> float:
    """Time of the outermost frames that match (nested matches are not counted twice)."""
    total, stack = 0.0, [root]
    while stack:
        frame = stack.pop()
        if matches(frame):
            total += frame.time
        else:
            stack.extend(frame.children)
    return total


def monitor_save_cost(tasks: int = 30) -> dict:
    """What django-q2's monitor (one process per cluster, every finished task passes
    through it) spends saving one successful task's result, in steady state: with the
    configured save_limit and that many successes already saved, and with save_limit -1
    (successes not saved). Measured in this process on the scratch database."""
    import uuid

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone
    from django_q.brokers import get_broker
    from django_q.conf import Conf
    from django_q.models import Task
    from django_q.monitor import save_task

    from conversions.services import TASK_FUNCTION

    configured = Conf.SAVE_LIMIT
    now = timezone.now()

    def finished_task(index: int) -> dict:
        return {
            "id": uuid.uuid4().hex,
            "name": f"conversion-bench-{index}",
            "func": TASK_FUNCTION,
            "args": (str(uuid.uuid4()),),
            "kwargs": {},
            "result": "completed",
            "success": True,
            "started": now,
            "stopped": now,
            "cluster": Conf.CLUSTER_NAME,
        }

    saved_task_results()
    broker = get_broker()
    timings = {}
    try:
        for limit in (configured, -1):
            Conf.SAVE_LIMIT = limit
            with CaptureQueriesContext(connection) as captured:
                save_task(finished_task(-1), broker)
            started = time.perf_counter()
            for index in range(tasks):
                save_task(finished_task(index), broker)
            timings[limit] = ((time.perf_counter() - started) / tasks * 1000, len(captured.captured_queries))
    finally:
        Conf.SAVE_LIMIT = configured
        Task.objects.all().delete()
    return {
        "save_limit": configured,
        "saved_successes": max(configured, 0),
        "ms_per_task_as_configured": round(timings[configured][0], 2),
        "sql_per_task_as_configured": timings[configured][1],
        "ms_per_task_save_limit_-1": round(timings[-1][0], 3),
        "sql_per_task_save_limit_-1": timings[-1][1],
    }
