"""Scenario 6: requests/s of the list endpoints against `GET /health` on the same web
process, in the same run (issue 20: each at least 0.5x /health's).

One daphne process; 8 clients in a closed loop (each sends its next request when the
previous is answered) for ``seconds`` per endpoint; /health is measured before and after
the lists and its mean is the reference, so a machine that got busier in between shows
in the two /health figures. The database holds ``ROWS`` documents, each with one
completed conversion (bench/queries.py's fill), so every list shows 20 rows.

Endpoints: the native list (`GET /api/v1/conversions`), the original app's `/documents`,
and the admin Queue page's live fragment (`/admin/conversions/conversion/queue/live/`,
signed in as staff).
"""

import asyncio
import time

import httpx
import psutil

from bench.harness import Bench, empty_queue

ROWS = 20
CLIENTS = 8
ENDPOINTS = {
    "GET /api/v1/conversions (20 rows)": "/api/v1/conversions",
    "GET /documents (compat, 20 rows)": "/documents",
    "GET admin queue fragment": "/admin/conversions/conversion/queue/live/",
}


def staff_session_cookie() -> str:
    """A signed-in staff session, made directly in the session store (no login form)."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.db import SessionStore

    staff, _ = get_user_model().objects.get_or_create(
        username="bench-list-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    session = SessionStore()
    session[SESSION_KEY] = str(staff.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = staff.get_session_auth_hash()
    session.save()
    return str(session.session_key)


def measured_loop(server: psutil.Process, base_url: str, path: str, *, seconds: float, cookies: dict) -> dict:
    """closed_loop, with the web process's CPU time per request (user + system): steadier
    than requests/s on a shared machine, and what a list costs the server beyond /health."""
    before = server.cpu_times()
    row = asyncio.run(closed_loop(base_url, path, seconds=seconds, cookies=cookies))
    after = server.cpu_times()
    used = (after.user - before.user) + (after.system - before.system)
    row["server_cpu_ms_per_request"] = round(1000 * used / row["requests"], 2) if row["requests"] else None
    return row


async def closed_loop(base_url: str, path: str, *, seconds: float, cookies: dict) -> dict:
    done, errors = 0, 0
    deadline = 0.0

    async def client_loop():
        nonlocal done, errors
        async with httpx.AsyncClient(base_url=base_url, timeout=30, cookies=cookies) as client:
            await client.get(path)  # opens the connection
            while time.monotonic() < deadline:
                response = await client.get(path)
                done += 1
                errors += response.status_code != 200

    deadline = time.monotonic() + seconds
    started = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(CLIENTS)))
    elapsed = time.perf_counter() - started
    return {"requests_per_s": round(done / elapsed, 1), "requests": done, "errors": errors}


def run(bench: Bench, *, seconds: float) -> dict:
    from bench.queries import fill

    fill(ROWS)
    cookies = {"sessionid": staff_session_cookie()}
    web, base_url = bench.web("lists-web")
    try:
        for path in ENDPOINTS.values():  # warm: imports, templates, caches
            response = httpx.get(base_url + path, cookies=cookies, timeout=30)
            assert response.status_code == 200, (path, response.status_code, response.text[:300])
        server = psutil.Process(web.process.pid)
        health_before = measured_loop(server, base_url, "/health", seconds=seconds, cookies={})
        lists = {
            name: measured_loop(server, base_url, path, seconds=seconds, cookies=cookies)
            for name, path in ENDPOINTS.items()
        }
        health_after = measured_loop(server, base_url, "/health", seconds=seconds, cookies={})
    finally:
        bench.stop(web)
    empty_queue()
    health = (health_before["requests_per_s"] + health_after["requests_per_s"]) / 2
    for row in lists.values():
        row["ratio_to_health"] = round(row["requests_per_s"] / health, 3) if health else None
    result = {
        "clients": CLIENTS,
        "rows": ROWS,
        "health": {"before": health_before, "after": health_after, "mean_requests_per_s": round(health, 1)},
        "lists": lists,
    }
    print(
        f"  /health {health_before['requests_per_s']} then {health_after['requests_per_s']} req/s"
        f" ({health_before['server_cpu_ms_per_request']}, {health_after['server_cpu_ms_per_request']} ms server CPU"
        " per request)",
        flush=True,
    )
    for name, row in lists.items():
        print(
            f"  {name}: {row['requests_per_s']} req/s = {row['ratio_to_health']}x /health"
            f" ({row['server_cpu_ms_per_request']} ms server CPU per request)"
            + (f" ({row['errors']} errors)" if row["errors"] else ""),
            flush=True,
        )
    return result
