"""Scenario 5: the same workload through the plainest PostgreSQL queue there is.

N processes, each with one psycopg connection, loop: claim the next queued job with
``SELECT ... ORDER BY priority DESC, created_at LIMIT 1 FOR UPDATE SKIP LOCKED`` and mark
it running (one transaction), then write a one-cell PageResult and mark the job
completed (a second transaction, as our checkpoint and completion are separate). Same
database, same tables, same backlog of one-page jobs; no Django, no django-q2, no
files, no progress events. It is the ceiling a queue on this database and machine can
reach, printed beside ours as a ratio.
"""

import json
import multiprocessing
import os
import time

import psycopg

from bench.harness import Bench, backend_cpu_seconds, children_cpu_seconds, empty_queue, enqueue_bulk, integrity
from bench.throughput import cpu_per_job

CLAIM = """
    UPDATE conversions_conversion
       SET status = 'running', worker_id = %(worker)s, attempts = attempts + 1,
           started_at = now(), heartbeat_at = now(), updated_at = now()
     WHERE id = (SELECT id FROM conversions_conversion
                  WHERE status = 'queued'
                  ORDER BY priority DESC, created_at
                  LIMIT 1 FOR UPDATE SKIP LOCKED)
 RETURNING id
"""
RESULT = """
    INSERT INTO conversions_pageresult
        (conversion_id, page_no, source_page, status, cells, markdown, markdown_nohf, engine, engine_reason,
         duration_ms, error, created_at)
    VALUES (%(id)s, 0, 1, 'done', %(cells)s, 'Page 1', 'Page 1', 'reference', '', 0, '', now())
"""
COMPLETE = """
    UPDATE conversions_conversion
       SET status = 'completed', pages_done = 1, progress = 100, finished_at = now(), updated_at = now()
     WHERE id = %(id)s AND status = 'running' AND worker_id = %(worker)s
"""
CELLS = json.dumps([{"bbox": [0, 0, 306, 396], "category": "Text", "text": "Page 1"}])


def worker(connect: dict, go, release, deadline_seconds: float, done) -> None:
    name = f"reference:{os.getpid()}"
    with psycopg.connect(**connect) as db:
        go.wait()
        deadline = time.monotonic() + deadline_seconds
        count = 0
        while time.monotonic() < deadline:
            with db.transaction():
                row = db.execute(CLAIM, {"worker": name}).fetchone()
            if row is None:
                break
            with db.transaction():
                db.execute(RESULT, {"id": row[0], "cells": CELLS})
                db.execute(COMPLETE, {"id": row[0], "worker": name})
            count += 1
        done.put(count)
        release.wait(60)  # the connection stays open until its backend's CPU time is read


def run(bench: Bench, *, processes: int, jobs: int, seconds: float) -> dict:
    from dotsocr_site.launcher import connection_kwargs

    empty_queue()
    enqueue_bulk(jobs, with_messages=False)
    context = multiprocessing.get_context("spawn")
    go, release, done = context.Event(), context.Event(), context.Queue()
    connect = {**connection_kwargs(bench.database_url), "autocommit": True}
    cpu_before = children_cpu_seconds()
    children = [context.Process(target=worker, args=(connect, go, release, seconds, done)) for _ in range(processes)]
    for child in children:
        child.start()
    time.sleep(1.0)  # the children have imported psycopg and connected
    started = time.perf_counter()
    go.set()
    counts = [done.get(timeout=seconds + 60) for _ in children]
    elapsed = time.perf_counter() - started
    database_cpu = backend_cpu_seconds()
    release.set()
    for child in children:
        child.join(timeout=10)
    processes_cpu = children_cpu_seconds() - cpu_before
    result = {
        "processes": processes,
        "jobs": jobs,
        "completed": sum(counts),
        "finished_all": sum(counts) >= jobs,
        "seconds": round(elapsed, 2),
        "jobs_per_s": round(sum(counts) / elapsed, 1),
        **integrity(),
        **cpu_per_job(processes_cpu, database_cpu, sum(counts)),
    }
    empty_queue()
    print(
        f"  reference SKIP LOCKED loop, {processes} processes: {result['completed']}/{jobs} jobs in "
        f"{result['seconds']} s = {result['jobs_per_s']} jobs/s; CPU ms/job {result['cpu_ms_per_job']}",
        flush=True,
    )
    return result
