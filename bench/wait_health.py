"""Waiting requests beside other traffic: /health latency with and without 50 requests
waiting (``Prefer: wait``) in the same run, on one daphne.

No qcluster runs, so the waiters' conversions stay queued and every waiter waits its
whole time on the event loop (conversions/waiting.py). Passes without and with the
waiters alternate (``rounds`` of each, so that a shared machine's changing load weighs
on both alike); each sends the same closed-loop /health load (``clients`` asyncio httpx
clients, each on its own keep-alive connection, ``requests`` in all) and a few
sequential submissions (``POST /api/v1/conversions``). The waiters of a round are
dropped after it (the client disconnects, which ends their waits); a last pass after
them shows how much of any difference is the machine's noise. Printed: /health p99
with waiters over without.

    .venv/bin/python -m bench.wait_health [--waiters 50] [--requests 300] [--clients 4] [--rounds 3]
"""

import argparse
import asyncio
import time

import httpx

from bench.harness import SAMPLE_PDF, Bench, empty_queue, enqueue_bulk, latency_summary, scratch_bench

WAIT_SECONDS = 120  # SYNC_WAIT_MAX_SECONDS' default: the waiters outlast the measurement
SETTLE_SECONDS = 2.0  # every waiter has had its first answer from Django and now waits


async def health_load(client: httpx.AsyncClient, *, clients: int, requests: int) -> list[float]:
    latencies: list[float] = []
    remaining = requests

    async def loop():
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            response = await client.get("/health")
            latencies.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()

    await asyncio.gather(*(loop() for _ in range(clients)))
    return latencies


async def submissions(client: httpx.AsyncClient, count: int) -> list[float]:
    pdf, latencies = SAMPLE_PDF.read_bytes(), []
    for _ in range(count):
        started = time.perf_counter()
        response = await client.post(
            "/api/v1/conversions", files={"file": ("bench.pdf", pdf, "application/pdf")}, data={"engine": "noop"}
        )
        latencies.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 201, response.text
    return latencies


async def measure(base_url: str, ids: list[str], *, clients: int, requests: int, submits: int, rounds: int) -> dict:
    """``rounds`` times: a pass without waiters, then one with them (so that the machine's
    load, which changes over a run, weighs on both alike), each ``requests`` /health
    requests and ``submits`` submissions; then one pass after the last waiters left."""
    limits = httpx.Limits(max_connections=len(ids) + clients + 4, max_keepalive_connections=len(ids) + clients + 4)
    measured: dict = {
        "without": [],
        "with": [],
        "submit_without": [],
        "submit_with": [],
        "waiting_at_start": [],
        "waiting_at_end": [],
    }
    async with httpx.AsyncClient(base_url=base_url, timeout=WAIT_SECONDS + 30, limits=limits) as client:
        await health_load(client, clients=clients, requests=50)  # warm the connections and the process
        for _ in range(rounds):
            measured["without"] += await health_load(client, clients=clients, requests=requests)
            measured["submit_without"] += await submissions(client, submits)
            waiters = [
                asyncio.create_task(
                    client.get(f"/api/v1/conversions/{conversion_id}", headers={"Prefer": f"wait={WAIT_SECONDS}"})
                )
                for conversion_id in ids
            ]
            await asyncio.sleep(SETTLE_SECONDS)
            measured["waiting_at_start"].append(sum(not waiter.done() for waiter in waiters))
            measured["with"] += await health_load(client, clients=clients, requests=requests)
            measured["submit_with"] += await submissions(client, submits)
            measured["waiting_at_end"].append(sum(not waiter.done() for waiter in waiters))
            for waiter in waiters:
                waiter.cancel()  # the client disconnects: the server ends those waits
            await asyncio.gather(*waiters, return_exceptions=True)
            await asyncio.sleep(SETTLE_SECONDS)
        measured["after"] = await health_load(client, clients=clients, requests=requests)
    return measured


def run(
    bench: Bench, *, waiters: int = 50, requests: int = 300, clients: int = 4, submits: int = 5, rounds: int = 3
) -> dict:
    from conversions.models import Conversion

    empty_queue()
    enqueue_bulk(waiters, with_messages=False)
    ids = [str(pk) for pk in Conversion.objects.filter(status="queued").values_list("pk", flat=True)]
    web, base_url = bench.web("wait-health-web")
    try:
        measured = asyncio.run(
            measure(base_url, ids, clients=clients, requests=requests, submits=submits, rounds=rounds)
        )
    finally:
        bench.stop(web)
    empty_queue()
    without, with_waiters = latency_summary(measured["without"]), latency_summary(measured["with"])
    result = {
        "waiters": waiters,
        "clients": clients,
        "rounds": rounds,
        "health_without_waiters": without,
        "health_with_waiters": with_waiters,
        "health_after_waiters": latency_summary(measured["after"]),
        "health_p99_ratio": round(with_waiters["p99_ms"] / without["p99_ms"], 2) if without["p99_ms"] else None,
        "health_p50_ratio": round(with_waiters["p50_ms"] / without["p50_ms"], 2) if without["p50_ms"] else None,
        "submit_without_waiters": latency_summary(measured["submit_without"]),
        "submit_with_waiters": latency_summary(measured["submit_with"]),
        "waiters_waiting_at_start": min(measured["waiting_at_start"]),
        "waiters_waiting_at_end": min(measured["waiting_at_end"]),
    }
    print(
        f"  /health p50/p99 without waiters {without['p50_ms']:.1f}/{without['p99_ms']:.1f} ms, with {waiters} "
        f"waiting {with_waiters['p50_ms']:.1f}/{with_waiters['p99_ms']:.1f} ms: p99 ratio "
        f"{result['health_p99_ratio']} ({result['waiters_waiting_at_end']}/{waiters} still waiting at the end; after "
        f"them p99 {result['health_after_waiters']['p99_ms']:.1f} ms); submit "
        f"p50 {result['submit_without_waiters']['p50_ms']:.1f} -> {result['submit_with_waiters']['p50_ms']:.1f} ms",
        flush=True,
    )
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.wait_health", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--waiters", type=int, default=50)
    parser.add_argument("--requests", type=int, default=300, help="/health requests per pass")
    parser.add_argument("--rounds", type=int, default=3, help="passes without and with waiters, alternated")
    parser.add_argument("--clients", type=int, default=4, help="concurrent /health clients")
    args = parser.parse_args(argv)
    with scratch_bench(dpi=36) as bench:
        run(bench, waiters=args.waiters, requests=args.requests, clients=args.clients, rounds=args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
