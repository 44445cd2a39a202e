"""Chaos trials: kill things while jobs run and check that nothing is lost or done twice.

Scenarios (real daphne, real qcluster, the dots.ocr stand-in as a deliberately slow
engine so jobs are mid-way when the fault lands):

  kill-worker   SIGKILL the worker process after page 3 of 8; the job completes, no
                checkpointed page is sent to the engine again, and the output files are
                byte-identical to an uninterrupted run's. Repeated --trials times.
  kill-all      SIGKILL qcluster and daphne (whole process groups) while 20 jobs are
                queued or running; restart both; all 20 complete.
  db-restart    Restart PostgreSQL while 10 jobs run: a private cluster made with
                pg_createcluster (Debian), else every connection is cut with
                pg_terminate_backend; all jobs complete.
  stop-backlog  Stop a cluster (SIGTERM, group SIGTERM, SIGINT) over a prefetched
                backlog with jobs running, --trials times with 1, 2 and 4 workers;
                stop times and leftovers (bench/chaos_stop.py).

Run: `.venv/bin/python -m bench.chaos [--trials 20] [--only kill-worker]`. Prints a
table and writes bench/results/chaos.json. Needs PostgreSQL as `make run` does.
"""

import argparse
import contextlib
import filecmp
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
from tqdm import tqdm

from bench.chaos_stop import stop_backlog
from dotsocr_site.launcher import connection_kwargs, ensure_database, kill_group, prepare_database
from tests.dotsocr_standin import DotsOcrStandin
from tests.live import free_port, pdf_of, python_env, start_cluster, start_web, url_for_database

RESULTS = Path(__file__).resolve().parent / "results"
FINISHED = ("completed", "failed", "cancelled")
PRIVATE_CLUSTER = ("15", "dotsocr_chaos")
PRIVATE_PORT = 5499


class Stack:
    """daphne + qcluster on a scratch database, with the stand-in as the engine."""

    def __init__(self, database_url: str, standin: DotsOcrStandin, workdir: Path, **env):
        self.workdir = workdir
        self.env = python_env(
            DATABASE_URL=database_url,
            DATA_DIR=str(workdir / "data"),
            OCR_ENGINE_URLS=standin.url,
            DPI="72",
            NUM_THREAD="1",
            LOG_LEVEL="INFO",
            LEASE_SECONDS="30",
            **env,
        )
        self.port = free_port()
        self.web = self.cluster = None

    def start(self) -> "Stack":
        prepare_database(self.env)
        self.web = start_web(self.env, self.port, self.workdir)
        self.cluster = start_cluster(self.env, self.workdir)
        return self

    def restart_cluster(self) -> None:
        self.cluster = start_cluster(self.env, self.workdir)

    def stop(self) -> None:
        for service in (self.cluster, self.web):
            if service is not None:
                service.stop()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)


def submit(client: httpx.Client, content: bytes, name: str) -> str:
    response = client.post(
        "/api/v1/conversions", data={"engine": "dotsocr"}, files={"file": (name, content, "application/pdf")}
    )
    response.raise_for_status()
    return response.json()["id"]


def wait_all(client: httpx.Client, ids: list[str], timeout: float) -> dict[str, dict]:
    deadline, finals = time.monotonic() + timeout, {}
    while len(finals) < len(ids) and time.monotonic() < deadline:
        for conversion_id in set(ids) - set(finals):
            body = get_with_retry(client, f"/api/v1/conversions/{conversion_id}")
            if body and body["status"] in FINISHED:
                finals[conversion_id] = body
        time.sleep(0.1)
    return finals


def get_with_retry(client: httpx.Client, path: str) -> dict | None:
    """The web may be restarting (kill-all) or reconnecting (db-restart)."""
    try:
        response = client.get(path)
        return response.json() if response.status_code == 200 else None
    except httpx.HTTPError:
        return None


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def output_dir(stack: Stack, conversion_id: str) -> Path:
    """The published outputs: the one attempt folder left under outputs/<id> once it completed."""
    folders = sorted((stack.workdir / "data" / "outputs" / conversion_id).iterdir())
    assert len(folders) == 1, folders
    return folders[0]


