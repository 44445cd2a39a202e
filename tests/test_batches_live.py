"""Batches across real processes: daphne takes the batch (a body larger than one upload
may be), the WebSocket of the batch gets a snapshot and then every event of its
conversions as a real qcluster runs them."""

import json

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.live import free_port, pdf_of, start_cluster, start_web

pytestmark = pytest.mark.acceptance
PAGES = 6
FINISHED = ("completed", "failed", "cancelled")


def batch_files(count: int, pages: int = PAGES) -> list:
    return [("file", (f"part-{n}.pdf", pdf_of(pages, f"part {n}"), "application/pdf")) for n in range(count)]


def test_the_batch_socket_streams_a_snapshot_then_its_conversions_events(live_env, live_client, live_web, tmp_path):
    created = live_client.post("/api/v1/batches", files=batch_files(3), data={"engine": "textlayer"})
    assert created.status_code == 201, created.text
    batch = created.json()
    ids = {conversion["id"] for conversion in batch["conversions"]}
    other = live_client.post("/api/v1/conversions", files={"file": ("alone.pdf", pdf_of(2, "alone"))}).json()

    ws_url = live_web.replace("http://", "ws://") + f"/ws/v1/batches/{batch['id']}"
    with connect(ws_url, open_timeout=10) as socket:
        snapshot = json.loads(socket.recv(timeout=10))
        assert snapshot["type"] == "batch" and snapshot["batch_id"] == batch["id"]
        assert snapshot["counts"]["queued"] == 3 and {c["conversion_id"] for c in snapshot["conversions"]} == ids
        cluster = start_cluster(live_env, tmp_path)  # jobs start only now: every event is live
        try:
            events, last = [], {}
            while any(last.get(conversion_id) not in FINISHED for conversion_id in ids):
                event = json.loads(socket.recv(timeout=120))
                events.append(event)
                last[event["conversion_id"]] = event["status"]
        finally:
            cluster.stop()

    assert {event["conversion_id"] for event in events} == ids  # the lone conversion's events stay out
    assert other["id"] not in last and {event["batch_id"] for event in events} == {batch["id"]}
    for conversion_id in ids:
        mine = [event for event in events if event["conversion_id"] == conversion_id]
        seqs = [event["seq"] for event in mine]
        assert seqs == sorted(set(seqs))
        assert any(event["message"].startswith("Processing pages:") for event in mine)
        assert mine[-1]["status"] == "completed" and mine[-1]["pages_done"] == PAGES
    summary = live_client.get(f"/api/v1/batches/{batch['id']}").json()
    assert summary["counts"]["completed"] == 3 and summary["total"] == 3


def test_an_unknown_batch_closes_the_socket_with_4404(live_web, transactional_db):
    url = live_web.replace("http://", "ws://") + "/ws/v1/batches/00000000-0000-0000-0000-000000000000"
    with connect(url) as socket:
        refusal = json.loads(socket.recv(timeout=10))
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=10)
    assert refusal == {"type": "error", "code": 4404, "detail": "Batch not found"}
    assert closed.value.rcvd.code == 4404


def test_a_batch_body_may_pass_the_single_upload_limit(live_env, tmp_path, transactional_db):
    """Each file is held to MAX_UPLOAD_MB; the batch's body to MAX_BATCH_UPLOAD_MB."""
    port = free_port()
    web = start_web({**live_env, "MAX_UPLOAD_MB": "1", "MAX_BATCH_UPLOAD_MB": "4"}, port, tmp_path)
    padding = b"%" + b"0" * (700 * 1024) + b"\n"  # a PDF comment: still a readable PDF
    files = [
        ("file", (f"padded-{n}.pdf", pdf_of(1, f"p{n}").replace(b"\n", b"\n" + padding, 1), "application/pdf"))
        for n in range(3)
    ]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            single = client.post(
                "/api/v1/conversions",
                files=[("file", ("three.pdf", b"".join(part[1][1] for part in files), "application/pdf"))],
            )
            assert single.status_code == 413
            batch = client.post("/api/v1/batches", files=files)
            assert batch.status_code == 201, batch.text
            assert batch.json()["total"] == 3
            too_big = client.post("/api/v1/batches", files=files * 3)  # ~6.2 MB
            assert too_big.status_code == 413
            assert too_big.json() == {"detail": "The batch is larger than the 4 MB limit (MAX_BATCH_UPLOAD_MB)."}
    finally:
        web.stop()
