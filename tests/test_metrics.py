"""`/metrics`: Prometheus text derived from the database, for staff or a token."""

import gc
import json
import time
from contextlib import ExitStack

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

from conversions import metrics, services
from conversions.consumers import ConversionConsumer
from conversions.models import PageResult
from conversions.routing import websocket_urlpatterns
from tests.conftest import ONE_PAGE
from workers import pipeline


def samples(text: str) -> dict:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.fixture
def scrape(settings):
    settings.METRICS_TOKEN = "s3cret"

    def get():
        response = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret")
        assert response.status_code == 200
        return samples(response.content.decode())

    return get


def test_numbers_match_the_database(scrape, make_conversion):
    done = make_conversion(ONE_PAGE)
    pipeline.run_conversion(str(done.pk))
    make_conversion(ONE_PAGE)
    cancelled = make_conversion(ONE_PAGE)
    services.cancel_conversion(conversion=cancelled)

    found = scrape()
    assert found[("dotsocr_conversions", (("status", "completed"),))] == 1
    assert found[("dotsocr_conversions", (("status", "queued"),))] == 1
    assert found[("dotsocr_conversions", (("status", "cancelled"),))] == 1
    assert found[("dotsocr_conversions", (("status", "running"),))] == 0
    assert found[("dotsocr_queue_depth", ())] == 1
    assert found[("dotsocr_queue_oldest_age_seconds", ())] >= 0
    assert found[("dotsocr_pages_total", (("engine", "textlayer"), ("outcome", "done")))] == 1
    assert found[("dotsocr_page_duration_seconds_count", ())] == 1
    assert found[("dotsocr_page_duration_seconds_bucket", (("le", "+Inf"),))] == 1


def test_metrics_need_the_token_or_staff(db, settings):
    settings.METRICS_TOKEN = "s3cret"
    assert Client().get("/metrics").status_code == 403
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    settings.METRICS_TOKEN = ""
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403


def test_engine_latency_by_engine_path_matches_the_pages(scrape, make_conversion):
    textlayer = make_conversion(ONE_PAGE)
    pipeline.run_conversion(str(textlayer.pk))
    gpu = make_conversion(ONE_PAGE)
    for page_no, (engine, milliseconds) in enumerate([("dotsocr", 300), ("dotsocr", 7000), ("dotsocr-retry", 40000)]):
        PageResult.objects.create(conversion=gpu, page_no=page_no, engine=engine, duration_ms=milliseconds)

    found = scrape()

    name = "dotsocr_engine_page_latency_seconds"
    for engine in PageResult.objects.values_list("engine", flat=True).distinct():
        pages = PageResult.objects.filter(engine=engine)
        assert found[(f"{name}_count", (("engine", engine),))] == pages.count()
        seconds = sum(pages.values_list("duration_ms", flat=True)) / 1000
        assert found[(f"{name}_sum", (("engine", engine),))] == pytest.approx(seconds)
        for bound in ("0.5", "10", "60"):
            expected = pages.filter(duration_ms__lte=float(bound) * 1000).count()
            assert found[(f"{name}_bucket", (("engine", engine), ("le", bound)))] == expected
    assert found[(f"{name}_bucket", (("engine", "dotsocr"), ("le", "0.5")))] == 1
    assert found[(f"{name}_bucket", (("engine", "dotsocr"), ("le", "10")))] == 2
    assert found[(f"{name}_bucket", (("engine", "dotsocr-retry"), ("le", "30")))] == 0
    assert found[(f"{name}_bucket", (("engine", "textlayer"), ("le", "+Inf")))] == 1


def failed_with(make_conversion, error: str, engine: str):
    conversion = make_conversion(ONE_PAGE, engine=engine)
    claimed = services.claim_conversion(conversion_id=conversion.pk, worker_id="test:1")
    services.fail_conversion(conversion=claimed, error=error)
    return claimed


