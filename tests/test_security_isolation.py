"""Two users, every route: user B never sees, downloads, changes or subscribes to user A's
documents and conversions, and gets 404 (not 403), so ids do not leak.

The cases are keyed by the URL conf's own route strings: a new route without a case here
fails ``test_every_http_route_has_an_isolation_case``.
"""

from dataclasses import dataclass

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.test import APIClient

from conversions import services
from conversions.models import Conversion, Document
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
from workers import pipeline

A_NAME = "a-secret.pdf"
A_STEM = "a-secret"


@dataclass
class World:
    a_api: APIClient
    b_api: APIClient
    a_browser: Client
    b_browser: Client
    completed: Conversion  # A's
    queued: Conversion  # A's
    cancelled: Conversion  # A's
    alice: object
    bob: object

    @property
    def document(self) -> Document:
        return self.completed.document


@pytest.fixture
def world(db, settings):
    settings.ALLOW_ANONYMOUS = False
    settings.PASSWORD_HASHERS = FAST_PASSWORD_HASHERS
    alice, bob = make_user("alice"), make_user("bob")

    def conversion_of_alice():
        document = services.create_document(owner=alice, upload=upload_of(ONE_PAGE, A_NAME), max_pages=10)
        return services.create_conversion(document=document, owner=alice)

    completed = conversion_of_alice()
    assert pipeline.run_conversion(str(completed.pk)) == "completed"
    queued = conversion_of_alice()
    cancelled = services.cancel_conversion(conversion=conversion_of_alice())
    return World(
        a_api=token_client(alice),
        b_api=token_client(bob),
        a_browser=session_client(alice),
        b_browser=session_client(bob),
        completed=Conversion.objects.get(pk=completed.pk),
        queued=queued,
        cancelled=cancelled,
        alice=alice,
        bob=bob,
    )


def hidden_from_b(world, method, path, *, ok=200, **options):
    """B gets a 404 with a detail; then A, the owner, gets ``ok``."""
    refused = getattr(world.b_api, method)(path, **options)
    assert refused.status_code == 404, (path, refused.status_code)
    assert refused.json()["detail"]
    allowed = getattr(world.a_api, method)(path, **options)
    assert allowed.status_code == ok, (path, allowed.status_code, getattr(allowed, "data", None))
    return allowed


def page_hidden_from_b(world, path):
    assert world.b_browser.get(path, **HTML).status_code == 404
    assert world.a_browser.get(path, **HTML).status_code == 200


CASES = {}


def covers(route):
    def register(case):
        CASES[route] = case
        return case

    return register


# --- pages -------------------------------------------------------------------------------


@covers("")
def dashboard_lists_only_own_jobs(world):
    own = world.a_browser.get("/", **HTML).content.decode()
    other = world.b_browser.get("/", **HTML).content.decode()
    assert str(world.completed.pk) in own and A_NAME in own
    assert str(world.completed.pk) not in other and A_NAME not in other


@covers("conversions/<str:conversion_id>/")
def conversion_page(world):
    page_hidden_from_b(world, f"/conversions/{world.completed.pk}/")


@covers("conversions/<str:conversion_id>/results")
def results_fragment(world):
    page_hidden_from_b(world, f"/conversions/{world.completed.pk}/results")


# --- native API --------------------------------------------------------------------------


@covers("api/v1/documents")
def document_list_and_upload(world):
    mine = {item["id"] for item in world.b_api.get("/api/v1/documents").json()["results"]}
    assert str(world.document.pk) not in mine
    created = world.b_api.post("/api/v1/documents", {"file": upload_of(ONE_PAGE)}, format="multipart").json()
    assert Document.objects.get(pk=created["id"]).owner == world.bob
    alices = {item["id"] for item in world.a_api.get("/api/v1/documents").json()["results"]}
    assert created["id"] not in alices and str(world.document.pk) in alices


@covers("api/v1/documents/<str:document_id>")
def document_detail(world):
    hidden_from_b(world, "get", f"/api/v1/documents/{world.document.pk}")
    assert world.b_api.delete(f"/api/v1/documents/{world.document.pk}").status_code == 404
    assert Document.objects.filter(pk=world.document.pk).exists()


