"""Several hosts (issue 18): jobs/s of ONE qcluster against TWO qcluster processes run as
two hosts (their own WORKER_HOST and DATA_DIR) that share only PostgreSQL and the object
store, on the same backlog in the same run; and the same with the local filesystem
backend (the two clusters then share DATA_DIR, as hosts on a shared volume do) as the
reference.

The object store is moto's standalone S3 server on loopback (tests/s3server.py's), one
Python process: its cost per request is not a real S3's or MinIO's, so the S3 rates say
what the service does against this stand-in, and the ratio two/one is the number to
read. Each backend's sample document is stored through a web process of that backend
(the bench process itself keeps the local backend). Every run drains a backlog of
one-page noop jobs (bench/throughput.py's ``drain``: rate = jobs completed / (last
finished - first started), bounded by ``seconds``); ``rounds`` repeat the four runs in
turn, so that a shared machine's changing load weighs on each alike.

    .venv/bin/python -m bench.several_hosts [--jobs 600] [--workers-each 2] [--run-seconds 60] [--rounds 1]
"""

import argparse
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from bench.harness import SAMPLE_PDF, Bench, empty_queue, scratch_bench
from bench.throughput import drain

SAMPLE_NAME = "bench-sample.pdf"  # the name bench.harness.sample_document looks for
HOSTS = ("host-a", "host-b")


@contextmanager
def moto_server(log_path) -> Iterator:
    """moto's S3 server on a free loopback port with the tests' bucket; yields
    tests.s3server.S3Server."""
    from tests.s3server import running_s3_server

    with running_s3_server(log_path, prefix="bench") as server:
        yield server


def store_sample(bench: Bench, storage_env: dict) -> None:
    """Replace the sample document by one stored with ``storage_env``'s backend: uploaded
    through a web process of that backend (its conversion is emptied with the queue)."""
    from conversions.models import Document

    empty_queue()
    Document.objects.filter(filename=SAMPLE_NAME).delete()
    web, base_url = bench.web("web-sample", **storage_env)
    try:
        response = httpx.post(
            f"{base_url}/api/v1/conversions",
            files={"file": (SAMPLE_NAME, SAMPLE_PDF.read_bytes(), "application/pdf")},
            timeout=60,
        )
        response.raise_for_status()
    finally:
        bench.stop(web)
    empty_queue()


def host_env(bench: Bench, host: str, storage_env: dict, *, own_disk: bool) -> dict:
    env = {"WORKER_HOST": host, **storage_env}
    if own_disk:
        folder = bench.workdir / f"data-{host}"
        folder.mkdir(exist_ok=True)
        env["DATA_DIR"] = str(folder)
    return env


def measure(
    bench: Bench, backend: str, storage_env: dict, *, workers_each: int, jobs: int, seconds: float, label: str
) -> dict:
    """One cluster, then two as two hosts, on ``jobs`` one-page jobs each; jobs/s of both.
    ``label`` makes the clusters' names (and log folders, where claims are counted) unique."""
    own_disk = backend == "s3"  # the local backend is a shared volume: one DATA_DIR for all
    envs = {host: host_env(bench, host, storage_env, own_disk=own_disk) for host in HOSTS}
    alone = {f"{label}-one-{HOSTS[0]}": envs[HOSTS[0]]}
    pair = {f"{label}-two-{host}": envs[host] for host in HOSTS}
    one = drain(bench, clusters=dict.fromkeys(alone, workers_each), jobs=jobs, seconds=seconds, cluster_env=alone)
    two = drain(bench, clusters=dict.fromkeys(pair, workers_each), jobs=jobs, seconds=seconds, cluster_env=pair)
    ratio = two["jobs_per_s"] / one["jobs_per_s"] if one["jobs_per_s"] else 0.0
    twice = two["jobs_claimed_twice"] + two["claimed_by_two_clusters"] + two["jobs_with_two_results"]
    print(
        f"  {backend:5} 1 cluster: {one['jobs_per_s']:6.1f} jobs/s ({one['completed']}/{jobs} in {one['seconds']} s)"
        f" | 2 hosts: {two['jobs_per_s']:6.1f} jobs/s ({two['completed']}/{jobs} in {two['seconds']} s, claims "
        f"{two['claims_per_cluster']}) | 2/1 = {ratio:.2f}x | run twice: {twice} | load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    return {"backend": backend, "one": one, "two": two, "ratio": round(ratio, 2), "jobs_run_twice": twice}


def run(bench: Bench, *, workers_each: int = 2, jobs: int = 600, seconds: float = 60, rounds: int = 1) -> dict:
    """``rounds`` of (local: one, two; s3: one, two). Returns every run and, per backend,
    the mean jobs/s of one and of two clusters and their ratio."""
    loadavg_before = os.getloadavg()
    runs = []
    with moto_server(bench.log_dir("moto") / "moto.log") as s3:
        backends = {"local": {}, "s3": s3.env_for("bench-several-hosts")}
        for round_ in range(rounds):
            for backend, storage_env in backends.items():
                store_sample(bench, storage_env)
                label = f"{backend}-{round_ + 1}"
                runs.append(
                    measure(
                        bench, backend, storage_env, workers_each=workers_each, jobs=jobs, seconds=seconds, label=label
                    )
                )
    summary = {}
    for backend in ("local", "s3"):
        mine = [entry for entry in runs if entry["backend"] == backend]
        one = sum(entry["one"]["jobs_per_s"] for entry in mine) / len(mine)
        two = sum(entry["two"]["jobs_per_s"] for entry in mine) / len(mine)
        summary[backend] = {
            "one_cluster_jobs_per_s": round(one, 1),
            "two_hosts_jobs_per_s": round(two, 1),
            "ratio": round(two / one, 2) if one else None,
            "jobs_run_twice": sum(entry["jobs_run_twice"] for entry in mine),
        }
    return {
        "workers_each": workers_each,
        "jobs": jobs,
        "rounds": rounds,
        "runs": runs,
        "summary": summary,
        "loadavg_before": loadavg_before,
        "loadavg_after": os.getloadavg(),
    }


def summary(result: dict) -> list[tuple[str, str]]:
    """(measure, value) rows for bench/__main__.py's table."""
    workers = result["workers_each"]
    return [
        (
            f"{backend}: 2 hosts / 1 cluster of {workers} workers",
            f"{row['ratio']}x ({row['two_hosts_jobs_per_s']} / {row['one_cluster_jobs_per_s']} jobs/s, "
            f"{result['jobs']} one-page jobs, run twice: {row['jobs_run_twice']})",
        )
        for backend, row in result["summary"].items()
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.several_hosts", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=600, help="one-page jobs in each run's backlog")
    parser.add_argument("--workers-each", type=int, default=2, help="NUM_WORKERS of each cluster")
    parser.add_argument("--run-seconds", type=float, default=60, help="time bound of each run")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the four runs, in turn")
    args = parser.parse_args(argv)
    started = time.monotonic()
    with scratch_bench(dpi=36) as bench:
        result = run(
            bench, workers_each=args.workers_each, jobs=args.jobs, seconds=args.run_seconds, rounds=args.rounds
        )
    print()
    for measure_, value in summary(result):
        print(f"{measure_}: {value}")
    before, after = result["loadavg_before"], result["loadavg_after"]
    print(
        f"load average {before[0]:.1f} before, {after[0]:.1f} after, on {os.cpu_count()} cores; "
        f"{time.monotonic() - started:.0f} s in all"
    )
    return 0 if all(row["jobs_run_twice"] == 0 for row in result["summary"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
