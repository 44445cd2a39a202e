"""Prometheus metrics derived from the database at scrape time, so they are right across
the web process and every worker process without a multiprocess registry."""

import hmac

from django.conf import settings
from django.db.models import Count, Min, Q, Sum
from django.http import HttpResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from conversions.models import Conversion, PageResult

# Page duration buckets, in seconds: from a text-layer page to a slow GPU page.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class DatabaseCollector:
    def collect(self):
        yield self.jobs_by_status()
        yield from self.queue()
        yield self.pages_processed()
        yield self.page_durations()

    def jobs_by_status(self):
        family = GaugeMetricFamily("dotsocr_conversions", "Conversions by status", labels=["status"])
        counts = dict(Conversion.objects.values_list("status").annotate(count=Count("pk")))
        for status in Conversion.Status.values:
            family.add_metric([status], counts.get(status, 0))
        return family

    def queue(self):
        queued = Conversion.objects.filter(status=Conversion.Status.QUEUED)
        oldest = queued.aggregate(oldest=Min("created_at"))["oldest"]
        yield GaugeMetricFamily("dotsocr_queue_depth", "Conversions waiting to run", value=queued.count())
        age = (timezone.now() - oldest).total_seconds() if oldest else 0
        yield GaugeMetricFamily("dotsocr_queue_oldest_age_seconds", "Age of the oldest queued conversion", value=age)

    def pages_processed(self):
        family = CounterMetricFamily("dotsocr_pages", "Pages checkpointed, by engine path and outcome",
                                     labels=["engine", "outcome"])
        for engine, outcome, count in PageResult.objects.values_list("engine", "status").annotate(count=Count("pk")):
            family.add_metric([engine, outcome], count)
        return family

    def page_durations(self):
        bounds = [bound * 1000 for bound in DURATION_BUCKETS]
        counts = PageResult.objects.aggregate(
            total=Count("pk"),
            milliseconds=Sum("duration_ms"),
            **{f"le_{index}": Count("pk", filter=Q(duration_ms__lte=bound)) for index, bound in enumerate(bounds)},
        )
        seconds = (counts["milliseconds"] or 0) / 1000
        buckets = [(str(bucket), counts[f"le_{index}"]) for index, bucket in enumerate(DURATION_BUCKETS)]
        buckets.append(("+Inf", counts["total"]))
        return HistogramMetricFamily("dotsocr_page_duration_seconds", "Time to OCR one page",
                                     buckets=buckets, sum_value=seconds)


def metrics(request):
    """`/metrics`: for staff, or with `Authorization: Bearer <METRICS_TOKEN>`."""
    if not allowed(request):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    registry = CollectorRegistry()
    registry.register(DatabaseCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def allowed(request) -> bool:
    if request.user.is_authenticated and request.user.is_staff:
        return True
    token = settings.METRICS_TOKEN
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return bool(token) and hmac.compare_digest(given, token)
