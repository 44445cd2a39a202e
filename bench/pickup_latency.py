"""Scenario 2: pickup latency, enqueue -> `running`, with idle workers.

One job at a time is submitted over HTTP to an idle cluster (NUM_WORKERS=2); the next
is submitted only after the previous one has finished, plus a random pause so that
submissions do not fall in step with the broker's polling. Pickup is measured from the
job's own row: ``started_at`` (set by the worker's claim) minus ``created_at`` (set
when the web process inserted the row, just before the transaction that enqueued it
committed), both from the one machine's clock, so HTTP polling does not blur it.
"""

import random
import time

import httpx

from bench.harness import SAMPLE_PDF, Bench, empty_queue, latency_summary

WORKERS = 2
MAX_PAUSE_SECONDS = 0.15  # django-q2's `poll` is 0.1 s: pauses spread over its cycle
JOB_TIMEOUT_SECONDS = 10


def wait_finished(conversion_id: str, timeout: float) -> bool:
    from conversions.models import Conversion

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Conversion.objects.filter(pk=conversion_id, finished_at__isnull=False).exists():
            return True
        time.sleep(0.005)
    return False


def run(bench: Bench, *, jobs: int, seconds: float) -> dict:
    from conversions.models import Conversion

    empty_queue()
    web, base_url = bench.web("pickup-web")
    cluster = bench.cluster("pickup-cluster", WORKERS)
    submits, ids, unfinished = [], [], 0
    try:
        time.sleep(1)  # the workers have forked and are waiting on the broker
        pdf = SAMPLE_PDF.read_bytes()
        deadline = time.monotonic() + seconds
        with httpx.Client(base_url=base_url, timeout=30) as client:
            while len(ids) < jobs and time.monotonic() < deadline:
                time.sleep(random.uniform(0, MAX_PAUSE_SECONDS))
                started = time.perf_counter()
                response = client.post(
                    "/api/v1/conversions",
                    files={"file": ("bench.pdf", pdf, "application/pdf")},
                    data={"engine": "noop"},
                )
                submits.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
                ids.append(response.json()["id"])
                if not wait_finished(ids[-1], JOB_TIMEOUT_SECONDS):
                    unfinished += 1  # the workers are not idle any more: stop here
                    break
    finally:
        bench.stop(cluster)
        bench.stop(web)
    rows = list(
        Conversion.objects.filter(pk__in=ids, finished_at__isnull=False).values_list(
            "created_at", "started_at", "finished_at", "status"
        )
    )
    pickups = [(started - created).total_seconds() * 1000 for created, started, _, _ in rows]
    runs = [(finished - started).total_seconds() * 1000 for _, started, finished, _ in rows]
    result = {
        "workers": WORKERS,
        "pickup": latency_summary(pickups),
        "submit_idle_cluster": latency_summary(submits),
        "job_run_one_page": latency_summary(runs),
        "completed": sum(1 for *_, status in rows if status == "completed"),
        "unfinished_after_10_s": unfinished,
    }
    empty_queue()
    print(
        f"  pickup p50={result['pickup']['p50_ms']:.1f} p99={result['pickup']['p99_ms']:.1f} "
        f"max={result['pickup']['max_ms']:.1f} ms (n={result['pickup']['n']}); one-page job runs "
        f"p50={result['job_run_one_page']['p50_ms']:.1f} ms",
        flush=True,
    )
    return result
