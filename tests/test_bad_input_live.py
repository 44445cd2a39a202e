"""A bad file among good ones, through real processes (daphne, qcluster, PostgreSQL): the
bomb passes upload validation, fails in its job with a readable reason, and only it fails."""

import pytest

from tests.conftest import FOUR_PAGES, FOUR_PAGES_TEXT, ONE_PAGE, WITH_IMAGE
from tests.live import submit, wait_for_status
from tests.test_bad_input_pdfs import pdf_bomb

pytestmark = pytest.mark.acceptance

BOMB_REASON = (
    "Page 1: its drawing instructions inflate to more than 128 MB when decompressed "
    "(the limit is 128 MB); the file looks like a decompression bomb."
)


def test_only_the_bomb_fails_among_good_files(live_client, live_cluster):
    bomb = submit(live_client, ONE_PAGE, "harmless.pdf", pdf_bomb())
    assert bomb.status_code == 201, bomb.text  # nothing at upload gives it away
    good = {path.name: submit(live_client, path) for path in (FOUR_PAGES, ONE_PAGE, WITH_IMAGE)}
    assert all(response.status_code == 201 for response in good.values())

    failed = wait_for_status(live_client, bomb.json()["id"])
    assert failed["status"] == "failed" and failed["error"] == BOMB_REASON
    assert failed["pages_done"] == 0
    outputs = live_client.get(f"/api/v1/conversions/{failed['id']}/markdown")
    assert outputs.status_code == 409 and outputs.json()["detail"]

    for name, response in good.items():
        final = wait_for_status(live_client, response.json()["id"])
        assert final["status"] == "completed" and final["error"] == "", (name, final)
    four_pages = live_client.get(f"/api/v1/conversions/{good[FOUR_PAGES.name].json()['id']}/markdown")
    assert FOUR_PAGES_TEXT in four_pages.text
    assert live_client.get("/health").json() == {"status": "healthy", "service": "Dots OCR API"}
