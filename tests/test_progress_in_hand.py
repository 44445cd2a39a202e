"""Progress events of a running job are built from the values its writes return (no read
of the row), a one-page job sends three (start, page, end), and the PostgreSQL layer
gets them from the worker's own thread (dotsocr_site/patches/channels_postgres.py group_send_now)."""

import asyncio
import json

import channels_postgres.db
import pytest
from channels.layers import get_channel_layer
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conversions import services
from conversions.models import Conversion
from conversions.progress import groups
from dotsocr_site.patches.channels_postgres import PostgresChannelLayer
from tests.conftest import FOUR_PAGES, FOUR_PAGES_TEXT, ONE_PAGE, published
from workers import pipeline
from workers.ocr.base import PageOcr
from workers.pages import PageWriter

pytestmark = pytest.mark.django_db(transaction=True)


class RecordingLayer:
    """A channel layer that records what it is asked to send, in order."""

    def __init__(self):
        self.sent = []

    def group_send_now(self, messages):
        self.sent.extend(messages)


@pytest.fixture
def recorded(monkeypatch):
    layer = RecordingLayer()
    monkeypatch.setattr(groups, "get_channel_layer", lambda: layer)
    return layer


def checkpoint_an_empty_page(conversion, *, page_no: int) -> None:
    services.checkpoint_page(
        conversion=conversion,
        page_no=page_no,
        page=PageOcr(cells=[], engine="noop"),
        markdown="",
        markdown_nohf="",
        duration_ms=1,
    )


def events_of(layer: RecordingLayer, conversion) -> list[dict]:
    group = groups.conversion_group(conversion.pk)
    return [message["event"] for sent_to, message in layer.sent if sent_to == group]


def test_a_one_page_job_sends_its_start_its_page_and_its_end(make_conversion, recorded):
    conversion = make_conversion(ONE_PAGE)
    recorded.sent.clear()  # the "queued" event
    assert pipeline.run_conversion("wake-up") == "completed"
    events = events_of(recorded, conversion)
    assert [(event["status"], event.get("page_no")) for event in events] == [
        ("running", None),
        ("running", 0),
        ("completed", None),
    ]
    assert [event["seq"] for event in events] == sorted({event["seq"] for event in events})
    assert events[1]["message"] == "Processing pages: 1/1" and events[1]["pages_done"] == 1
    final = Conversion.objects.get(pk=conversion.pk)
    assert events[-1]["seq"] == final.event_seq and events[-1]["progress"] == 100 and len(events[-1]["results"]) == 1
    queue_events = [message["event"] for group, message in recorded.sent if group == groups.QUEUE_GROUP]
    assert [event["status"] for event in queue_events] == ["running", "completed"]


def test_page_events_carry_the_written_values_without_reading_the_row(make_conversion, recorded):
    conversion = make_conversion(FOUR_PAGES)
    claimed = services.claim_next(worker_id="host:1")
    services.record_pdf_loaded(conversion=claimed, pages_total=4)
    recorded.sent.clear()
    with CaptureQueriesContext(connection) as captured:
        checkpoint_an_empty_page(claimed, page_no=2)
    reads = [query["sql"] for query in captured.captured_queries if query["sql"].startswith("SELECT")]
    assert not [sql for sql in reads if 'FROM "conversions_conversion"' in sql], reads
    (event,) = events_of(recorded, conversion)
    assert (event["page_no"], event["pages_done"], event["progress"], event["message"]) == (
        2,
        1,
        30,
        "Processing pages: 1/4",
    )


def test_a_page_checkpointed_twice_counts_once(make_conversion, recorded):
    make_conversion(FOUR_PAGES)
    claimed = services.claim_next(worker_id="host:1")
    services.record_pdf_loaded(conversion=claimed, pages_total=4)
    for _ in range(2):  # a second attempt finishing the same page keeps the first result
        checkpoint_an_empty_page(claimed, page_no=0)
    row = Conversion.objects.get(pk=claimed.pk)
    assert (row.pages_done, row.message, claimed.pages_done) == (1, "Processing pages: 1/4", 1)


