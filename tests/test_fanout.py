"""The per-process fan-out hub (conversions/progress/fanout.py), the layer details it relies on,
and daphne's spread-out timeout checks."""

import asyncio
import threading

import channels_postgres.db
import pytest
from asgiref.sync import AsyncToSync, async_to_sync, sync_to_async
from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels.testing import WebsocketCommunicator
from daphne.server import Server

from conversions.progress import fanout, groups
from dotsocr_site.asgi import application
from dotsocr_site.patches import daphne as timeout_checks
from dotsocr_site.patches.channels_postgres import PostgresChannelLayer


@pytest.fixture
def memory_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    return get_channel_layer()


def members(layer: InMemoryChannelLayer, group: str) -> set:
    return set(layer.groups.get(group, {}))


@pytest.mark.django_db(transaction=True)
def test_sockets_on_one_conversion_share_one_layer_membership(memory_layer, make_conversion):
    conversion = make_conversion()
    group = groups.conversion_group(conversion.pk)
    path = f"/ws/v1/conversions/{conversion.pk}"

    async def scenario():
        sockets = [WebsocketCommunicator(application, path) for _ in range(3)]
        for socket in sockets:
            assert (await socket.connect())[0]
            await socket.receive_json_from()  # the snapshot
        membership_with_three = members(memory_layer, group)
        event = {"seq": 10_000, "status": "running", "progress": 42, "conversion_id": str(conversion.pk)}
        await memory_layer.group_send(group, groups.build_group_message(group, "conversion.event", event))
        received = [await socket.receive_json_from(timeout=5) for socket in sockets]
        await sockets[0].disconnect()
        await sockets[1].disconnect()
        await asyncio.sleep(0.1)
        membership_with_one = members(memory_layer, group)
        await sockets[2].disconnect()
        await asyncio.sleep(0.1)
        return membership_with_three, received, membership_with_one, members(memory_layer, group)

    with_three, received, with_one, with_none = async_to_sync(scenario)()
    assert len(with_three) == 1 and with_one == with_three  # one channel for the whole process
    assert [event["progress"] for event in received] == [42, 42, 42]
    assert with_none == set()  # the last socket out takes the membership with it


def test_the_pump_survives_messages_it_cannot_route():
    layer = InMemoryChannelLayer()

    async def scenario():
        hub = fanout.hub_for(layer)
        inbox = asyncio.Queue()
        await hub.join("conversion.a", inbox)
        await layer.group_send("conversion.a", {"type": "conversion.event", "event": {}})  # names no group
        await layer.group_send("conversion.a", groups.build_group_message("conversion.b", "conversion.event", {}))
        await layer.group_send("conversion.a", groups.build_group_message("conversion.a", "conversion.event", {"n": 1}))
        message = await asyncio.wait_for(inbox.get(), 5)
        hub.leave("conversion.a", inbox)
        return message, inbox.qsize()

    message, left = async_to_sync(scenario)()
    assert message["event"] == {"n": 1} and left == 0


def test_memberships_are_renewed_before_the_layer_forgets_them():
    layer = InMemoryChannelLayer(group_expiry=2)  # renewed every half second

    async def scenario():
        hub = fanout.hub_for(layer)
        inbox = asyncio.Queue()
        await hub.join("conversion.a", inbox)
        await asyncio.sleep(3)  # longer than the expiry
        await layer.group_send("conversion.a", groups.build_group_message("conversion.a", "conversion.event", {"n": 1}))
        message = await asyncio.wait_for(inbox.get(), 5)
        hub.leave("conversion.a", inbox)
        return message

    assert async_to_sync(scenario)()["event"] == {"n": 1}