def test_engine_failures_count_jobs_the_engine_could_not_read(scrape, make_conversion):
    engine_failure = failed_with(make_conversion, "Page 2: The dots.ocr server failed 3 times; last error", "dotsocr")
    failed_with(make_conversion, "Page 1: dots.ocr found no content on the page", "dotsocr")
    failed_with(make_conversion, "The PDF is encrypted; a password is needed to open it.", "dotsocr")
    failed_with(make_conversion, "Pages without a result: 3.", "auto")

    found = scrape()
    assert found[("dotsocr_engine_failed_conversions", (("engine", "dotsocr"),))] == 2
    assert found[("dotsocr_engine_failed_conversions", (("engine", "auto"),))] == 0

    services.retry_conversion(conversion=engine_failure)
    assert scrape()[("dotsocr_engine_failed_conversions", (("engine", "dotsocr"),))] == 1


def test_every_websocket_consumer_has_a_connections_series():
    routed = {route.callback.consumer_class.__name__ for route in websocket_urlpatterns}
    assert routed == set(metrics.CONSUMERS)


def open_connections(consumer: str) -> float:
    [family] = metrics.WebSocketCollector().collect()
    return next(sample.value for sample in family.samples if sample.labels == {"consumer": consumer})


def test_a_consumer_is_uncounted_on_disconnect_or_when_it_is_gone():
    consumer = ConversionConsumer()
    metrics.websocket_opened(consumer)
    assert open_connections("ConversionConsumer") == 1
    async_to_sync(consumer.disconnect)(1000)
    assert open_connections("ConversionConsumer") == 0  # at once, while the object still exists

    metrics.websocket_opened(ConversionConsumer())  # one that crashed before its disconnect ran
    gc.collect()
    assert open_connections("ConversionConsumer") == 0


@pytest.mark.acceptance
def test_websocket_connections_are_counted_by_the_web_process(live_web, live_client):
    """Real daphne, real sockets: opened ones are counted, closed and refused ones are not."""
    ws = live_web.replace("http", "ws")
    job = live_client.post("/api/v1/conversions", files={"file": ("a.pdf", ONE_PAGE.read_bytes(), "application/pdf")})
    job_socket = f"{ws}/ws/v1/conversions/{job.json()['id']}"
    get_user_model().objects.create_superuser("admin", "admin@example.invalid", "correct horse battery")
    signed_in(live_client)

    def connections() -> dict[str, float]:
        text = live_client.get("/metrics").text
        return {
            consumer: samples(text)[("dotsocr_websocket_connections", (("consumer", consumer),))]
            for consumer in metrics.CONSUMERS
        }

    before = connections()
    with ExitStack() as open_sockets:
        for url in (job_socket, job_socket, f"{ws}/ws/v1/queue"):
            socket = open_sockets.enter_context(connect(url, open_timeout=10))
            socket.recv(timeout=10)  # the snapshot: the consumer has accepted
        opened = {
            **before,
            "ConversionConsumer": before["ConversionConsumer"] + 2,
            "QueueConsumer": before["QueueConsumer"] + 1,
        }
        assert eventually(connections, opened)

        with connect(f"{ws}/ws/v1/conversions/00000000-0000-0000-0000-000000000000", open_timeout=10) as refused:
            assert json.loads(refused.recv(timeout=10))["code"] == 4404
        assert eventually(connections, opened)  # refused and closed by the server: no longer counted
    assert eventually(connections, before)


def signed_in(client) -> None:
    """Log the httpx client in to the admin (staff may read /metrics)."""
    client.get("/admin/login/")
    response = client.post(
        "/admin/login/",
        data={
            "username": "admin",
            "password": "correct horse battery",
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
        },
        headers={"Referer": f"{client.base_url}/admin/login/"},
    )
    assert response.status_code == 302, response.text


def eventually(read, expected, timeout: float = 10) -> bool:
    """Disconnects reach the consumer asynchronously: poll until the value settles."""
    deadline = time.monotonic() + timeout
    while (value := read()) != expected:
        if time.monotonic() > deadline:
            print("last value", value)
            return False
        time.sleep(0.1)
    return True