def test_the_postgres_layer_delivers_a_send_from_a_worker_thread(settings, monkeypatch):
    config = {**settings.DATABASES["default"], "TIME_ZONE": None, "group_expiry": 600}
    monkeypatch.setattr(channels_postgres.db, "connection_pool", None)  # a pool for this test's loop
    layer = PostgresChannelLayer(**config)

    async def member() -> str:
        channel = await layer.new_channel()
        await layer.group_add("conversion.x", channel)
        return channel

    async def received(channel: str) -> dict:
        try:
            return await asyncio.wait_for(layer.receive(channel), 10)
        finally:
            await (await layer.django_db.get_db_pool(layer.db_params)).close()

    loop = asyncio.new_event_loop()
    try:
        channel = loop.run_until_complete(member())
        message = groups.build_group_message("conversion.x", "conversion.event", {"n": 1})
        with CaptureQueriesContext(connection) as captured:
            layer.group_send_now([("conversion.x", message), ("conversion.nobody", message)])
        assert len(captured.captured_queries) == 1  # one INSERT for every group
        assert loop.run_until_complete(received(channel))["event"] == {"n": 1}
    finally:
        loop.close()


def test_the_configured_layer_sends_from_the_workers_thread():
    assert hasattr(get_channel_layer(), "group_send_now")  # CHANNEL_LAYER_URL's default: postgres