@pytest.mark.django_db(transaction=True)
def test_postgres_layer_sends_nothing_to_lapsed_memberships(settings, monkeypatch):
    """A web process that died leaves its memberships behind; once lapsed, a group's
    send no longer writes a message for them."""
    config = {**settings.DATABASES["default"], "TIME_ZONE": None, "group_expiry": 600}
    # channels_postgres keeps one pool per process, bound to the loop that opened it:
    # this test's loop gets a pool of its own, and the process's pool stays as it was.
    monkeypatch.setattr(channels_postgres.db, "connection_pool", None)

    async def scenario():
        layer = PostgresChannelLayer(**config)
        live, dead = await layer.new_channel(), await layer.new_channel()
        await layer.group_add("conversion.x", live)
        await layer.group_add("conversion.x", dead)
        pool = await layer.django_db.get_db_pool(layer.db_params)
        try:
            async with pool.connection() as connection:
                await connection.execute(
                    "UPDATE channels_postgres_groupchannel SET expire = now() - interval '1 second' WHERE channel = %s",
                    (dead,),
                )
            return await layer.django_db.retrieve_group_channels(layer._group_key("conversion.x")), live
        finally:
            await pool.close()

    channels, live = asyncio.run(scenario())
    assert channels == [live]


def test_sends_outside_the_web_server_use_this_process_loop(settings):
    """Worker processes send on one long-lived loop; request threads of the ASGI server
    send on the server's loop (where the consumers use the same layer)."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:6379/3"]},
        }
    }
    layer = get_channel_layer()
    in_worker = []
    thread = threading.Thread(target=lambda: in_worker.append((groups.serving_asgi(), groups.sender_for(layer))))
    thread.start()
    thread.join()

    async def request_thread():
        return await sync_to_async(lambda: (groups.serving_asgi(), groups.sender_for(layer)))()

    in_request = async_to_sync(request_thread)()  # runs the lambda on this (main) thread
    assert in_worker[0][0] is False and not isinstance(in_worker[0][1], AsyncToSync)
    assert in_request[0] is True and isinstance(in_request[1], AsyncToSync)
    assert groups.serving_asgi() is False  # once that loop has ended
    in_worker[0][1]("conversion.nobody", groups.build_group_message("conversion.nobody", "conversion.event", {}))


class RecordingProtocol:
    def __init__(self):
        self.checks = 0

    def check_timeouts(self):
        self.checks += 1


def test_timeout_checks_cover_every_connection_once_per_period():
    server = Server.__new__(Server)  # only its connections are read
    server.connections = {RecordingProtocol(): {} for _ in range(1000)}
    for turn in range(timeout_checks.TURNS):
        timeout_checks.check_a_slice(server, turn)
    assert {protocol.checks for protocol in server.connections} == {1}
    assert Server.timeout_checker is timeout_checks.spread_timeout_checker  # installed by dotsocr_site.asgi


def test_the_web_process_keeps_full_collections_rare_and_small():
    """dotsocr_site.asgi (imported above, as daphne does) freezes the startup heap and
    runs full collections after 1000 younger ones: each full pass stalls every socket."""
    import gc

    assert gc.get_freeze_count() > 50_000
    assert gc.get_threshold()[2] == 1000


def test_a_pooled_connection_is_pinged_only_after_sitting_idle(db, settings, monkeypatch):
    """A connection returned a moment ago goes out unchecked (no round trip per event);
    one idle for longer than CHECK_AFTER_IDLE_SECONDS is pinged, so a dead one is caught."""
    import psycopg

    from dotsocr_site.patches import channels_postgres as channel_layers

    database = settings.DATABASES["default"]

    async def scenario():
        connection = await psycopg.AsyncConnection.connect(
            host=database["HOST"],
            port=database["PORT"] or 5432,
            user=database["USER"],
            dbname=database["NAME"],
            password=database["PASSWORD"] or None,
        )
        idle_check = channel_layers.IdleConnectionCheck()
        await idle_check.reset(connection)
        await connection.close()  # as if the server had dropped it
        await idle_check.check(connection)  # just returned: not pinged
        monkeypatch.setattr(channel_layers, "CHECK_AFTER_IDLE_SECONDS", 0.0)
        with pytest.raises(psycopg.OperationalError):
            await idle_check.check(connection)

    asyncio.run(scenario())