@covers("api/v1/conversions")
def conversion_list_and_create(world):
    listed = {item["id"] for item in world.b_api.get("/api/v1/conversions").json()["results"]}
    assert listed.isdisjoint({str(world.completed.pk), str(world.queued.pk), str(world.cancelled.pk)})
    hidden_from_b(
        world, "post", "/api/v1/conversions", ok=201, data={"document": str(world.document.pk)}, format="json"
    )


@covers("api/v1/batches")
def batch_create(world):
    """A batch holds only its submitter's files; its conversions are theirs alone."""
    batch = world.a_api.post("/api/v1/batches", {"file": [upload_of(ONE_PAGE, A_NAME)]}, format="multipart").json()
    conversion_id = batch["conversions"][0]["id"]
    assert Conversion.objects.get(pk=conversion_id).owner == world.alice
    hidden_from_b(world, "get", f"/api/v1/conversions/{conversion_id}")


@covers("api/v1/batches/<str:batch_id>")
def batch_detail(world):
    batch = world.a_api.post("/api/v1/batches", {"file": [upload_of(ONE_PAGE, A_NAME)]}, format="multipart").json()
    hidden_from_b(world, "get", f"/api/v1/batches/{batch['id']}")


@covers("api/v1/conversions/<str:conversion_id>")
def conversion_detail_and_priority(world):
    path = f"/api/v1/conversions/{world.queued.pk}"
    hidden_from_b(world, "get", path)
    refused = world.b_api.patch(path, {"priority": 99}, format="json")
    assert refused.status_code == 404 and Conversion.objects.get(pk=world.queued.pk).priority == 0
    assert world.a_api.patch(path, {"priority": 99}, format="json").json()["priority"] == 99
    assert world.b_api.delete(path).status_code == 404 and Conversion.objects.filter(pk=world.queued.pk).exists()


@covers("api/v1/conversions/<str:conversion_id>/cancel")
def cancel(world):
    path = f"/api/v1/conversions/{world.queued.pk}/cancel"
    assert world.b_api.post(path).status_code == 404
    assert Conversion.objects.get(pk=world.queued.pk).status == "queued"
    assert world.a_api.post(path).json()["status"] == "cancelled"


@covers("api/v1/conversions/<str:conversion_id>/retry")
def retry(world):
    path = f"/api/v1/conversions/{world.cancelled.pk}/retry"
    assert world.b_api.post(path).status_code == 404
    assert Conversion.objects.get(pk=world.cancelled.pk).status == "cancelled"
    assert world.a_api.post(path).json()["status"] == "queued"


@covers("api/v1/conversions/<str:conversion_id>/markdown")
def markdown(world):
    hidden_from_b(world, "get", f"/api/v1/conversions/{world.completed.pk}/markdown")


@covers("api/v1/conversions/<str:conversion_id>/html")
def html(world):
    hidden_from_b(world, "get", f"/api/v1/conversions/{world.completed.pk}/html")


@covers("api/v1/conversions/<str:conversion_id>/text")
def text(world):
    hidden_from_b(world, "get", f"/api/v1/conversions/{world.completed.pk}/text")


@covers("api/v1/conversions/<str:conversion_id>/pages")
def pages(world):
    hidden_from_b(world, "get", f"/api/v1/conversions/{world.completed.pk}/pages")


@covers("api/v1/conversions/<str:conversion_id>/pages/<int:page_no>/image")
def page_image(world):
    hidden_from_b(world, "get", f"/api/v1/conversions/{world.completed.pk}/pages/0/image")


@covers("api/v1/conversions/<str:conversion_id>/files/<str:name>")
def output_file(world):
    hidden_from_b(world, "get", f"/api/v1/conversions/{world.completed.pk}/files/{A_STEM}.md")


@covers("api/v1/conversions/<str:conversion_id>/download.zip")
def zip_download(world):
    hidden_from_b(world, "get", f"/api/v1/conversions/{world.completed.pk}/download.zip")