def test_the_redis_layer_still_sends_through_this_process_loop(settings, make_conversion, caplog):
    """The Redis pub/sub layer answers attribute lookups only inside an event loop: the
    worker's sender must not ask it for group_send_now, and sends on its own loop."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:6379/3"]},
        }
    }
    conversion = make_conversion(ONE_PAGE)
    groups.send_state(conversion, status_changed=True)
    assert "progress event not sent" not in caplog.text


def test_completing_a_job_in_hand_reads_its_failed_pages_once_and_looks_for_no_webhook(make_conversion, recorded):
    """The completion message, ``pages_failed`` and the skipped-pages check share one read
    of the failed pages; a job without a callback_url records no webhook event, so its
    row is not read again to find out (issue 20: a one-page job's completion cost 4 reads)."""
    make_conversion(ONE_PAGE)
    claimed = services.claim_next(worker_id="host:1")
    services.record_pdf_loaded(conversion=claimed, pages_total=1)
    checkpoint_an_empty_page(claimed, page_no=0)
    with CaptureQueriesContext(connection) as captured:
        services.complete_conversion(conversion=claimed, output_dir="outputs/x/attempt", output_bytes=0)
    sqls = [query["sql"] for query in captured.captured_queries]
    page_reads = [sql for sql in sqls if sql.startswith("SELECT") and 'FROM "conversions_pageresult"' in sql]
    assert len(page_reads) == 1, page_reads
    assert not [sql for sql in sqls if "\"callback_url\" = ''" in sql], sqls
    assert Conversion.objects.get(pk=claimed.pk).status == "completed"


def test_a_one_page_job_writes_its_claim_its_page_and_its_end_and_reads_nothing_back(make_conversion, recorded):
    """Issue 20: the claim, the page's checkpoint and the completion, three statements in
    all. Not a "PDF loaded" write that tells nobody anything, not a read back of the page
    rows it has just written, not a count of the queue (read where a queue socket gets
    the event, consumers.QueueConsumer), not a transaction of its own for one UPDATE."""
    conversion = make_conversion(ONE_PAGE)
    recorded.sent.clear()
    with CaptureQueriesContext(connection) as captured:
        assert pipeline.run_conversion("wake-up") == "completed"
    sqls = [query["sql"] for query in captured.captured_queries]
    assert len(sqls) == 3, sqls
    assert not [sql for sql in sqls if "pageresult" in sql and sql.startswith("SELECT")], sqls
    assert not [sql for sql in sqls if sql in ("BEGIN", "COMMIT") or "COUNT(*) FILTER" in sql], sqls
    queue_events = [message["event"] for group, message in recorded.sent if group == groups.QUEUE_GROUP]
    assert [event["status"] for event in queue_events] == ["running", "completed"]
    assert not [event for event in queue_events if "queue" in event]
    final = Conversion.objects.get(pk=conversion.pk)
    assert (final.status, final.pages_done, final.progress, final.message) == (
        "completed",
        1,
        100,
        "Conversion completed successfully",
    )


def test_past_the_rows_a_writer_keeps_the_outputs_read_every_page_back(make_conversion, recorded, monkeypatch):
    """The rows in hand bound memory (PageWriter.KEEP_MAX_PAGES): a longer job reads them
    back, and its outputs still hold every page."""
    monkeypatch.setattr(PageWriter, "KEEP_MAX_PAGES", 2)
    conversion = make_conversion(FOUR_PAGES)
    with CaptureQueriesContext(connection) as captured:
        assert pipeline.run_conversion("wake-up") == "completed"
    reads = [query["sql"] for query in captured.captured_queries if query["sql"].startswith("SELECT")]
    assert [sql for sql in reads if 'FROM "conversions_pageresult"' in sql], reads
    folder = published(conversion)
    assert all((folder / f"pdflatex-4-pages_page_{page_no}.md").exists() for page_no in range(4))
    assert FOUR_PAGES_TEXT in (folder / "pdflatex-4-pages.md").read_text()
    assert Conversion.objects.get(pk=conversion.pk).pages_failed == []


def test_a_job_that_resumes_reads_back_the_pages_an_earlier_attempt_wrote(make_conversion, recorded):
    """Rows in hand only stand for the job when this attempt wrote every page."""
    conversion = make_conversion(FOUR_PAGES)
    claimed = services.claim_next(worker_id="host:1")
    services.record_pdf_loaded(conversion=claimed, pages_total=4)
    services.checkpoint_page(
        conversion=claimed,
        page_no=1,
        page=PageOcr(cells=[], engine="noop", error="unreadable here", reason="shows ink, no text"),
        markdown="earlier attempt's page 2",
        markdown_nohf="earlier attempt's page 2",
        duration_ms=1,
    )
    services.release_conversion(conversion=claimed, message="Waiting to resume")
    assert pipeline.run_conversion("wake-up") == "completed"
    final = Conversion.objects.get(pk=conversion.pk)
    assert "earlier attempt's page 2" in (published(conversion) / "pdflatex-4-pages.md").read_text()
    assert [failed["page"] for failed in final.pages_failed] == [2]
    assert final.pages_done == 4


def test_the_files_are_the_same_whether_the_rows_were_in_hand_or_read_back(make_conversion, recorded, monkeypatch):
    """PostgreSQL's jsonb hands a cell's keys back in its own order: the outputs put them
    in dots.ocr's order either way, so a job's files never depend on the path taken."""
    in_hand = make_conversion(FOUR_PAGES)
    assert pipeline.run_conversion("wake-up") == "completed"
    monkeypatch.setattr(PageWriter, "KEEP_MAX_PAGES", 0)
    read_back = make_conversion(FOUR_PAGES)
    assert pipeline.run_conversion("wake-up") == "completed"
    for name in ("pdflatex-4-pages_page_0.json", "pdflatex-4-pages.jsonl", "pdflatex-4-pages.md"):
        assert (published(in_hand) / name).read_bytes() == (published(read_back) / name).read_bytes(), name
    first_line = (published(read_back) / "pdflatex-4-pages.jsonl").read_text().splitlines()[0]
    assert list(json.loads(first_line)["cells"][0]) == ["bbox", "category", "text"]
