"""Waiting requests (Prefer: wait=N, ?wait=N) against a real daphne: they end when the
conversion is final (a real qcluster runs it, or a cancel ends it) or when the wait
runs out, and fifty of them waiting at once hold no thread and do not keep /health or a
new submission waiting."""

import asyncio
import threading
import time

import httpx
import psutil
import pytest

from tests.conftest import ONE_PAGE
from tests.live import free_port, pdf_of, start_web

pytestmark = pytest.mark.acceptance
WAITERS = 50


def daphne_pid(base_url: str) -> int:
    """The daphne process listening on the base URL's port."""
    port = int(base_url.rsplit(":", 1)[1])
    for connection in psutil.net_connections("tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port and connection.pid:
            return connection.pid
    raise LookupError(f"nothing listens on {port}")


def queued_conversions(client: httpx.Client, count: int) -> list[str]:
    """Through daphne (one batch), so that its events reach daphne's channel layer."""
    pdf = ONE_PAGE.read_bytes()
    batch = client.post(
        "/api/v1/batches", files=[("file", (f"q{n}.pdf", pdf, "application/pdf")) for n in range(count)]
    )
    assert batch.status_code == 201, batch.text
    return [conversion["id"] for conversion in batch.json()["conversions"]]


def test_fifty_waiters_leave_health_and_new_submissions_prompt(live_web, live_client):
    """No worker runs: the fifty stay queued and wait until they are cancelled."""
    ids = queued_conversions(live_client, WAITERS)
    daphne = psutil.Process(daphne_pid(live_web))
    threads_before = daphne.num_threads()
    health_before = [timed(live_client.get, "/health") for _ in range(10)]

    async def scenario():
        limits = httpx.Limits(max_connections=WAITERS + 10, max_keepalive_connections=WAITERS + 10)
        async with httpx.AsyncClient(base_url=live_web, timeout=120, limits=limits) as client:
            began = time.monotonic()
            waiters = [
                asyncio.create_task(client.get(f"/api/v1/conversions/{conversion_id}", headers={"Prefer": "wait=60"}))
                for conversion_id in ids
            ]
            await asyncio.sleep(3)  # every waiter has been answered by Django once and now waits
            assert not any(waiter.done() for waiter in waiters), [w.result().status_code for w in waiters if w.done()]
            threads_waiting = daphne.num_threads()
            health = [await timed_async(client.get, "/health") for _ in range(10)]
            submitted = await client.post(
                "/api/v1/conversions",
                data={"engine": "textlayer"},
                files={"file": ("new.pdf", pdf_of(1, "new"), "application/pdf")},
            )
            still_waiting = sum(not waiter.done() for waiter in waiters)
            for conversion_id in ids:
                assert (await client.post(f"/api/v1/conversions/{conversion_id}/cancel")).status_code == 200
            answers = await asyncio.gather(*waiters)
            return began, threads_waiting, health, submitted, still_waiting, answers, time.monotonic()

    began, threads_waiting, health, submitted, still_waiting, answers, ended = asyncio.run(scenario())
    assert [status for status, _ in health] == [200] * 10
    assert submitted.status_code == 201, submitted.text
    assert still_waiting == WAITERS  # /health and the submission were answered while all fifty waited
    # Waiting is a coroutine on daphne's loop: fifty waiters do not add fifty threads.
    assert threads_waiting - threads_before < 20, (threads_before, threads_waiting)
    for answer in answers:
        assert answer.status_code == 200 and answer.json()["status"] == "cancelled"
        assert answer.headers["Preference-Applied"] == "wait=60"
    assert ended - began < 60  # ended by the cancel, not by the wait running out
    print(
        f"/health ms without waiters {sorted(ms for _, ms in health_before)}, "
        f"with {WAITERS}: {sorted(ms for _, ms in health)}"
    )


def timed(call, *args, **kwargs) -> tuple[int, float]:
    started = time.perf_counter()
    response = call(*args, **kwargs)
    return response.status_code, round((time.perf_counter() - started) * 1000, 1)


async def timed_async(call, *args, **kwargs) -> tuple[int, float]:
    started = time.perf_counter()
    response = await call(*args, **kwargs)
    return response.status_code, round((time.perf_counter() - started) * 1000, 1)


def test_create_with_prefer_wait_answers_with_the_completed_conversion(live_client, live_cluster):
    created = live_client.post(
        "/api/v1/conversions",
        headers={"Prefer": "wait=60"},
        data={"engine": "textlayer"},
        files={"file": ("two.pdf", pdf_of(2, "waited"), "application/pdf")},
        timeout=90,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "completed" and body["pages_done"] == 2
    assert created.headers["Preference-Applied"] == "wait=60"
    assert created.headers["Location"] == f"/api/v1/conversions/{body['id']}"
    again = live_client.get(f"/api/v1/conversions/{body['id']}?wait=30")  # final already: no wait
    assert again.status_code == 200 and again.json() == body
    assert again.headers["Preference-Applied"] == "wait=30"


def test_create_with_wait_answers_202_with_the_queued_conversion_when_the_wait_runs_out(live_client):
    started = time.monotonic()
    created = live_client.post(
        "/api/v1/conversions?wait=2", files={"file": ("q.pdf", pdf_of(1, "q"), "application/pdf")}
    )
    assert time.monotonic() - started >= 2
    assert created.status_code == 202, created.text
    assert created.json()["status"] == "queued" and "Preference-Applied" not in created.headers
    assert created.headers["Location"] == f"/api/v1/conversions/{created.json()['id']}"
    assert live_client.post("/api/v1/conversions", files={"file": ("n.pdf", pdf_of(1, "n"))}).status_code == 201


def test_get_with_wait_returns_once_the_conversion_is_cancelled(live_client):
    (conversion_id,) = queued_conversions(live_client, 1)
    timer = threading.Timer(1.0, lambda: live_client.post(f"/api/v1/conversions/{conversion_id}/cancel"))
    timer.start()
    started = time.monotonic()
    try:
        answer = live_client.get(
            f"/api/v1/conversions/{conversion_id}", headers={"Prefer": "respond-async, wait=50"}, timeout=90
        )
    finally:
        timer.join()
    assert answer.status_code == 200 and answer.json()["status"] == "cancelled"
    assert answer.headers["Preference-Applied"] == "wait=50"
    assert 1.0 <= time.monotonic() - started < 50


def test_get_with_wait_answers_the_current_state_when_the_wait_runs_out(live_client):
    (conversion_id,) = queued_conversions(live_client, 1)
    started = time.monotonic()
    answer = live_client.get(f"/api/v1/conversions/{conversion_id}", headers={"Prefer": "wait=2"})
    assert time.monotonic() - started >= 2
    assert answer.status_code == 200 and answer.json()["status"] == "queued"
    assert "Preference-Applied" not in answer.headers


def test_wait_on_an_unknown_conversion_is_a_404_at_once(live_client):
    started = time.monotonic()
    answer = live_client.get("/api/v1/conversions/00000000-0000-0000-0000-000000000000?wait=60")
    assert answer.status_code == 404 and "detail" in answer.json()
    assert time.monotonic() - started < 30


def test_a_malformed_wait_parameter_is_a_400(live_client):
    answer = live_client.get("/api/v1/conversions/00000000-0000-0000-0000-000000000000?wait=soon")
    assert answer.status_code == 400
    assert answer.json() == {"detail": "wait must be a whole number of seconds (0 or more)."}


def test_sync_wait_max_seconds_caps_the_wait(live_env, tmp_path, live_client):
    (conversion_id,) = queued_conversions(live_client, 1)
    port = free_port()
    web = start_web({**live_env, "SYNC_WAIT_MAX_SECONDS": "1"}, port, tmp_path)
    try:
        started = time.monotonic()
        answer = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/conversions/{conversion_id}", headers={"Prefer": "wait=600"}, timeout=700
        )
        waited = time.monotonic() - started
    finally:
        web.stop()
    assert answer.status_code == 200 and answer.json()["status"] == "queued"
    assert 1 <= waited < 300
