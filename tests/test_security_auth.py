"""Authentication: sessions for pages and admin, tokens for scripts, both for WebSockets;
ALLOW_ANONYMOUS decides whether anyone else gets in (then as the built-in user)."""

import io
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.test import APIClient

from conversions import services
from conversions.models import Batch, Conversion
from dotsocr_site.asgi import application
from tests.conftest import ONE_PAGE, upload_of
from tests.security_support import (
    FAST_PASSWORD_HASHERS,
    HTML,
    PASSWORD,
    http_routes,
    make_user,
    session_client,
    token_client,
    websocket_routes,
)

SOME_ID = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def signed_in_only(settings):
    settings.ALLOW_ANONYMOUS = False
    settings.PASSWORD_HASHERS = FAST_PASSWORD_HASHERS


@pytest.fixture
def alice(db, signed_in_only):
    return make_user("alice")


# --- without ALLOW_ANONYMOUS, every route but the public ones needs a login ---------------

API = "401 with detail"
PAGE = "redirect to the login page"
ADMIN = "redirect to the admin login page"
PUBLIC = "answered"
FORBIDDEN = "403 (its own token)"

ANONYMOUS_GETS = {
    "": ("/", PAGE),
    "conversions/<str:conversion_id>/": (f"/conversions/{SOME_ID}/", PAGE),
    "conversions/<str:conversion_id>/results": (f"/conversions/{SOME_ID}/results", PAGE),
    "health": ("/health", PUBLIC),
    "metrics": ("/metrics", FORBIDDEN),
    "api/v1/documents": ("/api/v1/documents", API),
    "api/v1/documents/<str:document_id>": (f"/api/v1/documents/{SOME_ID}", API),
    "api/v1/conversions": ("/api/v1/conversions", API),
    "api/v1/conversions/<str:conversion_id>": (f"/api/v1/conversions/{SOME_ID}", API),
    "api/v1/conversions/<str:conversion_id>/cancel": (f"/api/v1/conversions/{SOME_ID}/cancel", API),
    "api/v1/conversions/<str:conversion_id>/retry": (f"/api/v1/conversions/{SOME_ID}/retry", API),
    "api/v1/conversions/<str:conversion_id>/markdown": (f"/api/v1/conversions/{SOME_ID}/markdown", API),
    "api/v1/conversions/<str:conversion_id>/html": (f"/api/v1/conversions/{SOME_ID}/html", API),
    "api/v1/conversions/<str:conversion_id>/text": (f"/api/v1/conversions/{SOME_ID}/text", API),
    "api/v1/conversions/<str:conversion_id>/pages": (f"/api/v1/conversions/{SOME_ID}/pages", API),
    "api/v1/conversions/<str:conversion_id>/pages/<int:page_no>/image": (
        f"/api/v1/conversions/{SOME_ID}/pages/0/image",
        API,
    ),
    "api/v1/conversions/<str:conversion_id>/files/<str:name>": (f"/api/v1/conversions/{SOME_ID}/files/x.md", API),
    "api/v1/conversions/<str:conversion_id>/download.zip": (f"/api/v1/conversions/{SOME_ID}/download.zip", API),
    "api/v1/batches": ("/api/v1/batches", API),
    "api/v1/batches/<str:batch_id>": (f"/api/v1/batches/{SOME_ID}", API),
    "api/v1/auth/token": ("/api/v1/auth/token", API),  # only its POST (a login) is public
    "api/v1/schema": ("/api/v1/schema", PUBLIC),
    "admin/": ("/admin/", ADMIN),
    "accounts/login/": ("/accounts/login/", PUBLIC),
    "accounts/logout/": ("/accounts/logout/", None),  # POST only; see the login test
    "config": ("/config", PUBLIC),  # the original frontend reads it before anyone signs in
    "upload": ("/upload", API),
    "documents": ("/documents", API),
    "documents/<path:filename>": ("/documents/x.pdf", API),
    "convert": ("/convert", API),
    "convert-doc": ("/convert-doc", API),
    "conversion-status/<str:conversion_id>": (f"/conversion-status/{SOME_ID}", API),
    "worker-pool-status": ("/worker-pool-status", API),
    "markdown-files/<str:stem>": ("/markdown-files/x", API),
    "markdown/<str:stem>": ("/markdown/x", API),
    "image/<str:stem>": ("/image/x", API),
}


def test_every_http_route_has_an_anonymous_case():
    assert http_routes() == set(ANONYMOUS_GETS)