@covers("api/v1/auth/token")
def tokens_are_per_user(world):
    bobs = APIClient().post("/api/v1/auth/token", {"username": "bob", "password": PASSWORD}, format="json")
    assert bobs.status_code == 200 and bobs.json()["token"] != services.issue_api_token(user=world.alice)
    assert world.b_api.delete("/api/v1/auth/token").status_code == 204  # revokes Bob's own token only
    assert world.b_api.get("/api/v1/conversions").status_code == 401
    assert world.a_api.get("/api/v1/conversions").status_code == 200


@covers("api/v1/schema")
def schema_holds_no_user_data(world):
    schema = world.b_api.get("/api/v1/schema", HTTP_ACCEPT="application/json").content.decode()
    assert str(world.completed.pk) not in schema and A_NAME not in schema


# --- admin and accounts ------------------------------------------------------------------


@covers("admin/")
def admin_is_for_staff_only(world):
    path = f"/admin/conversions/conversion/{world.completed.pk}/change/"
    refused = world.b_browser.get(path)
    assert refused.status_code == 302 and refused["Location"].startswith("/admin/login/")
    staff = session_client(get_user_model().objects.create_superuser("root", "root@example.invalid", PASSWORD))
    assert staff.get(path).status_code == 200


@covers("accounts/login/")
def login_page_is_public_and_signs_in_only_its_user(world):
    browser = Client()
    assert browser.get("/accounts/login/").status_code == 200
    browser.post("/accounts/login/", {"username": "bob", "password": PASSWORD})
    html = browser.get("/", **HTML).content.decode()
    assert "bob" in html and A_NAME not in html


@covers("accounts/logout/")
def logout_ends_only_this_session(world):
    assert world.b_browser.post("/accounts/logout/").status_code == 302
    assert world.b_browser.get("/", **HTML).status_code == 302  # back to the login page
    assert world.a_browser.get("/", **HTML).status_code == 200


# --- service routes ----------------------------------------------------------------------


@covers("health")
def health_holds_no_user_data(world):
    assert world.b_api.get("/health").json() == {"status": "healthy", "service": "Dots OCR API"}


@covers("metrics")
def metrics_are_for_staff_or_the_scraper(world):
    assert world.b_browser.get("/metrics").status_code == 403


# --- the original app's routes -----------------------------------------------------------


@covers("config")
def config_holds_no_user_data(world):
    body = world.b_api.get("/config").content.decode()
    assert A_NAME not in body and str(world.completed.pk) not in body


@covers("upload")
def upload_belongs_to_the_uploader(world):
    file = SimpleUploadedFile("b-only.pdf", ONE_PAGE.read_bytes(), content_type="application/pdf")
    assert world.b_api.post("/upload", {"file": file}, format="multipart").status_code == 200
    names = [item["filename"] for item in world.a_api.get("/documents").json()["documents"]]
    assert "b-only.pdf" not in names and A_NAME in names


@covers("documents")
def compat_document_list(world):
    names = [item["filename"] for item in world.b_api.get("/documents").json()["documents"]]
    assert A_NAME not in names


@covers("documents/<path:filename>")
def compat_delete(world):
    refused = world.b_api.delete(f"/documents/{A_NAME}")
    assert refused.status_code == 404 and Document.objects.filter(owner=world.alice).exists()
    assert world.a_api.delete(f"/documents/{A_NAME}").status_code == 200
    assert not Document.objects.filter(owner=world.alice).exists()


@covers("convert")
def compat_convert(world):
    hidden_from_b(world, "post", "/convert", data={"filename": A_NAME}, format="json")


@covers("convert-doc")
def compat_convert_doc(world):
    hidden_from_b(world, "post", "/convert-doc", data={"filename": A_NAME}, format="json")


@covers("conversion-status/<str:conversion_id>")
def compat_status(world):
    hidden_from_b(world, "get", f"/conversion-status/{world.completed.pk}")


@covers("worker-pool-status")
def worker_pool_status_holds_only_counts(world):
    body = world.b_api.get("/worker-pool-status").json()
    assert set(body) == {"status", "queue_size", "active_tasks", "num_workers"}


@covers("markdown-files/<str:stem>")
def compat_markdown_files(world):
    hidden_from_b(world, "get", f"/markdown-files/{A_STEM}")


