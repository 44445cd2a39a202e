"""WebSocket fan-out: 1,000 clients on one daphne subscribed to 100 conversions.

For each channel layer (PostgreSQL, Redis) it starts a daphne on a scratch database,
connects the clients, sends rounds of progress events into the conversions' groups
from this process (as workers do, eight sends in flight) and reports event latency
(send -> receive) and messages/s, twice: paced (each conversion's event at its own
moment of the interval, as independent workers send them) and burst (all conversions at
the same instant, the worst case). Run:
`.venv/bin/python -m bench.ws_fanout [--clients 1000 --conversions 100 --rounds 20 --layers postgres redis]`.
"""

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LAYERS = {"postgres": "postgres", "redis": "redis://127.0.0.1:6379/1"}
SENDERS = 8  # group_sends in flight at once, as from eight worker processes
MODES = ("paced", "burst")


def percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def run_layer(layer: str, clients: int, conversions: int, rounds: int, interval: float) -> dict:
    """Runs in a child process whose environment selects the layer."""
    import django

    django.setup()
    import httpx
    from channels.layers import get_channel_layer

    from dotsocr_site.launcher import prepare_database
    from tests.live import free_port, python_env, start_web

    prepare_database(dict(os.environ))
    logs = Path(tempfile.mkdtemp(prefix="dotsocr-ws-bench-"))
    port = free_port()
    web = start_web(python_env(), port, logs)
    try:
        sample = Path(__file__).resolve().parents[2] / "shared/corpus/sample-files/001-trivial/minimal-document.pdf"
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            document = client.post("/api/v1/documents", files={"file": ("s.pdf", sample.read_bytes())}).json()["id"]
            ids = [
                client.post("/api/v1/conversions", json={"document": document}).json()["id"] for _ in range(conversions)
            ]
        return asyncio.run(measure(port, ids, clients, rounds, interval, get_channel_layer()))
    finally:
        web.stop()


async def measure(port, ids, clients, rounds, interval, layer) -> dict:
    """Connects the clients once, then sends paced rounds and burst rounds."""
    import websockets

    await layer.flush()  # no group memberships left by an earlier run's web process
    sockets = []
    for index in range(clients):
        socket = await websockets.connect(
            f"ws://127.0.0.1:{port}/ws/v1/conversions/{ids[index % len(ids)]}", open_timeout=30, max_queue=None
        )
        await socket.recv()  # the snapshot
        sockets.append(socket)
    print(f"{clients} clients connected; sending", file=sys.stderr, flush=True)
    # This process is the measuring instrument: its own collector's pauses (a full pass
    # over a thousand client connections) would be counted as the server's latency.
    gc.collect()
    gc.freeze()
    gc.disable()
    latencies = []
    listeners = [asyncio.create_task(listen(socket, latencies)) for socket in sockets]
    # One unmeasured round first: the sender's connection pool and prepared
    # statements are warm in a running worker.
    await send_rounds(layer, ids, 1, interval, burst=False, first_seq=1)
    await asyncio.sleep(1)
    results = {}
    for number, mode in enumerate(MODES):
        latencies.clear()
        started = time.monotonic()
        # seq only grows: a socket drops an event older than one it has sent
        await send_rounds(layer, ids, rounds, interval, burst=mode == "burst", first_seq=10_000 * (number + 1))
        expected = rounds * clients
        deadline = time.monotonic() + 60
        while len(latencies) < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        elapsed = time.monotonic() - started
        results[mode] = {
            "received": len(latencies),
            "expected": expected,
            "p50_ms": statistics.median(latencies),
            "p99_ms": percentile(latencies, 0.99),
            "max_ms": max(latencies),
            "messages_per_s": len(latencies) / elapsed,
        }
    gc.enable()
    for task in listeners:
        task.cancel()
    for socket in sockets:
        await socket.close()
    return results


async def listen(socket, latencies: list) -> None:
    while True:
        event = json.loads(await socket.recv())
        latencies.append((time.time() - event["sent_at"]) * 1000)


async def send_rounds(layer, ids, rounds: int, interval: float, burst: bool, first_seq: int) -> None:
    """One event per conversion per round. Paced: each conversion's event at its own
    moment of the interval, as independent workers send them; burst: every conversion's
    at the same instant (the worst case)."""
    from conversions.progress.groups import build_group_message, conversion_group

    senders = asyncio.Semaphore(SENDERS)

    async def send(conversion_id, number):
        async with senders:
            event = {
                "seq": first_seq + number,
                "status": "running",
                "progress": 10,
                "message": "bench",
                "conversion_id": conversion_id,
                "sent_at": time.time(),
            }
            group = conversion_group(conversion_id)
            await layer.group_send(group, build_group_message(group, "conversion.event", event))

    started = time.monotonic()
    sends = []
    for number in range(rounds):
        for index, conversion_id in enumerate(ids):
            offset = 0 if burst else interval * index / len(ids)
            await asyncio.sleep(max(0.0, started + number * interval + offset - time.monotonic()))
            sends.append(asyncio.create_task(send(conversion_id, number)))
    await asyncio.gather(*sends)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--conversions", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between rounds of events")
    parser.add_argument("--layers", nargs="+", choices=LAYERS, default=list(LAYERS), help="layers to measure")
    parser.add_argument("--layer", choices=LAYERS, help=argparse.SUPPRESS)  # the child's
    args = parser.parse_args()
    if args.layer:  # child: measure one layer, print JSON
        print(json.dumps(run_layer(args.layer, args.clients, args.conversions, args.rounds, args.interval)))
        return
    from dotsocr_site.launcher import ensure_database
    from tests.live import python_env, url_for_database

    database = url_for_database("dotsocr_bench")
    ensure_database(database)
    print(
        f"{args.clients} clients, {args.conversions} conversions, {args.rounds} events per conversion, "
        f"one round every {args.interval} s ({args.clients / args.interval:.0f} messages/s offered)"
    )
    print(
        f"{'layer':10s} {'mode':6s} {'received':>11s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s} {'msg/s':>7s}"
        f"  goal p99 < 50 ms"
    )
    for layer in args.layers:
        env = python_env(
            DJANGO_SETTINGS_MODULE="dotsocr_site.settings",
            DATABASE_URL=database,
            CHANNEL_LAYER_URL=LAYERS[layer],
            DATA_DIR=tempfile.mkdtemp(prefix="dotsocr-ws-data-"),
            LOG_LEVEL="WARNING",
        )
        command = [
            sys.executable,
            "-m",
            "bench.ws_fanout",
            "--layer",
            layer,
            "--clients",
            str(args.clients),
            "--conversions",
            str(args.conversions),
            "--rounds",
            str(args.rounds),
            "--interval",
            str(args.interval),
        ]
        output = subprocess.run(command, env=env, stdout=subprocess.PIPE, text=True, timeout=900)
        if output.returncode != 0:
            print(f"{layer:10s} failed (its errors are above)")
            continue
        for mode, result in json.loads(output.stdout.strip().splitlines()[-1]).items():
            print(
                f"{layer:10s} {mode:6s} {result['received']:>5d}/{result['expected']:<5d} {result['p50_ms']:8.1f} "
                f"{result['p99_ms']:8.1f} {result['max_ms']:8.1f} {result['messages_per_s']:7.0f}"
            )


if __name__ == "__main__":
    main()
