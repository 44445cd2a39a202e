"""`/metrics`: Prometheus text derived from the database, for staff or a token."""

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from conversions import services
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
