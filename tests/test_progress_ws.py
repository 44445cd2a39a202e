"""Consumers in-process with Channels' WebsocketCommunicator and the in-memory layer."""

import asyncio
import threading

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from conversions import consumers, selectors, services
from conversions.progress import groups
from dotsocr_site.asgi import application
from tests.conftest import stored
from workers import pipeline

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def memory_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


def run(scenario):
    return async_to_sync(scenario)()


async def connected(path: str) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


def test_snapshot_on_connect_then_live_events(make_conversion):
    conversion = make_conversion()

    async def scenario():
        socket = await connected(f"/ws/v1/conversions/{conversion.pk}")
        snapshot = await socket.receive_json_from()
        assert snapshot["status"] == "queued" and snapshot["conversion_id"] == str(conversion.pk)
        await database_sync_to_async(pipeline.run_conversion)(str(conversion.pk))
        received = [snapshot]
        while received[-1]["status"] != "completed":
            received.append(await socket.receive_json_from(timeout=5))
        await socket.disconnect()
        return received

    received = run(scenario)
    assert [event["seq"] for event in received] == sorted({event["seq"] for event in received})
    progresses = [event["progress"] for event in received]
    assert progresses == sorted(progresses) and progresses[-1] == 100
    messages = [event["message"] for event in received]
    assert "PDF loaded with 4 pages" in messages
    assert "Processing pages: 2/4" in messages and "Finalizing conversion..." in messages
    assert {event["page_no"] for event in received if "page_no" in event} == {0, 1, 2, 3}
    final = received[-1]
    assert final["message"] == "Conversion completed successfully"
    assert [result["page_no"] for result in final["results"]] == [0, 1, 2, 3]
    assert final["results"][0]["md_content_path"].endswith("pdflatex-4-pages_page_0.md")


def test_client_connecting_after_the_end_gets_the_final_state_at_once(make_conversion):
    conversion = make_conversion()
    pipeline.run_conversion(str(conversion.pk))

    async def scenario():
        socket = await connected(f"/ws/v1/conversions/{conversion.pk}")
        first = await socket.receive_json_from()
        assert await socket.receive_nothing(timeout=0.2)
        await socket.disconnect()
        return first

    first = run(scenario)
    assert first["status"] == "completed" and first["progress"] == 100 and len(first["results"]) == 4


def test_stale_events_are_dropped(make_conversion):
    from channels.layers import get_channel_layer

    conversion = make_conversion()
    pipeline.run_conversion(str(conversion.pk))

    async def scenario():
        socket = await connected(f"/ws/v1/conversions/{conversion.pk}")
        final = await socket.receive_json_from()
        stale = {"seq": 1, "status": "running", "progress": 10, "conversion_id": str(conversion.pk)}
        group = groups.conversion_group(conversion.pk)
        await get_channel_layer().group_send(group, groups.build_group_message(group, "conversion.event", stale))
        nothing = await socket.receive_nothing(timeout=0.3)
        await socket.disconnect()
        return final, nothing

    final, nothing = run(scenario)
    assert final["status"] == "completed" and final["seq"] > 1
    assert nothing


@pytest.mark.parametrize("path", ["/ws/v1/conversions/{id}", "/ws/conversion/{id}"])
@pytest.mark.parametrize("conversion_id", ["00000000-0000-0000-0000-000000000000", "not-a-uuid"])
def test_unknown_conversion_closes_with_an_application_code(db, path, conversion_id):
    async def scenario():
        socket = await connected(path.format(id=conversion_id))
        refusal = await socket.receive_json_from(timeout=5)
        closing = await socket.receive_output(timeout=5)
        await socket.wait()
        return refusal, closing

    refusal, closing = run(scenario)
    assert refusal == {"type": "error", "code": 4404, "detail": "Conversion not found"}
    assert closing == {"type": "websocket.close", "code": 4404, "reason": "Conversion not found"}


