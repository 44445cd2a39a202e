"""Progress across processes: a real qcluster sends through the real channel layer
(PostgreSQL or Redis), a real daphne forwards to real WebSocket clients."""

import json
import threading

import httpx
import pymupdf
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.live import free_port, start_cluster, start_web, wait_for_status

pytestmark = pytest.mark.acceptance
PAGES = 12


@pytest.fixture(scope="module", params=["postgres", "redis://127.0.0.1:6379/0"])
def stack(request, live_env, tmp_path_factory):
    env = {**live_env, "CHANNEL_LAYER_URL": request.param}
    logs = tmp_path_factory.mktemp("stack-logs")
    port = free_port()
    web = start_web(env, port, logs)
    cluster = start_cluster(env, logs)
    yield f"127.0.0.1:{port}"
    cluster.stop()
    web.stop()


@pytest.fixture
def client(stack, transactional_db):
    with httpx.Client(base_url=f"http://{stack}", timeout=30) as client:
        yield client


def long_pdf(label: str) -> bytes:
    document = pymupdf.open()
    for number in range(PAGES):
        page = document.new_page()
        page.insert_text((72, 72), f"{label} page {number + 1}", fontsize=14)
        page.insert_text((72, 120), "Some body text for the text layer. " * 3, fontsize=10)
    return document.tobytes()


def submit(client, label: str) -> str:
    response = client.post("/api/v1/conversions", files={"file": (f"{label}.pdf", long_pdf(label), "application/pdf")})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def collect(url: str, into: list, timeout: float = 90) -> None:
    """Receive events until the job ends."""
    with connect(url, open_timeout=10) as socket:
        while True:
            event = json.loads(socket.recv(timeout=timeout))
            into.append(event)
            if event["status"] in ("completed", "failed", "cancelled"):
                return


def test_two_concurrent_jobs_get_their_own_monotonic_progress(stack, client):
    ids = [submit(client, "alpha"), submit(client, "beta")]
    received = {conversion_id: [] for conversion_id in ids}
    listeners = [
        threading.Thread(
            target=collect, args=(f"ws://{stack}/ws/v1/conversions/{conversion_id}", received[conversion_id])
        )
        for conversion_id in ids
    ]
    for listener in listeners:
        listener.start()
    for listener in listeners:
        listener.join(timeout=120)

    for conversion_id, events in received.items():
        assert events and events[-1]["status"] == "completed", events[-3:]
        assert {event["conversion_id"] for event in events} == {conversion_id}  # nothing leaks
        seqs = [event["seq"] for event in events]
        assert seqs == sorted(set(seqs))
        progresses = [event["progress"] for event in events]
        assert progresses == sorted(progresses) and progresses[-1] == 100
        live = [event for event in events if event["message"].startswith("Processing pages:")]
        assert len(live) >= 2, "expected live page events, not only a final snapshot"
        assert events[-1]["pages_done"] == PAGES and len(events[-1]["results"]) == PAGES


def test_late_client_gets_the_final_state_at_once(stack, client):
    conversion_id = submit(client, "late")
    wait_for_status(client, conversion_id)
    with connect(f"ws://{stack}/ws/conversion/{conversion_id}") as socket:
        record = json.loads(socket.recv(timeout=10))
    assert record["status"] == "completed" and record["progress"] == 100 and record["id"] == conversion_id


def test_unknown_id_closes_the_socket_with_a_code_and_reason(stack, client):
    with connect(f"ws://{stack}/ws/v1/conversions/00000000-0000-0000-0000-000000000000") as socket:
        refusal = json.loads(socket.recv(timeout=10))
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=10)
    assert refusal == {"type": "error", "code": 4404, "detail": "Conversion not found"}
    assert closed.value.rcvd.code == 4404  # daphne does not forward close reasons
