"""Web tier: `GET /health` and `POST /api/v1/conversions` per second with WEB_CONCURRENCY
1 and 2 (dotsocr_site/web_tier.py), beside the reference: a bare Django + daphne app with
one view (bench/bare_django.py) at 1 and 2 processes, all started in the same run.

Each cell is a closed loop of ``clients`` keep-alive connections, each sending its next
request as soon as the previous one is answered, for ``seconds``. The client is a few
lines of asyncio over raw sockets, not httpx: on a 2-core machine the load generator
shares the cores with the servers, and the cheaper it is the more the numbers say about
the servers. With several processes the kernel gives each connection to one of them; the
split of the connections is reported. The clients connect one after another (each once
the previous one has its first answer): sixteen connections opened in the same
millisecond mostly go to whichever process is scheduled first on a loaded machine,
even with one accept per wake-up. No workers run: submissions only queue.

Run alone: `.venv/bin/python -m bench --only web_tier` (about 2 minutes).
"""

import asyncio
import os
import socket
import sys
import time
from collections import Counter

from bench.harness import SAMPLE_PDF, Bench, empty_queue, latency_summary
from dotsocr_site.web_process import HEADER
from dotsocr_site.web_tier import bind_listener
from tests.live import ServiceProcess, free_port, start_web, start_web_tier, wait_until_every_process_answers

BOUNDARY = "benchwebtierboundary"


def health_request(port: int) -> bytes:
    return f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()


def submission_request(port: int, pdf: bytes) -> bytes:
    body = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="engine"\r\n\r\nnoop\r\n'
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="bench.pdf"\r\n'
            "Content-Type: application/pdf\r\n\r\n"
        ).encode()
        + pdf
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    head = (
        f"POST /api/v1/conversions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, str]:
    """One HTTP/1.1 response off a keep-alive connection: (status, X-Web-Process)."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    fields = (line.partition(":") for line in head[1:] if line)
    headers = {name.strip().lower(): value.strip() for name, _, value in fields}
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while size := int((await reader.readline()).strip(), 16):
            await reader.readexactly(size + 2)
        await reader.readline()
    return status, headers.get(HEADER.lower(), "")


async def closed_loop(port: int, request: bytes, expected: int, clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors: Counter = Counter()
    connections_per_process: Counter = Counter()
    ready = asyncio.Semaphore(0)
    go = asyncio.Event()

    async def client():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)  # warm-up: the connection is open and its process known
        _, process = await read_response(reader)
        connections_per_process[process] += 1
        ready.release()
        await go.wait()
        while time.monotonic() < deadline:
            started = time.perf_counter()
            writer.write(request)
            status, _ = await read_response(reader)
            latencies.append((time.perf_counter() - started) * 1000)
            if status != expected:
                errors[status] += 1
        writer.close()

    tasks = []
    for _ in range(clients):  # one after another, as clients arriving over time
        tasks.append(asyncio.create_task(client()))
        await ready.acquire()
    deadline = time.monotonic() + seconds
    started = time.perf_counter()
    go.set()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    return {
        **latency_summary(latencies),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "errors": dict(errors),
        "connections_per_process": sorted(connections_per_process.values()),
    }


def start_reference(bench: Bench, processes: int) -> tuple[list[ServiceProcess], int]:
    """The bare app on ``processes`` daphne processes (one socket, as ours)."""
    port = free_port()
    log_dir = bench.log_dir(f"reference-{processes}")
    env = bench.child_env(WEB_CONCURRENCY=processes)
    with bind_listener("127.0.0.1", port) as listener:
        fd = listener.fileno()
        command = [sys.executable, "-m", "daphne", "--fd", str(fd), "bench.bare_django:application"]
        webs = [
            ServiceProcess(command, env, log_dir / f"daphne-{index}.log", pass_fds=(fd,)).start()
            for index in range(processes)
        ]
    bench.started.extend(webs)
    wait_until_every_process_answers(f"http://127.0.0.1:{port}", webs)
    return webs, port


def start_ours(bench: Bench, processes: int) -> tuple[list[ServiceProcess], int]:
    port = free_port()
    log_dir = bench.log_dir(f"web-tier-{processes}")
    env = bench.child_env(BENCH_VARIANTS=bench.variants_for(web=True))
    webs = [start_web(env, port, log_dir)] if processes == 1 else start_web_tier(env, port, processes, log_dir)
    bench.started.extend(webs)
    return webs, port


def run(bench: Bench, *, processes: tuple[int, ...] = (1, 2), clients: int = 16, seconds: float = 8) -> dict:
    pdf = SAMPLE_PDF.read_bytes()
    cells = []
    for server, start in (("reference", start_reference), ("dotsocr", start_ours)):
        for count in processes:
            webs, port = start(bench, count)
            try:
                routes = [("GET /health", health_request(port), 200)]
                if server == "dotsocr":
                    routes.append(("POST /api/v1/conversions", submission_request(port, pdf), 201))
                for route, request, expected in routes:
                    load_before = os.getloadavg()[0]
                    result = asyncio.run(closed_loop(port, request, expected, clients, seconds))
                    cells.append(
                        {
                            "server": server,
                            "processes": count,
                            "route": route,
                            "clients": clients,
                            "loadavg_1m_before": round(load_before, 2),
                            **result,
                        }
                    )
                    print_cell(cells[-1])
            finally:
                for web in webs:
                    bench.stop(web)
                empty_queue()
    return {
        "cells": cells,
        "cpus": os.cpu_count(),
        "clients": clients,
        "seconds": seconds,
        "host": socket.gethostname(),
    }


def print_cell(cell: dict) -> None:
    print(
        f"  web_tier {cell['server']:9s} processes={cell['processes']} {cell['route']:26s} "
        f"{cell['requests_per_s']:7.1f} req/s p50={cell['p50_ms']:6.1f} p99={cell['p99_ms']:6.1f} ms "
        f"errors={cell['errors']} connections/process={cell['connections_per_process']} "
        f"load before={cell['loadavg_1m_before']}",
        flush=True,
    )


def summary(result: dict) -> list[tuple[str, str, str]]:
    """(measure, value, ratio) rows for bench/__main__.py's table."""
    rate = {(cell["server"], cell["processes"], cell["route"]): cell["requests_per_s"] for cell in result["cells"]}
    rows = []
    for (server, count, route), per_s in rate.items():
        reference = rate.get(("reference", count, "GET /health"))
        one = rate.get((server, 1, route))
        ratios = []
        if server == "dotsocr" and route == "GET /health" and reference:
            ratios.append(f"{per_s / reference:.2f}x the reference at {count}")
        if count > 1 and one:
            ratios.append(f"{per_s / one:.2f}x its 1 process")
        rows.append(
            (f"{server} {route}, {count} process{'es' if count > 1 else ''}", f"{per_s:.0f} req/s", "; ".join(ratios))
        )
    return rows