def test_original_socket_speaks_the_original_apps_messages(make_conversion):
    conversion = make_conversion()

    async def scenario():
        socket = await connected(f"/ws/conversion/{conversion.pk}")
        record = await socket.receive_json_from()
        await database_sync_to_async(pipeline.run_conversion)(str(conversion.pk))
        received = [record]
        while received[-1]["status"] != "completed":
            received.append(await socket.receive_json_from(timeout=5))
        await socket.disconnect()
        return received

    received = run(scenario)
    record = received[0]
    assert set(record) >= {
        "id",
        "filename",
        "status",
        "progress",
        "message",
        "created_at",
        "started_at",
        "completed_at",
        "error",
    }
    assert record["status"] == "pending" and record["filename"] == "pdflatex-4-pages.pdf"
    assert {event["status"] for event in received[1:-1]} == {"processing"}
    assert received[-1]["progress"] == 100 and received[-1]["results"]


def test_original_socket_reports_failure_as_error_with_progress_zero(make_conversion):
    conversion = make_conversion()
    with open(stored(conversion.document.stored_path), "wb") as handle:
        handle.write(b"%PDF-1.4 broken")
    pipeline.run_conversion(str(conversion.pk))

    async def scenario():
        socket = await connected(f"/ws/conversion/{conversion.pk}")
        record = await socket.receive_json_from()
        await socket.disconnect()
        return record

    record = run(scenario)
    assert record["status"] == "error" and record["error"]


def test_queue_socket_reports_counts_and_state_changes(make_conversion):
    async def scenario():
        socket = await connected("/ws/v1/queue")
        initial = await socket.receive_json_from()
        conversion = await database_sync_to_async(make_conversion)()
        created = await socket.receive_json_from(timeout=5)
        await database_sync_to_async(services.cancel_conversion)(conversion=conversion)
        cancelled = await socket.receive_json_from(timeout=5)
        await socket.disconnect()
        return initial, created, cancelled

    initial, created, cancelled = run(scenario)
    assert initial == {"type": "queue", "queue": {"queued": 0, "running": 0}}
    assert created["status"] == "queued" and created["queue"] == {"queued": 1, "running": 0}
    assert cancelled["status"] == "cancelled" and cancelled["queue"] == {"queued": 0, "running": 0}


def test_queue_counts_are_read_once_per_event_for_every_queue_socket_of_the_process(make_conversion, monkeypatch):
    """The worker sends a state change without the queue's counts (a count grows with the
    backlog, and most jobs start and end with nobody watching); the web process reads them
    when the change reaches it, once for all its queue sockets."""
    reads = []
    real_counts = selectors.queue_counts

    def counted():
        reads.append(1)
        return real_counts()

    monkeypatch.setattr(selectors, "queue_counts", counted)

    async def scenario():
        sockets = [await connected("/ws/v1/queue") for _ in range(3)]
        for socket in sockets:
            assert (await socket.receive_json_from())["type"] == "queue"
        before = len(reads)
        await database_sync_to_async(make_conversion)()
        created = [await socket.receive_json_from(timeout=5) for socket in sockets]
        for socket in sockets:
            await socket.disconnect()
        return created, len(reads) - before

    created, reads_for_the_event = run(scenario)
    assert [event["queue"] for event in created] == [{"queued": 1, "running": 0}] * 3
    assert reads_for_the_event == 1


def test_sending_never_breaks_the_caller(make_conversion, settings):
    conversion = make_conversion()
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": ["redis://127.0.0.1:1"]}}
    }
    groups.send_stored_state(conversion.pk)  # logs the failure, does not raise


def test_a_busy_queue_costs_its_web_process_one_count_at_a_time(monkeypatch):
    """State changes that reach a web process while a count of the queue runs share the
    next count (read after them), instead of one count each; a socket that goes away
    while it waits does not cancel the count the others wait for."""
    release, reads = threading.Event(), []
    real_counts = selectors.queue_counts

    def slow_counts():
        reads.append(1)
        release.wait(5)
        return real_counts()

    monkeypatch.setattr(selectors, "queue_counts", slow_counts)

    async def scenario():
        reader = consumers.QueueCountsReader()
        first = reader.read_after_now()
        while not reads:  # the first count is running
            await asyncio.sleep(0.01)
        during = [reader.read_after_now() for _ in range(5)]
        gone = asyncio.ensure_future(asyncio.shield(during[0]))  # a socket that goes away
        await asyncio.sleep(0)
        gone.cancel()
        release.set()
        return [await first] + [await waiting for waiting in during]

    counts = run(scenario)
    assert counts == [{"queued": 0, "running": 0}] * 6
    assert len(reads) == 2
