"""Benchmarks of the queue itself: `make bench` or `.venv/bin/python -m bench`.

Creates a scratch database (dotsocr_bench) and data folder, starts its own daphne and
qcluster processes on them (loopback only), runs each scenario bounded in count and
time, stops everything it started, drops the database, prints a table with each goal
and writes every number to bench/results/latest.json (with pyinstrument's profile of
the worker's task beside it). Jobs use the `noop` engine (one cell per page, no OCR) and
pages are rendered at DPI 36 for their output image, so the queue is measured, not OCR
or rendering. Scenarios, in order (see each module's docstring):

  submit      POST /api/v1/conversions and POST /convert at 1/8/32 clients, 0 and 10k queued
  pickup      enqueue -> running with idle workers
  throughput  a 5,000-job backlog through NUM_WORKERS = 2, 4, 8
  profile     the worker's task under pyinstrument; SQL statements per job
  scaleout    two qcluster processes on one database
  reference   a plain SELECT ... FOR UPDATE SKIP LOCKED loop on the same tables
  queries     SQL statements per request of the list endpoints (N+1 check)
  lists       requests/s of the list endpoints against /health on the same process
  textlayer   10,000 one-page born-digital PDFs through `textlayer` against raw PyMuPDF
  textlayer_profile
              300 of those jobs run by the worker's task under pyinstrument, beside the
              engine alone and raw PyMuPDF on the same files (what bounds the ratio)
  web_tier    GET /health and submissions/s at WEB_CONCURRENCY 1 and 2 beside a bare Django app
  wait_health /health p99 with and without 50 requests waiting (Prefer: wait)
  several_hosts  jobs/s of one cluster against two as two hosts (S3 server and local storage)

The table ends with issue 20's goals, each ratio beside its goal. The whole run takes
about 15 minutes on a 2-core machine (`--quick`: about 4; `--textlayer-files` smaller
for a quick look at the last one).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from bench.harness import scratch_bench

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SCENARIOS = (
    "submit",
    "pickup",
    "throughput",
    "profile",
    "scaleout",
    "reference",
    "queries",
    "lists",
    "textlayer",
    "textlayer_profile",
    "web_tier",
    "wait_health",
    "several_hosts",
)
REFERENCE_PROCESSES = 4  # compared with our NUM_WORKERS=4 run


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, help="run these scenarios only")
    parser.add_argument("--quick", action="store_true", help="small counts and short bounds (a smoke run)")
    parser.add_argument("--jobs", type=int, default=5000, help="backlog of the throughput runs (default 5000)")
    parser.add_argument(
        "--run-seconds",
        type=float,
        default=35,
        help="time bound of each throughput/scale-out/reference run (default 35)",
    )
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[2, 4, 8], help="NUM_WORKERS of the throughput runs (default 2 4 8)"
    )
    parser.add_argument("--backlog", type=int, default=10_000, help="jobs queued for the second submit pass")
    parser.add_argument("--dpi", type=int, default=36, help="DPI of the output page images (default 36)")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        choices=("db_pool", "no_success", "poll_20ms"),
        help="measure a proposed settings change (bench/variant_settings.py); repeatable",
    )
    parser.add_argument(
        "--output", type=Path, help="default bench/results/latest.json (variant-<names>.json with --variant)"
    )
    parser.add_argument(
        "--textlayer-files",
        type=int,
        default=10_000,
        help="one-page PDFs of the textlayer batch (default 10000, as in issue 20)",
    )
    parser.add_argument("--textlayer-seconds", type=float, default=600, help="time bound of the textlayer batch")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database and logs (debugging)")
    args = parser.parse_args(argv)
    if args.output is None:
        name = f"variant-{'-'.join(sorted(args.variant))}.json" if args.variant else "latest.json"
        args.output = RESULTS_DIR / name
    if args.quick:
        args.jobs, args.run_seconds, args.backlog = min(args.jobs, 600), min(args.run_seconds, 10), 1000
        args.textlayer_files = min(args.textlayer_files, 500)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    chosen = args.only or SCENARIOS
    began = time.monotonic()
    report = {"meta": meta(args), "results": {}}
    results = report["results"]
    errors = report["errors"] = {}
    with scratch_bench(dpi=args.dpi, keep=args.keep, variants=tuple(args.variant)) as bench:
        from django.db import connections

        from bench import (
            list_throughput,
            pickup_latency,
            queries,
            reference,
            several_hosts,
            submit,
            textlayer_batch,
            throughput,
            wait_health,
            web_tier,
        )

        def scenario(name, function, *call_args, **kwargs):
            if name not in chosen:
                return
            print(f"[bench] {name} ...", flush=True)
            started = time.monotonic()
            connections.close_all()  # a fresh connection: an earlier scenario may have lost its own
            try:
                results[name] = function(*call_args, **kwargs)
            except Exception as error:  # one broken scenario must not lose the others' numbers
                traceback.print_exc()
                errors[name] = f"{type(error).__name__}: {error}"
            finally:
                bench.stop_all()  # whatever the scenario left running
            print(f"[bench] {name} took {time.monotonic() - started:.0f} s", flush=True)

        small = args.quick
        scenario(
            "submit", submit.run, bench, requests=60 if small else 200, seconds=3 if small else 6, backlog=args.backlog
        )
        scenario("pickup", pickup_latency.run, bench, jobs=15 if small else 40, seconds=15 if small else 30)
        scenario(
            "throughput",
            throughput.run_throughput,
            bench,
            worker_counts=tuple(args.workers),
            jobs=args.jobs,
            seconds=args.run_seconds,
        )
        scenario(
            "profile",
            throughput.run_profile,
            bench,
            jobs=100 if small else 300,
            seconds=8 if small else 15,
            results_dir=args.output.parent,
        )
        scenario("scaleout", throughput.run_scale_out, bench, workers_each=2, jobs=args.jobs, seconds=args.run_seconds)
        scenario(
            "reference", reference.run, bench, processes=REFERENCE_PROCESSES, jobs=args.jobs, seconds=args.run_seconds
        )
        scenario("queries", queries.run)
        scenario("lists", list_throughput.run, bench, seconds=3 if small else 6)
        scenario("textlayer", textlayer_batch.run, bench, files=args.textlayer_files, seconds=args.textlayer_seconds)
        scenario(
            "textlayer_profile",
            textlayer_batch.run_profile,
            bench,
            files=100 if small else 300,
            results_dir=args.output.parent,
        )
        scenario("web_tier", web_tier.run, bench, seconds=4 if small else 8)
        scenario("wait_health", wait_health.run, bench, requests=100 if small else 300, rounds=2 if small else 3)
        scenario(
            "several_hosts",
            several_hosts.run,
            bench,
            workers_each=2,
            jobs=min(args.jobs, 200 if small else 600),
            seconds=min(args.run_seconds * 2, 60),
        )
        if args.keep:
            print(f"[bench] kept database {bench.database_url} and {bench.workdir}")
    report["meta"]["seconds"] = round(time.monotonic() - began, 1)
    report["meta"]["loadavg_after"] = os.getloadavg()
    report["summary"] = summary_rows(results)
    print_summary(report["summary"])
    for name, error in errors.items():
        print(f"[bench] scenario {name} FAILED: {error}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\n[bench] {report['meta']['seconds']:.0f} s in all; results in {args.output}")
    return 1 if errors else 0


def meta(args) -> dict:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).resolve().parent
    ).stdout.strip()
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
        "dpi": args.dpi,
        "jobs": args.jobs,
        "run_seconds": args.run_seconds,
        "quick": args.quick,
        "variants": args.variant,
    }


# --- the table --------------------------------------------------------------------------


def row(scenario: str, measure: str, value, goal: str = "", met: bool | None = None) -> dict:
    return {
        "scenario": scenario,
        "measure": measure,
        "value": value,
        "goal": goal,
        "met": "" if met is None else ("yes" if met else "NO"),
    }


def summary_rows(results: dict) -> list[dict]:
    rows = []
    for cell in results.get("submit", {}).get("cells", []):
        at_32 = cell["clients"] == 32
        rows.append(
            row(
                f"1 submit {cell['endpoint']}",
                f"{cell['clients']:>2} clients, {cell['queued_before']:>5} queued",
                f"p50 {cell['p50_ms']:.1f} / p99 {cell['p99_ms']:.1f} / max {cell['max_ms']:.1f} ms, "
                f"{cell['requests_per_s']:.0f} req/s, <={cell['peak_db_connections']} db conns"
                + (f", {cell['errors']} errors" if cell["errors"] else ""),
                "p99 < 20 ms" if at_32 else "",
                cell["p99_ms"] < 20 if at_32 else None,
            )
        )
    if results.get("submit", {}).get("web_log_too_many_clients"):
        rows.append(
            row(
                "1 submit",
                "HTTP 500s from 'too many clients already'",
                results["submit"]["web_log_too_many_clients"],
                "0",
                False,
            )
        )
    for name, plan in results.get("submit", {}).get("plans_with_backlog", {}).items():
        history = results["submit"]["plans_history_rows"]
        rows.append(
            row(
                "1 plans",
                f"{name} (backlog + {history} finished)",
                f"{plan['execution_ms']} ms: {plan['nodes'][-1].strip()}",
            )
        )
    if "pickup" in results:
        pickup = results["pickup"]["pickup"]
        rows.append(
            row(
                "2 pickup",
                f"enqueue -> running, {results['pickup']['workers']} idle workers",
                f"p50 {pickup['p50_ms']:.1f} / p99 {pickup['p99_ms']:.1f} / max {pickup['max_ms']:.1f} ms "
                f"(n={pickup['n']})",
                "p50 < 50, p99 < 300 ms",
                pickup["p50_ms"] < 50 and pickup["p99_ms"] < 300,
            )
        )
    by_workers = {}
    for run in results.get("throughput", []):
        by_workers[run["workers"]] = run
        rows.append(
            row(
                "3 throughput", f"NUM_WORKERS={run['workers']}", drained(run), ">= 200 jobs/s", run["jobs_per_s"] >= 200
            )
        )
    if "profile" in results:
        profile = results["profile"]
        top = list(profile["stages_ms_per_job"].items())[:4]
        rows.append(
            row(
                "3 profile",
                "task in one process",
                f"{profile['ms_per_job']} ms/job ({profile['cpu_ms_per_job']} ms CPU), "
                f"{profile['sql_statements_per_job']} SQL/job; " + ", ".join(f"{name} {ms}" for name, ms in top),
            )
        )
        monitor = profile["monitor_save_task"]
        rows.append(
            row(
                "3 profile",
                "django-q2 monitor, per finished task",
                f"{monitor['ms_per_task_as_configured']} ms, {monitor['sql_per_task_as_configured']} SQL "
                f"(save_limit {monitor['save_limit']}, {monitor['saved_successes']} saved); "
                f"{monitor['ms_per_task_save_limit_-1']} ms with save_limit -1",
            )
        )
    if "scaleout" in results:
        scale = results["scaleout"]
        rows.append(
            row(
                "4 scale-out",
                f"2 clusters x {scale['workers_each']} workers",
                drained(scale) + f"; claims {scale['claims_per_cluster']}",
            )
        )
        twice = scale["jobs_claimed_twice"] + scale["claimed_by_two_clusters"] + scale["jobs_with_two_results"]
        rows.append(row("4 scale-out", "jobs run twice", twice, "0", twice == 0))
        single = by_workers.get(scale["workers_each"])
        if single:
            ratio = scale["jobs_per_s"] / single["jobs_per_s"] if single["jobs_per_s"] else 0
            rows.append(
                row(
                    "4 scale-out",
                    f"2 clusters / 1 cluster of {scale['workers_each']} workers",
                    f"{ratio:.2f}x",
                    "~2x (adds up)",
                    ratio >= 1.8,
                )
            )
    if "reference" in results:
        ref = results["reference"]
        rows.append(row("5 reference", f"SKIP LOCKED loop, {ref['processes']} processes", drained(ref)))
        ours = by_workers.get(ref["processes"])
        if ours and ref["jobs_per_s"]:
            rows.append(
                row(
                    "5 reference",
                    f"ours (NUM_WORKERS={ref['processes']}) / reference",
                    f"{ours['jobs_per_s'] / ref['jobs_per_s']:.3f}",
                )
            )
    if "web_tier" in results:
        from bench.web_tier import summary as web_tier_summary

        for measure, value, ratio in web_tier_summary(results["web_tier"]):
            rows.append(row("6 web tier", measure, value + (f" ({ratio})" if ratio else "")))
    for name, counted in results.get("queries", {}).items():
        rows.append(
            row(
                "list queries",
                name,
                ", ".join(f"{rows} rows: {n} SQL" for rows, n in counted["rows"].items()),
                "flat (no N+1)",
                not counted["n_plus_1"],
            )
        )
    if "several_hosts" in results:
        from bench.several_hosts import summary as several_hosts_summary

        for measure, value in several_hosts_summary(results["several_hosts"]):
            rows.append(row("7 several hosts", measure, value))
    if "wait_health" in results:
        waited = results["wait_health"]
        rows.append(
            row(
                "wait",
                f"/health with {waited['waiters']} requests waiting / without",
                f"p99 {waited['health_p99_ratio']}x ({waited['health_with_waiters']['p99_ms']:.1f} / "
                f"{waited['health_without_waiters']['p99_ms']:.1f} ms; after them "
                f"{waited['health_after_waiters']['p99_ms']:.1f}), p50 {waited['health_p50_ratio']}x, "
                f"{waited['waiters_waiting_at_end']} still waiting",
                "~1x (as fast as without)",
            )
        )
    return rows + issue_20_goals(results)


def issue_20_goals(results: dict) -> list[dict]:
    """Issue 20's ratios, each with its goal, at the end of the table."""
    rows = []
    ours = {run["workers"]: run for run in results.get("throughput", [])}.get(REFERENCE_PROCESSES)
    if ours and results.get("reference", {}).get("jobs_per_s"):
        ratio = ours["jobs_per_s"] / results["reference"]["jobs_per_s"]
        rows.append(
            row(
                "issue 20",
                f"queue jobs/s, NUM_WORKERS={REFERENCE_PROCESSES} / SKIP LOCKED reference",
                f"{ratio:.3f}x",
                ">= 0.25x (moonshot 0.5x)",
                ratio >= 0.25,
            )
        )
        cpu = ours["cpu_ms_per_job"]
        rows.append(
            row(
                "issue 20",
                "CPU ms per one-page job (queue processes + PostgreSQL)",
                f"{cpu['total']:.1f} ({cpu['queue_processes']:.1f} + {cpu['postgres_backends']:.1f}); "
                f"reference {results['reference']['cpu_ms_per_job']['total']:.1f}",
                "<= 15 ms",
                cpu["total"] <= 15,
            )
        )
    if "pickup" in results:
        pickup = results["pickup"]["pickup"]
        rows.append(
            row(
                "issue 20",
                "pickup, enqueue -> running",
                f"p50 {pickup['p50_ms']:.1f} / p99 {pickup['p99_ms']:.1f} ms",
                "p50 <= 10, p99 <= 50 ms",
                pickup["p50_ms"] <= 10 and pickup["p99_ms"] <= 50,
            )
        )
    lists = results.get("lists")
    if lists:
        for name, measured in lists["lists"].items():
            rows.append(
                row(
                    "issue 20",
                    f"{name} / /health",
                    f"{measured['ratio_to_health']:.2f}x "
                    f"({measured['requests_per_s']:.0f} / {lists['health']['mean_requests_per_s']:.0f} req/s)",
                    ">= 0.5x",
                    measured["ratio_to_health"] >= 0.5,
                )
            )
    for name, counted in results.get("queries", {}).items():
        if name in QUERY_GOALS:
            rows.append(
                row("issue 20", f"{name}: SQL per request by rows", counted["rows"], "fixed", not counted["n_plus_1"])
            )
    batch = results.get("textlayer")
    if batch:
        raw = batch["raw_pymupdf"]
        rows.append(
            row(
                "issue 20",
                f"{batch['files']} one-page PDFs, textlayer / raw PyMuPDF ({raw['processes']} processes)",
                f"{batch['ratio_to_raw_pymupdf']:.3f}x ({batch['pages_per_s']:.0f} / {raw['pages_per_s']:.0f} pages/s)",
                ">= 0.5x",
                batch["ratio_to_raw_pymupdf"] >= 0.5,
            )
        )
    profiled = results.get("textlayer_profile")
    if profiled:
        top = ", ".join(f"{name} {ms}" for name, ms in list(profiled["stages_ms_per_job"].items())[:4])
        rows.append(
            row(
                "issue 20",
                "one-page textlayer job in one process, ms (what bounds the ratio)",
                f"job {profiled['ms_per_job']}; engine alone {profiled['textlayer_engine_ms_per_file']}; "
                f"raw PyMuPDF {profiled['raw_pymupdf_ms_per_file']}; {top}",
            )
        )
    return rows