@pytest.mark.parametrize("route", sorted(route for route, (_, expected) in ANONYMOUS_GETS.items() if expected))
def test_anonymous_request_without_allow_anonymous(db, signed_in_only, route):
    path, expected = ANONYMOUS_GETS[route]
    response = Client().get(path, **(HTML if expected == PAGE else {}))
    if expected == API:
        assert response.status_code == 401, response.status_code
        assert response.json() == {"detail": "Authentication credentials were not provided."}
        assert response["WWW-Authenticate"] == "Token"
    elif expected == PAGE:
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=")
    elif expected == ADMIN:
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    elif expected == FORBIDDEN:
        assert response.status_code == 403
    else:
        assert response.status_code == 200


def test_root_still_greets_api_clients_anonymously(db, signed_in_only):
    assert Client().get("/", HTTP_ACCEPT="application/json").json()["api"] == "/api/v1/"


def test_with_allow_anonymous_an_anonymous_request_acts_as_the_built_in_user(db, settings):
    settings.ALLOW_ANONYMOUS = True
    response = APIClient().post("/api/v1/conversions", {"file": upload_of(ONE_PAGE)}, format="multipart")
    assert response.status_code == 201
    assert Conversion.objects.get(pk=response.json()["id"]).owner.username == services.ANONYMOUS_USERNAME


# --- sessions: login and logout pages ----------------------------------------------------


def test_login_page_signs_in_and_back_to_the_page_asked_for(alice):
    browser = Client()
    asked = browser.get("/conversions/" + SOME_ID + "/", **HTML)
    login = browser.get(asked["Location"])
    assert login.status_code == 200 and 'name="password"' in login.content.decode()
    wrong = browser.post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert wrong.status_code == 200 and "did not match" in wrong.content.decode()
    signed_in = browser.post(
        asked["Location"], {"username": "alice", "password": PASSWORD, "next": f"/conversions/{SOME_ID}/"}
    )
    assert signed_in.status_code == 302 and signed_in["Location"] == f"/conversions/{SOME_ID}/"
    dashboard = browser.get("/", **HTML).content.decode()
    assert "alice" in dashboard and "Sign out" in dashboard
    assert browser.post("/accounts/logout/").status_code == 302
    assert browser.get("/", **HTML).status_code == 302


def test_anonymous_visitor_sees_a_sign_in_link(db, settings):
    settings.ALLOW_ANONYMOUS = True
    assert 'href="/accounts/login/"' in Client().get("/", **HTML).content.decode()


# --- tokens ------------------------------------------------------------------------------


def test_token_from_username_and_password_then_revoked(alice):
    anonymous = APIClient()
    answer = anonymous.post("/api/v1/auth/token", {"username": "alice", "password": PASSWORD}, format="json")
    assert answer.status_code == 200
    token = answer.json()["token"]
    again = anonymous.post("/api/v1/auth/token", {"username": "alice", "password": PASSWORD}, format="json")
    assert again.json()["token"] == token  # the same token until it is revoked
    script = APIClient()
    script.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert script.get("/api/v1/conversions").status_code == 200
    assert script.delete("/api/v1/auth/token").status_code == 204
    refused = script.get("/api/v1/conversions")
    assert refused.status_code == 401 and refused.json() == {"detail": "Invalid token."}


def test_wrong_password_gets_no_token(alice):
    answer = APIClient().post("/api/v1/auth/token", {"username": "alice", "password": "guess"}, format="json")
    assert answer.status_code == 400 and "Unable to log in" in answer.json()["detail"]


def test_password_guessing_is_throttled(alice, settings):
    settings.LOGIN_RATE = "3/min"
    client = APIClient()
    answers = [
        client.post("/api/v1/auth/token", {"username": "alice", "password": f"guess{n}"}, format="json")
        for n in range(4)
    ]
    assert [answer.status_code for answer in answers] == [400, 400, 400, 429]
    assert int(answers[-1]["Retry-After"]) > 0


def test_token_command_creates_and_revokes(alice):
    output = io.StringIO()
    call_command("token", "create", "alice", stdout=output)
    token = output.getvalue().strip()
    script = APIClient()
    script.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert script.get("/api/v1/documents").status_code == 200
    call_command("token", "create", "alice", "--reset", stdout=io.StringIO())
    assert script.get("/api/v1/documents").status_code == 401
    call_command("token", "create", "alice", stdout=output)
    script.credentials(HTTP_AUTHORIZATION=f"Token {output.getvalue().split()[-1]}")
    assert script.get("/api/v1/documents").status_code == 200
    call_command("token", "revoke", "alice", stdout=io.StringIO())
    assert script.get("/api/v1/documents").status_code == 401
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call_command("token", "create", "nobody")


# --- the original app's routes -----------------------------------------------------------


def test_compat_routes_ignore_an_unknown_token_only_when_anonymous_is_allowed(db, settings):
    frontend = APIClient()
    frontend.credentials(HTTP_AUTHORIZATION="Token issued-by-the-frontends-own-login")
    settings.ALLOW_ANONYMOUS = True
    assert frontend.get("/documents").status_code == 200
    assert frontend.get("/api/v1/documents").status_code == 401  # the native API never guesses
    settings.ALLOW_ANONYMOUS = False
    assert frontend.get("/documents").status_code == 401


