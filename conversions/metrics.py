"""Prometheus metrics derived from the database at scrape time, so they are right across
the web processes and every worker process without a multiprocess registry.

The one exception is the WebSocket connections gauge: sockets are held by the web
processes. One process counts them in memory. With several (WEB_CONCURRENCY, launched
with PROMETHEUS_MULTIPROC_DIR set) each keeps its counts in prometheus-client's
multiprocess files and /metrics, answered by whichever process the connection reached,
sums those of the live processes: a total, not a per-process label, because a scrape
cannot choose the process it reaches behind the shared socket.
"""

import hmac
import weakref
from collections import Counter

from django.conf import settings
from django.db.models import Count, Min, Q, Sum
from django.http import HttpResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from conversions import retention, selectors
from conversions.models import Conversion, PageResult
from workers.ocr import ENGINES

# Page duration buckets, in seconds: from a text-layer page to a slow GPU page.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
# pipeline.recognize names the page in every engine error it lets through: "Page 3: ...".
ENGINE_ERROR = r"^Page [0-9]+: "

# The consumers connected to this process right now (conversions/consumers.py adds one on
# connect, removes it on disconnect). Weak references: a consumer that crashed before its
# disconnect ran leaves the set with the object instead of being counted forever.
OPEN_WEBSOCKETS: weakref.WeakSet[object] = weakref.WeakSet()
# Always listed, 0 when none.
CONSUMERS = ("ConversionConsumer", "OriginalConversionConsumer", "QueueConsumer", "BatchConsumer")
WEBSOCKETS_NAME = "dotsocr_websocket_connections"
_shared_gauge: Gauge | None = None


def shared_websocket_gauge() -> Gauge | None:
    """This process's part of the summed gauge when web processes share their metrics
    (PROMETHEUS_MULTIPROC_DIR), else None. "livesum": the launcher removes the files
    with the folder, so only processes of the running web tier are summed."""
    global _shared_gauge
    if _shared_gauge is None and settings.PROMETHEUS_MULTIPROC_DIR:
        _shared_gauge = Gauge(
            WEBSOCKETS_NAME,
            "Open WebSocket connections of every web process",
            labelnames=["consumer"],
            multiprocess_mode="livesum",
            registry=None,
        )
        for consumer in CONSUMERS:
            _shared_gauge.labels(consumer).set(0)
    return _shared_gauge


def websocket_opened(consumer) -> None:
    OPEN_WEBSOCKETS.add(consumer)
    publish_websocket_count(type(consumer).__name__)


def websocket_closed(consumer) -> None:
    OPEN_WEBSOCKETS.discard(consumer)
    publish_websocket_count(type(consumer).__name__)


def publish_websocket_count(consumer: str) -> None:
    """Write this process's count of ``consumer`` sockets to the shared gauge (a set, not
    an increment, so that a consumer collected without its disconnect drops out at the
    next change)."""
    gauge = shared_websocket_gauge()
    if gauge is not None:
        gauge.labels(consumer).set(sum(1 for open_one in list(OPEN_WEBSOCKETS) if type(open_one).__name__ == consumer))