@covers("markdown/<str:stem>")
def compat_markdown_read_and_edit(world):
    hidden_from_b(world, "get", f"/markdown/{A_STEM}")
    refused = world.b_api.put(f"/markdown/{A_STEM}", {"content": "defaced"}, format="json")
    assert refused.status_code == 404 and Conversion.objects.get(pk=world.completed.pk).markdown_edited is None
    assert world.a_api.put(f"/markdown/{A_STEM}", {"content": "mine"}, format="json").status_code == 200


@covers("image/<str:stem>")
def compat_image(world):
    hidden_from_b(world, "get", f"/image/{A_STEM}")


# Defined after the cases: parametrize reads CASES when this line runs.
def test_every_http_route_has_an_isolation_case():
    assert http_routes() == set(CASES)


@pytest.mark.parametrize("route", sorted(CASES))
def test_user_b_cannot_reach_user_a_documents_or_conversions(world, route):
    CASES[route](world)


def test_staff_see_every_users_conversions(world):
    staff = token_client(make_user("carol", staff=True))
    assert staff.get(f"/api/v1/conversions/{world.completed.pk}").status_code == 200


# --- WebSockets --------------------------------------------------------------------------

WS_CASES = {
    "ws/conversion/<str:conversion_id>",
    "ws/v1/conversions/<str:conversion_id>",
    "ws/v1/queue",
    "ws/v1/batches/<str:batch_id>",
}


def test_every_websocket_route_has_an_isolation_case():
    assert websocket_routes() == WS_CASES


@pytest.fixture
def memory_layer(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


async def first_message(path: str, token: str):
    socket = WebsocketCommunicator(application, f"{path}?token={token}")
    connected, _ = await socket.connect()
    assert connected
    message = await socket.receive_json_from(timeout=5)
    await socket.disconnect()
    return message


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["/ws/conversion/{id}", "/ws/v1/conversions/{id}"])
def test_user_b_cannot_subscribe_to_user_a_conversion(memory_layer, world, path):
    alice, bob = services.issue_api_token(user=world.alice), services.issue_api_token(user=world.bob)
    path = path.format(id=world.queued.pk)
    refusal = async_to_sync(first_message)(path, bob)
    assert refusal == {"type": "error", "code": 4404, "detail": "Conversion not found"}
    snapshot = async_to_sync(first_message)(path, alice)
    assert snapshot["status"] in ("queued", "pending")


@pytest.mark.django_db(transaction=True)
def test_user_b_cannot_subscribe_to_user_a_batch(memory_layer, world):
    alice, bob = services.issue_api_token(user=world.alice), services.issue_api_token(user=world.bob)
    batch = world.a_api.post("/api/v1/batches", {"file": [upload_of(ONE_PAGE, A_NAME)]}, format="multipart").json()
    refusal = async_to_sync(first_message)(f"/ws/v1/batches/{batch['id']}", bob)
    assert refusal == {"type": "error", "code": 4404, "detail": "Batch not found"}
    snapshot = async_to_sync(first_message)(f"/ws/v1/batches/{batch['id']}", alice)
    assert snapshot["type"] == "batch" and snapshot["counts"]["queued"] == 1


@pytest.mark.django_db(transaction=True)
def test_queue_socket_shows_each_user_only_their_jobs(memory_layer, world):
    alice, bob = services.issue_api_token(user=world.alice), services.issue_api_token(user=world.bob)

    async def scenario():
        sockets = {}
        for name, token in (("alice", alice), ("bob", bob)):
            sockets[name] = WebsocketCommunicator(application, f"/ws/v1/queue?token={token}")
            assert (await sockets[name].connect())[0]
            assert (await sockets[name].receive_json_from(timeout=5))["type"] == "queue"
        await database_sync_to_async(services.cancel_conversion)(conversion=world.queued)
        seen_by_alice = await sockets["alice"].receive_json_from(timeout=5)
        bob_saw_nothing = await sockets["bob"].receive_nothing(timeout=0.5)
        for socket in sockets.values():
            await socket.disconnect()
        return seen_by_alice, bob_saw_nothing

    seen_by_alice, bob_saw_nothing = async_to_sync(scenario)()
    assert seen_by_alice["conversion_id"] == str(world.queued.pk) and seen_by_alice["status"] == "cancelled"
    assert bob_saw_nothing