QUERY_GOALS = ("GET /api/v1/conversions", "GET /documents (compat)", "GET admin queue fragment")


def drained(run: dict) -> str:
    bounded = "" if run["finished_all"] else f" (time bound reached: {run['completed']}/{run['jobs']})"
    text = f"{run['jobs_per_s']:.1f} jobs/s, {run['completed']} jobs in {run['seconds']:.1f} s{bounded}"
    if "cpu_ms_per_job" in run:
        cpu = run["cpu_ms_per_job"]
        text += (
            f"; CPU {cpu['total']:.1f} ms/job (queue processes {cpu['queue_processes']:.1f} + PostgreSQL "
            f"{cpu['postgres_backends']:.1f}): <= {run['jobs_per_s_if_cpu_bound_on_all_cores']} jobs/s on idle cores"
        )
    return text


def print_summary(rows: list[dict]) -> None:
    headers = ("scenario", "measure", "value", "goal", "met")
    table = [[str(entry[key]) for key in headers] for entry in rows]
    widths = [
        max(len(header), *(len(line[index]) for line in table)) if table else len(header)
        for index, header in enumerate(headers)
    ]
    print()
    print("  ".join(header.ljust(width) for header, width in zip(headers, widths, strict=True)))
    print("  ".join("-" * width for width in widths))
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))


if __name__ == "__main__":
    sys.exit(main())
