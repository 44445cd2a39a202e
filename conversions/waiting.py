"""Waiting requests: ``Prefer: wait=N`` (RFC 7240) or ``?wait=N`` on
``POST /api/v1/conversions`` and ``GET /api/v1/conversions/<id>``.

The answer waits up to N seconds (at most SYNC_WAIT_MAX_SECONDS) for the conversion to
reach a final state (completed, failed, cancelled) and then carries it, with
``Preference-Applied: wait=N``; when it is not final by then, the usual answer comes
(the latest state: 202 Accepted on create, 200 on GET). A malformed ``?wait`` is a 400;
a ``Prefer`` it cannot read is ignored, as RFC 7240 asks.

Why at the ASGI level, in front of Django: a waiting request must hold no thread. DRF
views are synchronous, and one of our middlewares (WhiteNoise) is too, so even an async
view would keep a thread blocked for the whole wait. Here the request first goes
through Django as usual (authentication, ownership, the create itself); only if its
answer is a conversion that is not final does this wrapper wait, as a coroutine on the
event loop, on the conversion's channel-layer group (conversions/progress/fanout.py, where
workers' progress events arrive), then ask Django once more for the conversion
(``GET``, with the caller's credentials) to build the answer. The row is re-read once
after subscribing (an event sent before the subscription is never seen) and every
RECHECK_SECONDS in case an event was lost (events are best-effort). A client that
disconnects ends its wait.
"""

import asyncio
import json
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from django.conf import settings

FINAL = ("completed", "failed", "cancelled")
CONVERSIONS_PATH = re.compile(r"/api/v1/conversions(?:/(?P<id>[^/]+))?$")
RECHECK_SECONDS = 10.0


class BadWait(ValueError):
    """``?wait`` is not a whole number of seconds."""


@dataclass
class Answer:
    """A response from the inner application, held back instead of sent."""

    status: int = 0
    headers: list = field(default_factory=list)
    body: bytes = b""

    def header(self, name: bytes) -> bytes:
        return next((value for key, value in self.headers if key.lower() == name), b"")

    def conversion(self) -> dict | None:
        content_type = self.header(b"content-type")
        if self.status not in (200, 201) or not content_type.startswith(b"application/json"):
            return None
        try:
            body = json.loads(self.body)
        except ValueError:
            return None
        return body if isinstance(body, dict) and "id" in body and "status" in body else None


def preferred_wait(scope) -> int | None:
    """The seconds asked for (``?wait`` wins over ``Prefer``), or None. Raises BadWait."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("wait")
    if query:
        if not query[-1].isdigit():
            raise BadWait("wait must be a whole number of seconds (0 or more).")
        return int(query[-1])
    for name, value in scope.get("headers", []):
        if name.lower() != b"prefer":
            continue
        for preference in value.decode("latin-1").split(","):
            token, _, argument = preference.split(";")[0].strip().partition("=")
            argument = argument.strip().strip('"')
            if token.strip().lower() == "wait" and argument.isdigit():
                return int(argument)
    return None


def waiting_request(scope) -> re.Match | None:
    """The path's match when this is a request that may wait (create, or GET of one)."""
    if scope["type"] != "http":
        return None
    path = scope["path"].removeprefix(scope.get("root_path", ""))
    match = CONVERSIONS_PATH.fullmatch(path)
    if match is None:
        return None
    creating = scope["method"] == "POST" and match["id"] is None
    reading = scope["method"] == "GET" and match["id"] is not None
    return match if creating or reading else None