def same_files(left: Path, right: Path) -> bool:
    names = sorted(path.name for path in left.iterdir())
    if names != sorted(path.name for path in right.iterdir()):
        return False
    return all(filecmp.cmp(left / name, right / name, shallow=False) for name in names)


# --- scenarios ---------------------------------------------------------------------------


def kill_worker(database_url: str, trials: int, workdir: Path) -> dict:
    pages, content = 8, pdf_of(8, "chaos")
    with DotsOcrStandin(latency=0.3) as standin:
        stack = Stack(database_url, standin, workdir, NUM_WORKERS="1").start()
        try:
            with stack.client() as client:
                reference = submit(client, content, "chaos.pdf")
                assert wait_all(client, [reference], 120)[reference]["status"] == "completed"
                outcomes = [
                    kill_worker_trial(stack, client, standin, content, pages, reference)
                    for _ in tqdm(range(trials), desc="kill-worker", unit="trial")
                ]
        finally:
            stack.stop()
    recovered = [outcome["recovery_s"] for outcome in outcomes if outcome["ok"]]
    return {
        "trials": trials,
        "successes": sum(outcome["ok"] for outcome in outcomes),
        "recovery_s_max": round(max(recovered), 2) if recovered else None,
        "recovery_s_mean": round(sum(recovered) / len(recovered), 2) if recovered else None,
        "failures": [outcome for outcome in outcomes if not outcome["ok"]],
    }