def test_compat_routes_accept_the_token(alice):
    assert token_client(alice).get("/documents").json()["total"] == 0


# --- CSRF on session-authenticated writes -----------------------------------------------


def test_session_write_without_the_csrf_token_is_refused(alice):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    refused = browser.post("/api/v1/documents", {"file": upload_of(ONE_PAGE)})
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    browser.get("/", **HTML)  # the page sets the CSRF cookie (and puts the token in a meta tag)
    token = browser.cookies["csrftoken"].value
    accepted = browser.post("/api/v1/documents", {"file": upload_of(ONE_PAGE)}, HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 201


def test_token_writes_need_no_csrf_token(alice):
    script = token_client(alice)
    script.enforce_csrf_checks = True
    assert script.post("/api/v1/documents", {"file": upload_of(ONE_PAGE)}, format="multipart").status_code == 201


# --- WebSockets ---------------------------------------------------------------------------


@pytest.fixture
def memory_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


def opening(path: str, **options) -> dict:
    """What a WebSocket client gets first: accept (with its subprotocol), then a message."""

    async def scenario():
        socket = WebsocketCommunicator(application, path, **options)
        connected, subprotocol = await socket.connect()
        assert connected
        message = await socket.receive_json_from(timeout=5)
        closing = await socket.receive_output(timeout=5) if message.get("type") == "error" else None
        await socket.disconnect()
        return {"subprotocol": subprotocol, "message": message, "closing": closing}

    return async_to_sync(scenario)()


@pytest.fixture
def alices_conversion(alice):
    document = services.create_document(owner=alice, upload=upload_of(ONE_PAGE), max_pages=10)
    return services.create_conversion(document=document, owner=alice, batch=Batch.objects.create(owner=alice))


def socket_paths(conversion) -> list[str]:
    ids = {"<str:conversion_id>": str(conversion.pk), "<str:batch_id>": str(conversion.batch_id)}
    paths = []
    for route in sorted(websocket_routes()):
        for placeholder, value in ids.items():
            route = route.replace(placeholder, value)
        paths.append(route)
    return ["/" + path for path in paths]


@pytest.mark.django_db(transaction=True)
def test_sockets_refuse_anonymous_callers_without_allow_anonymous(memory_layer, alices_conversion):
    for path in socket_paths(alices_conversion):
        opened = opening(path)
        assert opened["message"] == {"type": "error", "code": 4401, "detail": "Authentication required."}, path
        assert opened["closing"]["code"] == 4401


@pytest.mark.django_db(transaction=True)
def test_sockets_take_the_token_in_the_query(memory_layer, alices_conversion):
    token = services.issue_api_token(user=alices_conversion.owner)
    for path in socket_paths(alices_conversion):
        opened = opening(f"{path}?token={token}")
        assert opened["message"].get("type") != "error" and opened["closing"] is None, path


@pytest.mark.django_db(transaction=True)
def test_sockets_take_the_token_as_a_subprotocol(memory_layer, alices_conversion):
    token = services.issue_api_token(user=alices_conversion.owner)
    opened = opening(f"/ws/v1/conversions/{alices_conversion.pk}", subprotocols=["token", token])
    assert opened["subprotocol"] == "token" and opened["message"]["status"] == "queued"


@pytest.mark.django_db(transaction=True)
def test_a_bad_token_is_refused_even_when_anonymous_is_allowed(memory_layer, alices_conversion, settings):
    settings.ALLOW_ANONYMOUS = True
    opened = opening(f"/ws/v1/conversions/{alices_conversion.pk}?token={uuid.uuid4().hex}")
    assert opened["message"] == {"type": "error", "code": 4401, "detail": "Invalid token."}


def session_headers(user, origin: str) -> list[tuple[bytes, bytes]]:
    browser = session_client(user)
    cookie = f"sessionid={browser.cookies['sessionid'].value}"
    return [(b"cookie", cookie.encode()), (b"host", b"ocr.example.com"), (b"origin", origin.encode())]


@pytest.mark.django_db(transaction=True)
def test_sockets_take_the_session_cookie_from_this_site_only(memory_layer, alices_conversion):
    path = f"/ws/v1/conversions/{alices_conversion.pk}"
    own_page = opening(path, headers=session_headers(alices_conversion.owner, "https://ocr.example.com"))
    assert own_page["message"]["status"] == "queued"
    elsewhere = opening(path, headers=session_headers(alices_conversion.owner, "https://evil.example.net"))
    assert elsewhere["message"]["code"] == 4401
