"""A client that behaves like the original app's test_worker_pool.py, against real
daphne + qcluster: two uploads, two conversions at once, both followed over the
original WebSocket while /worker-pool-status is polled."""

import json
import threading
import time

import pytest
from websockets.sync.client import connect

from tests.test_progress_live import PAGES, long_pdf

pytestmark = pytest.mark.acceptance


def follow(url: str, into: list) -> None:
    with connect(url, open_timeout=10) as socket:
        while True:
            message = json.loads(socket.recv(timeout=90))
            into.append(message)
            if message["status"] in ("completed", "error"):
                return


def worker_count_settles(client, expected: int, timeout: float = 10) -> None:
    """Wait until /worker-pool-status counts ``expected`` workers. The cluster is shared
    with the tests before this one, and its django-q2 stats (rewritten each guard cycle,
    kept 3 s) once read otherwise at the start of this test in CI, cause not pinned down."""
    deadline = time.monotonic() + timeout
    while client.get("/worker-pool-status").json()["num_workers"] != expected and time.monotonic() < deadline:
        time.sleep(0.2)


def test_two_conversions_at_once_like_the_original_client(live_client, live_cluster, live_web):
    worker_count_settles(live_client, 2)
    for name in ("first.pdf", "second.pdf"):
        uploaded = live_client.post("/upload", files={"file": (name, long_pdf(name), "application/pdf")})
        assert uploaded.status_code == 200 and uploaded.json()["status"] == "success"

    started = [live_client.post("/convert", data={"filename": name}).json() for name in ("first.pdf", "second.pdf")]
    assert all(answer["status"] == "accepted" for answer in started)
    ids = [answer["conversion_id"] for answer in started]
    messages = {conversion_id: [] for conversion_id in ids}
    host = live_web.removeprefix("http://")
    followers = [
        threading.Thread(target=follow, args=(f"ws://{host}/ws/conversion/{conversion_id}", messages[conversion_id]))
        for conversion_id in ids
    ]
    for follower in followers:
        follower.start()

    pool_states = []
    while any(follower.is_alive() for follower in followers):
        pool_states.append(live_client.get("/worker-pool-status").json())
        time.sleep(0.1)

    assert all(state["num_workers"] == 2 for state in pool_states)
    assert max(state["active_tasks"] for state in pool_states) >= 1
    assert all(state["active_tasks"] <= 2 for state in pool_states)
    for conversion_id, received in messages.items():
        assert received[0]["id"] == conversion_id  # the status record first
        assert received[-1]["status"] == "completed" and received[-1]["progress"] == 100
        assert len(received[-1]["results"]) == PAGES
        assert {message.get("conversion_id", conversion_id) for message in received} == {conversion_id}
        progresses = [message["progress"] for message in received]
        assert progresses == sorted(progresses)
        assert any(message["status"] == "processing" for message in received)
    assert live_client.get("/worker-pool-status").json()["active_tasks"] == 0
