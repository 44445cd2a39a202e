"""End to end through real processes: daphne serving the API, qcluster running jobs,
PostgreSQL in between. Only HTTP goes in; results are read through the API and the DB."""

import time
from pathlib import Path

import pytest

from conversions.models import Conversion, PageResult
from tests.conftest import ENCRYPTED, FOUR_PAGES, FOUR_PAGES_TEXT, ONE_PAGE, truncated_pdf
from tests.live import start_cluster, submit, wait_for_status

pytestmark = pytest.mark.acceptance


def test_pdf_converts_end_to_end(live_client, live_cluster, live_env):
    response = submit(live_client, FOUR_PAGES)
    assert response.status_code == 201, response.text
    conversion_id = response.json()["id"]

    final = wait_for_status(live_client, conversion_id)
    assert final["status"] == "completed", final
    assert (final["progress"], final["pages_done"], final["pages_total"]) == (100, 4, 4)
    markdown = live_client.get(f"/api/v1/conversions/{conversion_id}/markdown")
    assert markdown.status_code == 200 and FOUR_PAGES_TEXT in markdown.text
    assert PageResult.objects.filter(conversion_id=conversion_id).count() == 4
    output = Path(live_env["DATA_DIR"]) / Conversion.objects.get(pk=conversion_id).output_dir
    assert (output / "pdflatex-4-pages.md").read_text().count(FOUR_PAGES_TEXT) >= 1


def test_submitted_job_survives_a_restart_of_the_worker_cluster(live_client, live_cluster, live_env, tmp_path):
    assert live_cluster.stop() == 0
    conversion_id = submit(live_client, ONE_PAGE).json()["id"]
    time.sleep(2)
    assert live_client.get(f"/api/v1/conversions/{conversion_id}").json()["status"] == "queued"

    restarted = start_cluster(live_env, tmp_path)
    try:
        final = wait_for_status(live_client, conversion_id)
    finally:
        restarted.stop()
    assert final["status"] == "completed", final
    assert Conversion.objects.get(pk=conversion_id).attempts == 1


def test_bad_inputs_are_answered_and_other_jobs_complete(live_client, live_cluster, live_env):
    good = submit(live_client, FOUR_PAGES).json()["id"]
    refusals = {
        "damaged image": submit(live_client, ONE_PAGE, "notes.pdf", b"GIF89a not really a picture" * 10),
        "zero bytes": submit(live_client, ONE_PAGE, "empty.pdf", b""),
        "truncated": submit(live_client, FOUR_PAGES, "cut.pdf", truncated_pdf()),
        "encrypted": submit(live_client, ENCRYPTED),
    }
    for case, response in refusals.items():
        assert response.status_code == 400, (case, response.text)
        assert response.json()["detail"], case

    # A file damaged in storage after upload: the job fails with a reason.
    damaged = submit(live_client, ONE_PAGE, "damaged.pdf")
    assert damaged.status_code == 201
    damaged_id = damaged.json()["id"]
    key = Conversion.objects.get(pk=damaged_id).document.stored_path
    (Path(live_env["DATA_DIR"]) / key).write_bytes(b"%PDF-1.4 gone")

    assert wait_for_status(live_client, good)["status"] == "completed"
    failed = wait_for_status(live_client, damaged_id)
    assert failed["status"] == "failed" and "PDF" in failed["error"]
    assert live_client.get("/health").json() == {"status": "healthy", "service": "Dots OCR API"}
