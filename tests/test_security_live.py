"""Authentication through a real daphne with ALLOW_ANONYMOUS off: a script's token over
HTTP and as a WebSocket subprotocol; nothing for a caller without one."""

import json

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from conversions import services
from tests.conftest import ONE_PAGE
from tests.live import free_port, start_web
from tests.security_support import FAST_PASSWORD_HASHERS, make_user

pytestmark = pytest.mark.acceptance


@pytest.fixture(scope="module")
def signed_in_only_web(live_env, tmp_path_factory):
    port = free_port()
    web = start_web({**live_env, "ALLOW_ANONYMOUS": "false"}, port, tmp_path_factory.mktemp("web-logs"))
    yield f"127.0.0.1:{port}"
    web.stop()


@pytest.fixture
def token(transactional_db, settings):
    settings.PASSWORD_HASHERS = FAST_PASSWORD_HASHERS
    return services.issue_api_token(user=make_user("alice"))


def submit_as(address: str, token: str) -> str:
    with httpx.Client(base_url=f"http://{address}", timeout=30) as client:
        created = client.post(
            "/api/v1/conversions",
            headers={"Authorization": f"Token {token}"},
            files={"file": ("one.pdf", ONE_PAGE.read_bytes(), "application/pdf")},
        )
    assert created.status_code == 201, created.text
    return created.json()["id"]


def test_http_needs_the_token(signed_in_only_web, token):
    refused = httpx.get(f"http://{signed_in_only_web}/api/v1/conversions", timeout=30)
    assert refused.status_code == 401 and refused.json()["detail"]
    conversion_id = submit_as(signed_in_only_web, token)
    mine = httpx.get(
        f"http://{signed_in_only_web}/api/v1/conversions/{conversion_id}",
        headers={"Authorization": f"Token {token}"},
        timeout=30,
    )
    assert mine.status_code == 200 and mine.json()["status"] == "queued"


def test_websocket_takes_the_token_as_a_subprotocol(signed_in_only_web, token):
    conversion_id = submit_as(signed_in_only_web, token)
    url = f"ws://{signed_in_only_web}/ws/v1/conversions/{conversion_id}"
    with connect(url, subprotocols=["token", token], open_timeout=30) as socket:
        assert socket.subprotocol == "token"
        snapshot = json.loads(socket.recv(timeout=10))
    assert snapshot["conversion_id"] == conversion_id and snapshot["status"] == "queued"


def test_websocket_without_a_token_is_closed_with_4401(signed_in_only_web, token):
    conversion_id = submit_as(signed_in_only_web, token)
    with connect(f"ws://{signed_in_only_web}/ws/v1/conversions/{conversion_id}", open_timeout=30) as socket:
        refusal = json.loads(socket.recv(timeout=10))
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=10)
    assert refusal == {"type": "error", "code": 4401, "detail": "Authentication required."}
    assert closed.value.rcvd.code == 4401
