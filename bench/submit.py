"""Scenario 1: submit latency of `POST /api/v1/conversions` (a multipart upload) and of
the compat `POST /convert` (a form naming an uploaded file), at 1, 8 and 32 concurrent
clients, with an empty queue and with 10,000 jobs queued. No workers run, so what is
measured is the web process alone.

Each client is an asyncio task with its own keep-alive connection that sends its next
request as soon as the previous one is answered (a closed loop), so requests/s is what
the server sustains at that concurrency and latency includes the queueing in front of it.
"""

import asyncio
import threading
import time
from contextlib import contextmanager

import httpx

from bench.harness import (
    DATABASE_NAME,
    SAMPLE_PDF,
    Bench,
    empty_queue,
    enqueue_bulk,
    latency_summary,
    queue_plans,
    raw_connection,
)

CONCURRENCY = (1, 8, 32)
COMPAT_FILENAME = "bench-compat.pdf"
TOO_MANY_CLIENTS = "too many clients already"
HISTORY = 100_000  # finished jobs beside the backlog when the queue queries are explained
WARMUP_REQUESTS = 5


def native_request(client: httpx.AsyncClient, pdf: bytes):
    return client.post(
        "/api/v1/conversions", files={"file": ("bench.pdf", pdf, "application/pdf")}, data={"engine": "noop"}
    )


def compat_request(client: httpx.AsyncClient, pdf: bytes):
    return client.post("/convert", data={"filename": COMPAT_FILENAME})


ENDPOINTS = {"POST /api/v1/conversions": (native_request, 201), "POST /convert": (compat_request, 200)}


async def closed_loop(base_url: str, send, expected_status: int, clients: int, requests: int, seconds: float) -> dict:
    """``clients`` clients sending ``requests`` requests in all, for at most ``seconds``."""
    pdf = SAMPLE_PDF.read_bytes()
    latencies: list[float] = []
    errors: list[str] = []
    warmed = asyncio.Semaphore(0)
    go = asyncio.Event()
    sent = 0

    async def client_loop():
        nonlocal sent
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            for _ in range(WARMUP_REQUESTS if clients == 1 else 1):  # opens the connection
                await send(client, pdf)
            warmed.release()
            await go.wait()
            while sent < requests and time.monotonic() < deadline:
                sent += 1
                started = time.perf_counter()
                response = await send(client, pdf)
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status_code != expected_status:
                    errors.append(f"{response.status_code} {response.text[:200]}")

    tasks = [asyncio.create_task(client_loop()) for _ in range(clients)]
    for _ in range(clients):  # every client has its connection before the clock starts
        await warmed.acquire()
    deadline = time.monotonic() + seconds
    started = time.perf_counter()
    go.set()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    return {
        **latency_summary(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
    }


def run(bench: Bench, *, requests: int, seconds: float, backlog: int) -> dict:
    """Every endpoint x concurrency, first with an empty queue, then with ``backlog``
    queued; and the plans of the claim and queue-count queries with the backlog."""
    web, base_url = bench.web("submit-web")
    rows, plans = [], {}
    try:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            upload = client.post(
                "/upload", files={"file": (COMPAT_FILENAME, SAMPLE_PDF.read_bytes(), "application/pdf")}
            )
            upload.raise_for_status()
        for queued in (0, backlog):
            empty_queue()
            insert_seconds = enqueue_bulk(queued) if queued else 0.0
            if queued:
                plans = queue_plans(history=HISTORY)
            for endpoint, (send, expected) in ENDPOINTS.items():
                for clients in CONCURRENCY:
                    with peak_connections(bench) as peak:
                        result = asyncio.run(closed_loop(base_url, send, expected, clients, requests, seconds))
                    rows.append(
                        {
                            "endpoint": endpoint,
                            "clients": clients,
                            "queued_before": queued,
                            "backlog_insert_s": round(insert_seconds, 2),
                            **result,
                            "peak_db_connections": peak["connections"],
                        }
                    )
                    print_row(rows[-1])
    finally:
        bench.stop(web)
        empty_queue()
    for name, plan in plans.items():
        print(
            f"  plan with {backlog} queued and {HISTORY} finished: {name}: {plan['execution_ms']} ms, "
            f"{'; '.join(plan['nodes'])}"
        )
    refused = web.log_path.read_text(errors="replace").count(TOO_MANY_CLIENTS)
    return {
        "cells": rows,
        "plans_with_backlog": plans,
        "plans_history_rows": HISTORY,
        "web_log_too_many_clients": refused,
    }


def print_row(row: dict) -> None:
    print(
        f"  submit {row['endpoint']:26s} clients={row['clients']:<3d} queued={row['queued_before']:<6d} "
        f"p50={row['p50_ms']:7.1f} p99={row['p99_ms']:7.1f} max={row['max_ms']:7.1f} ms "
        f"{row['requests_per_s']:6.1f} req/s n={row['n']} errors={row['errors']} "
        f"db connections<={row['peak_db_connections']}",
        flush=True,
    )


@contextmanager
def peak_connections(bench: Bench, interval: float = 0.1):
    """The most connections to the scratch database seen while the block runs (this
    process's own two, Django's and the sampler's, included)."""
    peak = {"connections": 0}
    stop = threading.Event()

    def sample():
        with raw_connection(bench, autocommit=True) as db:
            while not stop.is_set():
                (count,) = db.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [DATABASE_NAME]
                ).fetchone()
                peak["connections"] = max(peak["connections"], count)
                stop.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        stop.set()
        sampler.join()