def kill_worker_trial(stack, client, standin, content, pages, reference) -> dict:
    sent_before = len(standin.requests)
    conversion_id = submit(client, content, "chaos.pdf")
    with database(stack.env["DATABASE_URL"]) as db:

        def row():
            return db.execute(
                "SELECT pages_done, worker_id, status FROM conversions_conversion WHERE id = %s", (conversion_id,)
            ).fetchone()

        if not wait_for(lambda: row()[0] >= 3, 60):
            return {"ok": False, "why": "never reached page 3"}
        checkpoints = db.execute(
            "SELECT page_no, id, created_at FROM conversions_pageresult WHERE conversion_id = %s", (conversion_id,)
        ).fetchall()
        os.kill(int(row()[1].rsplit(":", 1)[1]), signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for(lambda: row()[2] != "running" or row()[1].rsplit(":", 1)[1] == "", 60)
        recovered_at = time.monotonic()
        final = wait_all(client, [conversion_id], 120).get(conversion_id, {})
        kept = db.execute(
            "SELECT page_no, id, created_at FROM conversions_pageresult WHERE conversion_id = %s AND page_no = ANY(%s)",
            (conversion_id, [c[0] for c in checkpoints]),
        ).fetchall()
    requests = len(standin.requests) - sent_before
    checks = {
        "completed": final.get("status") == "completed",
        "checkpoints kept": sorted(kept) == sorted(checkpoints),
        # each page once after its checkpoint: only the page in flight at the kill again
        "engine requests": pages <= requests <= pages + 1,
        "byte-identical output": final.get("status") == "completed"
        and same_files(output_dir(stack, reference), output_dir(stack, conversion_id)),
    }
    return {
        "ok": all(checks.values()),
        "recovery_s": recovered_at - killed_at,
        "requests": requests,
        **({} if all(checks.values()) else {"checks": checks}),
    }


def kill_all(database_url: str, workdir: Path) -> dict:
    with DotsOcrStandin(latency=0.2) as standin:
        stack = Stack(database_url, standin, workdir, NUM_WORKERS="2").start()
        try:
            with stack.client() as client:
                ids = [submit(client, pdf_of(4, f"job {n}"), f"job-{n}.pdf") for n in range(20)]
                wait_for(
                    lambda: (
                        sum(
                            1
                            for i in ids
                            if (get_with_retry(client, f"/api/v1/conversions/{i}") or {}).get("status") != "queued"
                        )
                        >= 3
                    ),
                    60,
                )
            for service in (stack.cluster, stack.web):
                kill_group(service.process.pid)  # SIGKILL to every process of each
                service.process.wait()
            killed_at = time.monotonic()
            stack.web = start_web(stack.env, stack.port, stack.workdir)
            stack.restart_cluster()
            with stack.client() as client:
                finals = wait_all(client, ids, 300)
            recovered = time.monotonic() - killed_at
        finally:
            stack.stop()
    completed = sum(1 for final in finals.values() if final["status"] == "completed")
    return {"jobs": 20, "completed": completed, "all_done_s_after_restart": round(recovered, 2)}


def db_restart(workdir: Path) -> dict:
    with private_postgres() as (database_url, restart):
        with DotsOcrStandin(latency=0.3) as standin:
            stack = Stack(database_url, standin, workdir, NUM_WORKERS="2").start()
            try:
                with stack.client() as client:
                    ids = [submit(client, pdf_of(6, f"db job {n}"), f"db-{n}.pdf") for n in range(10)]
                    wait_for(
                        lambda: any(
                            (get_with_retry(client, f"/api/v1/conversions/{i}") or {}).get("pages_done", 0) >= 2
                            for i in ids
                        ),
                        60,
                    )
                    method = restart()
                    restarted_at = time.monotonic()
                    finals = wait_all(client, ids, 300)
                    recovered = time.monotonic() - restarted_at
            finally:
                stack.stop()
    completed = sum(1 for final in finals.values() if final["status"] == "completed")
    return {"method": method, "jobs": 10, "completed": completed, "all_done_s_after_restart": round(recovered, 2)}


@contextlib.contextmanager
def private_postgres():
    """A PostgreSQL cluster of our own that may be restarted; else the shared one, whose
    connections to our database are cut instead (the nearest thing a client sees)."""
    if shutil.which("pg_createcluster") and os.geteuid() == 0:
        version, name = PRIVATE_CLUSTER
        subprocess.run(["pg_dropcluster", "--stop", version, name], capture_output=True)
        subprocess.run(
            [
                "pg_createcluster",
                "-p",
                str(PRIVATE_PORT),
                version,
                name,
                "--",
                "--auth-local=trust",
                "--auth-host=trust",
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "start"], check=True)
        url = f"postgres://postgres@127.0.0.1:{PRIVATE_PORT}/dotsocr_chaos"
        ensure_database(url)

        def restart() -> str:
            subprocess.run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "restart", "-m", "fast"], check=True
            )
            return "pg_ctlcluster restart (private cluster)"

        try:
            yield url, restart
        finally:
            subprocess.run(["pg_dropcluster", "--stop", version, name], capture_output=True)
        return
    url = url_for_database("dotsocr_chaos_db")
    ensure_database(url)

    def cut() -> str:
        with database(url) as db:
            db.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        return "pg_terminate_backend (shared server)"

    yield url, cut


@contextlib.contextmanager
def database(url: str):
    with psycopg.connect(**connection_kwargs(url), autocommit=True) as connection:
        yield connection


def scratch_database(name: str) -> str:
    url = url_for_database(name)
    ensure_database(url)
    with database(url) as db:  # start empty: drop the tables of an earlier run
        db.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--only", choices=["kill-worker", "kill-all", "db-restart", "stop-backlog"])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4], help="NUM_WORKERS of stop-backlog")
    args = parser.parse_args()
    results = {}
    for name in ("kill-worker", "kill-all", "db-restart", "stop-backlog"):
        if args.only and args.only != name:
            continue
        workdir = Path(tempfile.mkdtemp(prefix=f"dotsocr-chaos-{name}-"))
        if name == "kill-worker":
            results[name] = kill_worker(scratch_database("dotsocr_chaos"), args.trials, workdir)
        elif name == "kill-all":
            results[name] = kill_all(scratch_database("dotsocr_chaos"), workdir)
        elif name == "stop-backlog":
            results[name] = stop_backlog(args.trials, tuple(args.workers))
        else:
            results[name] = db_restart(workdir)
        print(f"{name}: {json.dumps(results[name])}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "chaos.json").write_text(json.dumps(results, indent=2))
    print(f"\nwritten to {RESULTS / 'chaos.json'}")


if __name__ == "__main__":
    main()
