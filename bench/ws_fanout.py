"""WebSocket fan-out: 1,000 clients on one daphne subscribed to 100 conversions.

For each channel layer (PostgreSQL, Redis) it starts a daphne on a scratch database,
connects the clients, publishes rounds of progress events into the conversions' groups
from this process (as a worker does) and reports event latency (send -> receive) and
messages/s. Run: `.venv/bin/python -m bench.ws_fanout [--clients 1000 --conversions 100]`.
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LAYERS = {"postgres": "postgres", "redis": "redis://127.0.0.1:6379/1"}


def percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def run_layer(layer: str, clients: int, conversions: int, rounds: int, interval: float) -> dict:
    """Runs in a child process whose environment selects the layer."""
    import django

    django.setup()
    import httpx
    import websockets
    from channels.layers import get_channel_layer

    from dotsocr_site.launcher import prepare_database
    from tests.live import free_port, python_env, start_web
    from workers.progress import conversion_group

    prepare_database(dict(os.environ))
    logs = Path(tempfile.mkdtemp(prefix="dotsocr-ws-bench-"))
    port = free_port()
    web = start_web(python_env(), port, logs)
    try:
        sample = Path(__file__).resolve().parents[2] / "shared/corpus/sample-files/001-trivial/minimal-document.pdf"
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            document = client.post("/api/v1/documents", files={"file": ("s.pdf", sample.read_bytes())}).json()["id"]
            ids = [client.post("/api/v1/conversions", json={"document": document}).json()["id"]
                   for _ in range(conversions)]
        return asyncio.run(measure(port, ids, clients, rounds, interval, get_channel_layer(), conversion_group, websockets))
    finally:
        web.stop()


async def measure(port, ids, clients, rounds, interval, layer, group_of, websockets) -> dict:
    latencies, received = [], 0
    sockets = []
    for index in range(clients):
        socket = await websockets.connect(f"ws://127.0.0.1:{port}/ws/v1/conversions/{ids[index % len(ids)]}",
                                          open_timeout=30, max_queue=None)
        await socket.recv()  # the snapshot
        sockets.append(socket)
    expected = rounds * clients

    async def listen(socket):
        nonlocal received
        while True:
            event = json.loads(await socket.recv())
            latencies.append((time.time() - event["sent_at"]) * 1000)
            received += 1

    listeners = [asyncio.create_task(listen(socket)) for socket in sockets]
    started = time.monotonic()
    for number in range(rounds):
        for conversion_id in ids:
            event = {"seq": 10_000 + number, "status": "running", "progress": 10, "message": "bench",
                     "conversion_id": conversion_id, "sent_at": time.time()}
            await layer.group_send(group_of(conversion_id), {"type": "conversion.event", "event": event})
        await asyncio.sleep(interval)
    deadline = time.monotonic() + 60
    while received < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - started
    for task in listeners:
        task.cancel()
    for socket in sockets:
        await socket.close()
    return {"received": received, "expected": expected, "p50_ms": statistics.median(latencies),
            "p99_ms": percentile(latencies, 0.99), "max_ms": max(latencies), "messages_per_s": received / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--conversions", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between rounds of events")
    parser.add_argument("--layer", choices=LAYERS)
    args = parser.parse_args()
    if args.layer:  # child: measure one layer, print JSON
        print(json.dumps(run_layer(args.layer, args.clients, args.conversions, args.rounds, args.interval)))
        return
    from dotsocr_site.launcher import ensure_database
    from tests.live import python_env, url_for_database

    database = url_for_database("dotsocr_bench")
    ensure_database(database)
    print(f"{args.clients} clients, {args.conversions} conversions, {args.rounds} events per conversion, "
          f"one round every {args.interval} s ({args.clients / args.interval:.0f} messages/s offered)")
    print(f"{'layer':10s} {'received':>10s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s} {'msg/s':>8s}  goal p99 < 50 ms")
    for layer, url in LAYERS.items():
        env = python_env(DJANGO_SETTINGS_MODULE="dotsocr_site.settings", DATABASE_URL=database,
                         CHANNEL_LAYER_URL=url, DATA_DIR=tempfile.mkdtemp(prefix="dotsocr-ws-data-"),
                         LOG_LEVEL="WARNING")
        command = [sys.executable, "-m", "bench.ws_fanout", "--layer", layer, "--clients", str(args.clients),
                   "--conversions", str(args.conversions), "--rounds", str(args.rounds), "--interval", str(args.interval)]
        output = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        if output.returncode != 0:
            print(f"{layer:10s} failed:\n{output.stderr[-2000:]}")
            continue
        result = json.loads(output.stdout.strip().splitlines()[-1])
        print(f"{layer:10s} {result['received']:>5d}/{result['expected']:<5d}{result['p50_ms']:8.1f} "
              f"{result['p99_ms']:8.1f} {result['max_ms']:8.1f} {result['messages_per_s']:8.0f}")


if __name__ == "__main__":
    main()