class WaitingRequests:
    """ASGI middleware around Django's HTTP application (dotsocr_site/asgi.py)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if waiting_request(scope) is None:
            return await self.app(scope, receive, send)
        try:
            wait = preferred_wait(scope)
        except BadWait as error:
            return await send_answer(send, json_answer(400, {"detail": str(error)}))
        wait = min(wait or 0, settings.SYNC_WAIT_MAX_SECONDS)
        if wait <= 0:
            return await self.app(scope, receive, send)
        deadline = asyncio.get_running_loop().time() + wait
        first = await self.held(scope, receive)
        conversion = first.conversion()
        if first.status == 0:
            return  # the client left during the request
        if conversion is None:
            return await send_answer(send, first)
        if conversion["status"] in FINAL:
            return await send_answer(send, with_headers(first, [(b"preference-applied", f"wait={wait}".encode())]))
        final = await wait_until_final(conversion["id"], deadline, receive)
        if final is None:
            return  # the client left while waiting
        latest = await self.held(reading_scope(scope, conversion["id"]), body_then(receive))
        await send_answer(send, final_answer(scope, first, latest, wait))

    async def held(self, scope, receive) -> Answer:
        answer = Answer()

        async def hold(message):
            if message["type"] == "http.response.start":
                answer.status, answer.headers = message["status"], list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                answer.body += message.get("body", b"")

        await self.app(scope, receive, hold)
        return answer


def final_answer(scope, first: Answer, latest: Answer, wait: int) -> Answer:
    """The latest state, as the create (or GET) would have answered it."""
    conversion = latest.conversion()
    if conversion is None:
        return first if latest.status == 0 else latest
    final = conversion["status"] in FINAL
    status = latest.status
    headers = [(name, value) for name, value in latest.headers]
    if scope["method"] == "POST":
        status = first.status if final else 202
        kept = {b"location", b"idempotent-replayed"}
        headers += [(name, value) for name, value in first.headers if name.lower() in kept]
    if final:
        headers.append((b"preference-applied", f"wait={wait}".encode()))
    return Answer(status, headers, latest.body)


async def wait_until_final(conversion_id: str, deadline: float, receive) -> bool | None:
    """True once the conversion is final, False at ``deadline``, None if the client left."""
    from channels.layers import get_channel_layer

    from conversions.progress import conversion_group
    from conversions.progress.fanout import hub_for

    loop = asyncio.get_running_loop()
    hub, group = hub_for(get_channel_layer()), conversion_group(conversion_id)
    inbox: asyncio.Queue[dict] = asyncio.Queue()
    await hub.join(group, inbox)
    left = asyncio.ensure_future(receive())  # http.disconnect, once the client goes
    try:
        recheck = 0.0  # at once: it may have finished before the subscription
        while True:
            if recheck <= loop.time():
                if await status_in_database(conversion_id) in FINAL:
                    return True
                recheck = loop.time() + RECHECK_SECONDS
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            event = asyncio.ensure_future(inbox.get())
            done, _ = await asyncio.wait(
                {event, left}, timeout=min(remaining, recheck - loop.time()), return_when=asyncio.FIRST_COMPLETED
            )
            if left in done:
                event.cancel()
                return None
            if event not in done:
                event.cancel()
            elif event.result().get("event", {}).get("status") in FINAL:
                return True
    finally:
        left.cancel()
        hub.leave(group, inbox)


@sync_to_async(thread_sensitive=False)
def status_in_database(conversion_id: str) -> str | None:
    """One short read on a pool thread; its connection goes back at once (a waiter holds none)."""
    from django.db import connection

    from conversions.models import Conversion

    try:
        return Conversion.objects.filter(pk=conversion_id).values_list("status", flat=True).first()
    finally:
        connection.close()


def reading_scope(scope, conversion_id: str) -> dict:
    """The scope of ``GET /api/v1/conversions/<id>`` with the caller's credentials."""
    root = scope.get("root_path", "")
    path = f"{root}/api/v1/conversions/{conversion_id}"
    dropped = {b"content-length", b"content-type", b"transfer-encoding", b"prefer", b"expect"}
    return {
        **scope,
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(name, value) for name, value in scope["headers"] if name.lower() not in dropped],
    }


def body_then(receive):
    """An empty request body, then the real channel (so Django still sees a disconnect)."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return await receive()

    return replay


def with_headers(answer: Answer, extra: list) -> Answer:
    return Answer(answer.status, answer.headers + extra, answer.body)


def json_answer(status: int, body: dict) -> Answer:
    content = json.dumps(body).encode()
    return Answer(
        status, [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())], content
    )


async def send_answer(send, answer: Answer) -> None:
    await send({"type": "http.response.start", "status": answer.status, "headers": answer.headers})
    await send({"type": "http.response.body", "body": answer.body})
