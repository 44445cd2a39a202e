"""Submit latency and pickup latency (submit -> `running`) with idle workers.

Starts its own daphne and qcluster on a scratch database, submits jobs one at a time
(each after the previous one is running, so workers are idle), and prints percentiles.
Run: `.venv/bin/python -m bench.pickup_latency [--jobs 30]` (needs PostgreSQL, as `make run`).
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from dotsocr_site.launcher import ensure_database, prepare_database
from tests.live import free_port, python_env, start_cluster, start_web, url_for_database

SAMPLE = Path(__file__).resolve().parent.parent.parent / "shared/corpus/sample-files/001-trivial/minimal-document.pdf"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def wait_running(client: httpx.Client, conversion_id: str) -> None:
    while client.get(f"/api/v1/conversions/{conversion_id}").json()["status"] == "queued":
        time.sleep(0.002)


def measure(client: httpx.Client, jobs: int) -> tuple[list[float], list[float]]:
    submits, pickups = [], []
    pdf = SAMPLE.read_bytes()
    for _ in range(jobs):
        started = time.monotonic()
        response = client.post("/api/v1/conversions", files={"file": ("sample.pdf", pdf, "application/pdf")})
        answered = time.monotonic()
        wait_running(client, response.json()["id"])
        submits.append((answered - started) * 1000)
        pickups.append((time.monotonic() - answered) * 1000)
        time.sleep(0.5)  # let the job finish so the workers are idle again
    return submits, pickups


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=30)
    args = parser.parse_args()
    database = url_for_database("dotsocr_bench")
    ensure_database(database)
    logs = Path(tempfile.mkdtemp(prefix="dotsocr-bench-"))
    env = python_env(DATABASE_URL=database, DATA_DIR=str(logs / "data"), NUM_WORKERS="2")
    prepare_database(env)
    port = free_port()
    web, cluster = start_web(env, port, logs), start_cluster(env, logs)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            submits, pickups = measure(client, args.jobs)
    finally:
        cluster.stop()
        web.stop()
    for name, values in (("submit response", submits), ("pickup (response -> running)", pickups)):
        print(f"{name:30s} p50 {statistics.median(values):7.1f} ms   p99 {percentile(values, 0.99):7.1f} ms"
              f"   max {max(values):7.1f} ms   (n={len(values)})")


if __name__ == "__main__":
    main()