class DatabaseCollector:
    def collect(self):
        yield self.jobs_by_status()
        yield from self.queue()
        yield self.pages_processed()
        yield self.page_durations()
        yield self.engine_latency()
        yield self.engine_failures()
        yield self.stored_bytes()

    def jobs_by_status(self):
        family = GaugeMetricFamily("dotsocr_conversions", "Conversions by status", labels=["status"])
        for status, count in selectors.counts_by_status().items():  # an index-only scan
            family.add_metric([status], count)
        return family

    def queue(self):
        queued = Conversion.objects.filter(status=Conversion.Status.QUEUED)
        oldest = queued.aggregate(oldest=Min("created_at"))["oldest"]
        yield GaugeMetricFamily("dotsocr_queue_depth", "Conversions waiting to run", value=queued.count())
        age = (timezone.now() - oldest).total_seconds() if oldest else 0
        yield GaugeMetricFamily("dotsocr_queue_oldest_age_seconds", "Age of the oldest queued conversion", value=age)

    def pages_processed(self):
        family = CounterMetricFamily(
            "dotsocr_pages", "Pages checkpointed, by engine path and outcome", labels=["engine", "outcome"]
        )
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
        return HistogramMetricFamily(
            "dotsocr_page_duration_seconds", "Time to OCR one page", buckets=buckets, sum_value=seconds
        )

    # Engine latency and errors come from the database too. The engines run in worker
    # processes, often on other hosts: prometheus_client's multiprocess mode would only
    # see the workers of the host the scrape reaches, and needs a shared directory set
    # up before every process starts. What the database keeps is per page: duration_ms
    # times engine.recognize alone (pipeline.recognize), the requests and the engine's own
    # retries of one page; transient request failures that a retry recovered leave no
    # row, and unusable answers show as the engine paths dotsocr-retry, -salvaged and
    # -ocr-fallback in dotsocr_pages_total.

    def engine_latency(self):
        family = HistogramMetricFamily(
            "dotsocr_engine_page_latency_seconds",
            "Time the engine took to answer for one page, its retries included, by engine path",
            labels=["engine"],
        )
        bounds = [bound * 1000 for bound in DURATION_BUCKETS]
        rows = (
            PageResult.objects.order_by()
            .values("engine")
            .annotate(
                total=Count("*"),
                milliseconds=Sum("duration_ms"),
                **{f"le_{index}": Count("pk", filter=Q(duration_ms__lte=bound)) for index, bound in enumerate(bounds)},
            )
        )
        for row in rows:
            buckets = [(str(bucket), row[f"le_{index}"]) for index, bucket in enumerate(DURATION_BUCKETS)]
            buckets.append(("+Inf", row["total"]))
            family.add_metric([row["engine"]], buckets, (row["milliseconds"] or 0) / 1000)
        return family

    def engine_failures(self):
        """A gauge, not a counter: a retry clears a job's error, so the number can fall."""
        family = GaugeMetricFamily(
            "dotsocr_engine_failed_conversions",
            "Conversions failed because the engine could not read a page after its retries, by requested engine",
            labels=["engine"],
        )
        failed = Conversion.objects.filter(status=Conversion.Status.FAILED, error__regex=ENGINE_ERROR)
        counts = dict(failed.order_by().values_list("engine").annotate(count=Count("*")))
        for engine in sorted(set(ENGINES) | set(counts)):
            family.add_metric([engine], counts.get(engine, 0))
        return family

    def stored_bytes(self):
        """From sizes recorded when the files were written (conversions/retention.py
        stored_bytes): two SUMs, never a walk of the storage, which could be an object store
        holding millions of files."""
        family = GaugeMetricFamily(
            "dotsocr_stored_bytes",
            "Bytes of files kept, by kind (uploads: documents as uploaded; outputs: published result folders)",
            labels=["kind"],
        )
        for kind, size in retention.stored_bytes().items():
            family.add_metric([kind], size)
        return family


class WebSocketCollector:
    def collect(self):
        family = GaugeMetricFamily(
            WEBSOCKETS_NAME, "Open WebSocket connections of this web process", labels=["consumer"]
        )
        open_by_consumer = Counter(type(consumer).__name__ for consumer in list(OPEN_WEBSOCKETS))
        for consumer in CONSUMERS:
            family.add_metric([consumer], open_by_consumer.get(consumer, 0))
        yield family


def metrics(request):
    """`/metrics`: for staff, or with `Authorization: Bearer <METRICS_TOKEN>`."""
    if not allowed(request):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    registry = CollectorRegistry()
    registry.register(DatabaseCollector())
    if shared_websocket_gauge() is None:
        registry.register(WebSocketCollector())
    else:
        for consumer in CONSUMERS:
            publish_websocket_count(consumer)
        MultiProcessCollector(registry, path=settings.PROMETHEUS_MULTIPROC_DIR)
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def allowed(request) -> bool:
    if request.user.is_authenticated and request.user.is_staff:
        return True
    token = settings.METRICS_TOKEN
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return bool(token) and hmac.compare_digest(given, token)
