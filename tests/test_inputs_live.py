"""An image and Office documents end to end through real daphne + qcluster processes:
the native API, and the original routes (/upload + /convert, /convert-doc, its socket)."""

import json

import pytest
from websockets.sync.client import connect

from tests.input_files import docx_bytes, image_bytes, xlsx_bytes
from tests.live import wait_for_status

pytestmark = pytest.mark.acceptance


def reads(markdown: str, text: str) -> bool:
    return all(word in markdown for word in text.split())


def test_an_image_and_office_files_convert_through_the_native_api(live_client, live_cluster):
    files = {
        "scan.png": image_bytes("Parcel tracking 5521", "PNG"),
        "letter.docx": docx_bytes(
            heading="Dear Customer",
            paragraph="Your order has shipped.",
            cells=[["Order", "Status"], ["A-77", "Shipped"]],
        ),
        "ledger.xlsx": xlsx_bytes([["Account", "Balance"], ["Savings", 3030]]),
    }
    ids = {}
    for name, content in files.items():
        answer = live_client.post("/api/v1/conversions", files={"file": (name, content, "application/octet-stream")})
        assert answer.status_code == 201, answer.text
        ids[name] = answer.json()["id"]
    expected = {
        "scan.png": "Parcel tracking 5521",
        "letter.docx": "Dear Customer Your order has shipped. Order Status A-77 Shipped",
        "ledger.xlsx": "Account Balance Savings 3030",
    }
    for name, conversion_id in ids.items():
        final = wait_for_status(live_client, conversion_id, timeout=180)
        assert final["status"] == "completed", final
        assert final["document"]["page_count"] == 1 and final["pages_total"] == 1
        markdown = live_client.get(f"/api/v1/conversions/{conversion_id}/markdown").text
        assert reads(markdown, expected[name]), (name, markdown)


def follow_original_socket(live_web: str, conversion_id: str) -> list[dict]:
    received = []
    with connect(f"ws://{live_web.removeprefix('http://')}/ws/conversion/{conversion_id}", open_timeout=10) as socket:
        while True:
            message = json.loads(socket.recv(timeout=180))
            received.append(message)
            if message["status"] in ("completed", "error"):
                return received


def test_the_original_routes_convert_a_jpeg_and_a_docx(live_client, live_cluster, live_web):
    uploads = {
        "photo.jpg": image_bytes("Harbour view 1902", "JPEG", quality=92),
        "memo.docx": docx_bytes(heading="Staff Memo", paragraph="Offices close at noon.", cells=[["Day", "Friday"]]),
    }
    for name, content in uploads.items():
        answer = live_client.post("/upload", files={"file": (name, content, "application/octet-stream")})
        assert answer.status_code == 200 and answer.json()["status"] == "success", answer.text

    image_job = live_client.post("/convert", data={"filename": "photo.jpg"}).json()
    doc_job = live_client.post("/convert-doc", data={"filename": "memo.docx"}).json()
    assert image_job["status"] == doc_job["status"] == "accepted"
    for job, stem, text in (
        (image_job, "photo", "Harbour view 1902"),
        (doc_job, "memo", "Staff Memo Offices close at noon. Day Friday"),
    ):
        messages = follow_original_socket(live_web, job["conversion_id"])
        assert messages[-1]["status"] == "completed" and messages[-1]["progress"] == 100, messages[-1]
        progresses = [message["progress"] for message in messages]
        assert progresses == sorted(progresses)
        listed = live_client.get(f"/markdown-files/{stem}").json()
        assert [entry["page_no"] for entry in listed["markdown_files"] if entry["page_no"] is not None] == [0]
        assert reads(live_client.get(f"/markdown/{stem}", params={"page_no": 0}).json()["content"], text)
        image = live_client.get(f"/image/{stem}", params={"page_no": 0})
        assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
