"""Pictures of a converted PDF load for a client on another origin, against real daphne
and qcluster: embedded in the original routes' Markdown, linked by absolute URLs (with
this server's host and port) in the native API's."""

import base64
import io
import re

import pytest
from PIL import Image

from tests.conftest import WITH_IMAGE
from tests.live import wait_for_status

pytestmark = pytest.mark.acceptance

ORIGIN = "http://frontend.example:3000"
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)]*)\)")


def test_pictures_load_from_another_origin(live_client, live_cluster, live_web):
    headers = {"Origin": ORIGIN, "authorization": "Bearer the-frontends-own-token"}
    with WITH_IMAGE.open("rb") as pdf:
        assert (
            live_client.post(
                "/upload", files={"file": (WITH_IMAGE.name, pdf, "application/pdf")}, headers=headers
            ).status_code
            == 200
        )
    conversion_id = live_client.post("/convert", data={"filename": WITH_IMAGE.name}, headers=headers).json()[
        "conversion_id"
    ]
    assert wait_for_status(live_client, conversion_id)["status"] == "completed"

    for query in ({"page_no": 0}, {}):
        read = live_client.get("/markdown/pdflatex-image", params=query, headers=headers)
        assert read.status_code == 200 and read.headers["access-control-allow-origin"] in ("*", ORIGIN)
        targets = IMAGE.findall(read.json()["content"])
        assert len(targets) == 1
        for target in targets:
            prefix, _, data = target.partition(",")
            assert prefix == "data:image/jpeg;base64"
            assert Image.open(io.BytesIO(base64.b64decode(data, validate=True))).format == "JPEG"

    native = live_client.get(f"/api/v1/conversions/{conversion_id}/markdown").text
    links = IMAGE.findall(native)
    assert len(links) == 1
    for link in links:
        assert link.startswith(f"{live_web}/api/v1/conversions/{conversion_id}/files/")
        loaded = live_client.get(link, headers={"Origin": ORIGIN})
        assert loaded.status_code == 200 and loaded.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(loaded.content)).format == "JPEG"
