"""Every read shared by the API, pages, admin and workers."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.paginator import Page, Paginator
from django.db import connection
from django.db.models import Count, QuerySet
from django.utils import timezone

from conversions import storage
from conversions.exceptions import NotFound
from conversions.models import Batch, Conversion, Document, PageResult
from conversions.retention import ensure_not_expired
from conversions.storage import StoredFile
from workers import markdown_pictures, outputs
from workers.ocr.layout import with_headers_footers


def conversions_for(user, *, status: str | None = None) -> QuerySet[Conversion]:
    conversions = Conversion.objects.select_related("document")
    if not user.is_staff:
        conversions = conversions.filter(owner=user)
    if status:
        conversions = conversions.filter(status=status)
    return conversions.order_by("-created_at")


def conversion_rows_for(
    user, *, status: str | None = None, columns: Iterable[str], document_columns: Iterable[str]
) -> QuerySet:
    """conversions_for's conversions, in its order, as dicts of ``columns`` and of
    ``document__<column>`` for ``document_columns``: a list of them is read without a
    model instance per row (most of a list's time after its queries)."""
    document = [f"document__{column}" for column in document_columns]
    return conversions_for(user, status=status).values(*columns, *document)


def conversion_for(user, conversion_id) -> Conversion:
    """One conversion the user may see. Raises NotFound (also for other users' jobs)."""
    try:
        return conversions_for(user).get(pk=conversion_id)
    except (Conversion.DoesNotExist, ValidationError):
        raise NotFound(f"Conversion not found: {conversion_id}") from None


def documents_for(user) -> QuerySet[Document]:
    documents = Document.objects.all()
    if not user.is_staff:
        documents = documents.filter(owner=user)
    return documents.order_by("-created_at")


def document_for(user, document_id) -> Document:
    try:
        return documents_for(user).get(pk=document_id)
    except (Document.DoesNotExist, ValidationError):
        raise NotFound(f"Document not found: {document_id}") from None


def page_results(conversion: Conversion) -> QuerySet[PageResult]:
    return PageResult.objects.filter(conversion=conversion).order_by("page_no")


def page_numbers(conversion: Conversion) -> list[int]:
    """The numbers (0-based) of the pages a conversion has results for, in order."""
    return list(page_results(conversion).values_list("page_no", flat=True))


def checkpointed_page_numbers(conversion: Conversion) -> set[int]:
    # order_by(): PageResult's default order goes through Conversion's, a join for nothing.
    return set(PageResult.objects.filter(conversion=conversion).order_by().values_list("page_no", flat=True))


def cancel_requested(conversion: Conversion) -> bool:
    return Conversion.objects.filter(pk=conversion.pk, cancel_requested=True).exists()


QUEUE_COUNTS = (
    "SELECT COUNT(*) FILTER (WHERE status = 'queued'), COUNT(*) FILTER (WHERE status = 'running') "
    f"FROM {Conversion._meta.db_table} WHERE status IN ('queued', 'running')"
)


def queue_counts() -> dict[str, int]:
    """Jobs waiting and jobs running, exact, in one query (written out: every start and
    end of a job sends them, and compiling the ORM's aggregate cost more than running it)."""
    with connection.cursor() as cursor:
        cursor.execute(QUEUE_COUNTS)
        queued, running = cursor.fetchone()
    return {"queued": queued, "running": running}


def conversion_by_id(conversion_id) -> Conversion:
    """Any conversion, for internal use (workers, progress events): no owner check."""
    return Conversion.objects.select_related("document").get(pk=conversion_id)


def output_file(conversion: Conversion, name: str) -> StoredFile:
    """A file of a completed conversion's outputs, by its bare name. Raises NotFound.

    The name must be one the output prefix lists, so no client string becomes a key.
    """
    for stored in output_files(conversion):
        if stored.name == name:
            return stored
    raise NotFound(f"No output file {name!r} for conversion {conversion.pk}.")


def page_image(conversion: Conversion, page_no: int) -> StoredFile:
    return output_file(conversion, f"{outputs.page_name(outputs.safe_stem(conversion.document.filename), page_no)}.jpg")


def output_files(conversion: Conversion) -> list[StoredFile]:
    """Every output file of a completed conversion (in storage, under its output_dir
    prefix), sorted by name. Raises NotFound, or Gone once RESULT_TTL_HOURS removed them;
    FileNotFoundError when its files are gone from storage."""
    ensure_not_expired(conversion)
    if conversion.status != Conversion.Status.COMPLETED or not conversion.output_dir:
        raise NotFound(f"Conversion {conversion.pk} has no outputs (status: {conversion.status}).")
    found = storage.folder(conversion.output_dir)
    if not found:
        raise FileNotFoundError(conversion.output_dir)
    return found


def latest_document_named(user, filename: str) -> Document:
    """The latest upload of that name (the original app addresses uploads by name)."""
    document = documents_for(user).filter(filename=filename).first()
    if document is None:
        raise NotFound(f"File not found: {filename}")
    return document


def latest_documents_by_name(user) -> list[Document]:
    """One document per file name, the latest upload of each, newest first."""
    documents = documents_for(user).order_by("filename", "-created_at").distinct("filename")
    return sorted(documents, key=lambda document: document.created_at, reverse=True)


def latest_completed_conversion(user, *, stem: str) -> Conversion | None:
    return (
        conversions_for(user, status=Conversion.Status.COMPLETED)
        .filter(document__stem=stem)
        .order_by("-finished_at")
        .first()
    )


LATEST_OUTPUT_DIRS = f"""
    SELECT DISTINCT ON (document.stem) document.stem, conversion.output_dir
    FROM "{Conversion._meta.db_table}" conversion
    JOIN "{Document._meta.db_table}" document ON document.id = conversion.document_id
    WHERE conversion.status = %s AND conversion.expired_at IS NULL AND document.stem = ANY(%s) {{owner}}
    ORDER BY document.stem, conversion.finished_at DESC
"""


def latest_completed_output_dirs(user, *, stems: set[str]) -> dict[str, str]:
    """The output folder of the latest completed conversion of each stem (among the
    conversions ``conversions_for`` shows the user), in one query; none without stems.

    Written out: the original's ``/documents`` asks for it on every request, and compiling
    the ORM's DISTINCT ON over the join cost more than running it."""
    if not stems:
        return {}
    parameters: list = [Conversion.Status.COMPLETED, sorted(stems)]
    owner = ""
    if not user.is_staff:  # conversions_for's rule
        owner, parameters = "AND conversion.owner_id = %s", [*parameters, user.pk]
    with connection.cursor() as cursor:
        cursor.execute(LATEST_OUTPUT_DIRS.format(owner=owner), parameters)
        return dict(cursor.fetchall())


def live_worker_count() -> int:
    """Workers across the live django-q2 clusters (their stats expire when they stop)."""
    from django_q.status import Stat

    return sum(len(stat.workers) for stat in Stat.get_all())


def page_markdown(page: PageResult, *, headers_footers: bool = False) -> str:
    """A page's Markdown, a user's edit winning over the model's text; pictures by bare
    file name. With ``headers_footers`` an edited page keeps the model's headers and
    footers around the edit (the edit is of the text without them)."""
    if page.markdown_edited is None:
        return page.markdown if headers_footers else page.markdown_nohf
    if not headers_footers:
        return page.markdown_edited
    return with_headers_footers(outputs.cells_from_dicts(page.cells), page.markdown_edited)


def document_markdown(conversion: Conversion, *, headers_footers: bool = False) -> str:
    """The whole document's Markdown: its pages' (edits included), in order; with a page
    selection each page names the document page it comes from (outputs.join_markdown)."""
    return outputs.join_markdown(
        [
            (page_markdown(page, headers_footers=headers_footers), page.page_no, page.source_page)
            for page in page_results(conversion)
        ]
    )


def markdown_nohf(conversion: Conversion, *, page_no: int | None) -> str:
    """Markdown without headers/footers, edits included: one page (0-based), or the
    whole document. Raises NotFound for a missing page."""
    if page_no is None:
        return document_markdown(conversion)
    page = page_results(conversion).filter(page_no=page_no).first()
    if page is None:
        raise NotFound(f"No page {page_no} in conversion {conversion.pk}")
    return page_markdown(page)


def output_images(conversion: Conversion) -> dict[str, StoredFile]:
    """A completed conversion's JPEG outputs (pages and picture crops) by name; none
    before it completes (they are not published yet)."""
    if conversion.status != Conversion.Status.COMPLETED or not conversion.output_dir:
        return {}
    return {stored.name: stored for stored in output_files(conversion) if stored.suffix == ".jpg"}


def output_image(conversion: Conversion, name: str) -> StoredFile | None:
    """One JPEG output of a completed conversion by bare file name, or None (no such
    file, a name that is not bare, or the conversion is not complete)."""
    bare = name == Path(name).name and not name.startswith(".") and name.endswith(".jpg")
    if not bare or conversion.status != Conversion.Status.COMPLETED or not conversion.output_dir:
        return None
    stored = storage.StoredFile(storage.join(conversion.output_dir, name))
    return stored if stored.is_file() else None


def served_markdown(markdown: str, *, conversion: Conversion, mode: str, link=None) -> str:
    """Markdown with the conversion's images made loadable where it is served:
    ``embedded`` as data URLs, ``links`` by ``link(name)`` (an absolute URL), ``none``
    left out. A name that is not one of its output JPEGs is left as it is."""
    found: dict[str, StoredFile | None] = {}

    def image(name: str) -> StoredFile | None:
        if name not in found:
            found[name] = output_image(conversion, name)
        return found[name]

    if mode == "none":
        return markdown_pictures.without_images(markdown, lambda name: image(name) is not None)
    if mode == "links":
        return markdown_pictures.relink(markdown, lambda name: link(name) if image(name) else None)
    embedded: dict[str, str] = {}

    def data_url(name: str) -> str | None:
        path = image(name)
        if path is not None and name not in embedded:
            embedded[name] = markdown_pictures.data_url(path.read_bytes())
        return embedded.get(name)

    return markdown_pictures.relink(markdown, data_url)


def image_name_by_content(conversion: Conversion):
    """``name_of(jpeg_bytes)``: the name of the conversion's output JPEG with exactly
    those bytes, or None. Reads only files of the same size."""
    by_size: dict[int, list[StoredFile]] = {}
    for stored in output_images(conversion).values():
        by_size.setdefault(stored.size, []).append(stored)

    def name_of(jpeg: bytes) -> str | None:
        return next((path.name for path in by_size.get(len(jpeg), ()) if path.read_bytes() == jpeg), None)

    return name_of


# --- the admin's Queue page -------------------------------------------------------------
# Every read below is indexed and runs a fixed number of queries, so the page costs the
# same with 100,000 jobs as with ten (tests/test_admin_queue.py counts and EXPLAINs them).

QUEUE_PAGE_SIZE = 50
# Running jobs are bounded by the workers; the cap only guards the page against a
# reaper that has not run for a long time.
ACTIVE_LIMIT = 200
THROUGHPUT_WINDOWS_MINUTES = (1, 5, 15)


@dataclass(frozen=True)
class QueueSnapshot:
    counts: dict[str, int]
    queued: Page
    active: list[Conversion]
    pages_per_minute: dict[int, float]
    clusters: list


def queue_snapshot(*, page_number=1, page_size: int = QUEUE_PAGE_SIZE) -> QueueSnapshot:
    """Everything the Queue page shows: counts per status, one page of the queue in run
    order, the running jobs, recent throughput and the django-q2 clusters."""
    counts = counts_by_status()
    return QueueSnapshot(
        counts=counts,
        queued=queued_page(page_number, page_size=page_size, queued_count=counts[Conversion.Status.QUEUED]),
        # None running when counted: no rows to read (an idle queue's usual case, as queued_page)
        active=active_conversions() if counts[Conversion.Status.RUNNING] else [],
        pages_per_minute=pages_per_minute(),
        clusters=cluster_stats(),
    )


# COUNT(*), not COUNT(id): the status index alone answers it, without the table.
COUNTS_BY_STATUS = f'SELECT status, COUNT(*) FROM "{Conversion._meta.db_table}" GROUP BY status'


def counts_by_status() -> dict[str, int]:
    """Conversions per status, every status present (zero when none). One GROUP BY,
    an index-only scan of conversion_status on a vacuumed table (written out, as
    QUEUE_COUNTS is: the Queue page's live part asks for it every few seconds)."""
    with connection.cursor() as cursor:
        cursor.execute(COUNTS_BY_STATUS)
        counts = dict(cursor.fetchall())
    return {status: counts.get(status, 0) for status in Conversion.Status.values}


def queued_in_run_order() -> QuerySet[Conversion]:
    """Queued conversions by priority, then age: the order of the partial index
    conversion_queue_order. It is the claim order only while one owner waits at each
    priority; queue_position.claim_order applies claim_next's fair share on top."""
    return Conversion.objects.filter(status=Conversion.Status.QUEUED).order_by("-priority", "created_at", "pk")


def queued_page(number, *, page_size: int, queued_count: int) -> Page:
    """One page of the queue in the order workers will claim it (queue_position.queued_ids,
    the model the API's queue_position reads too), then the page's rows with their
    document and owner. The count comes from counts_by_status, saving the paginator a
    COUNT(*); a page number past the end gives the last page."""
    from conversions.queue_position import queued_ids

    paginator: Paginator = Paginator([], page_size)
    paginator.count = queued_count  # a cached_property: set, it is never queried
    page = paginator.get_page(number)
    if not queued_count:  # nothing queued when counted: no plan to read (an idle queue's usual case)
        page.object_list = []
        return page
    start = (page.number - 1) * page_size
    ids, _ = queued_ids(start, start + page_size)
    rows = Conversion.objects.select_related("document", "owner").in_bulk(ids)
    # The page's ids replaced by their rows (one deleted meanwhile is left out).
    page.object_list = [rows[pk] for pk in ids if pk in rows]
    return page


def active_conversions(*, limit: int = ACTIVE_LIMIT) -> list[Conversion]:
    """Running conversions, oldest start first, each with ``heartbeat_age`` and
    ``running_for`` (timedelta or None), measured as the reaper measures leases."""
    running = list(
        Conversion.objects.filter(status=Conversion.Status.RUNNING)
        .select_related("document")
        .order_by("started_at", "pk")[:limit]
    )
    now = timezone.now()
    for conversion in running:
        # Attributes for the dashboard's template, not model fields.
        conversion.heartbeat_age = now - conversion.heartbeat_at if conversion.heartbeat_at else None  # type: ignore[attr-defined]
        conversion.running_for = now - conversion.started_at if conversion.started_at else None  # type: ignore[attr-defined]
    return running


def pages_per_minute(windows_minutes=THROUGHPUT_WINDOWS_MINUTES) -> dict[int, float]:
    """Pages checkpointed per minute, averaged over each window (minutes -> pages/min).
    One query over the PageResult created_at index."""
    now = timezone.now()
    starts = [now - timedelta(minutes=minutes) for minutes in windows_minutes]
    # Written out: compiling the ORM's filtered aggregate cost more than running it.
    counts = ", ".join("COUNT(*) FILTER (WHERE created_at >= %s)" for _ in starts)
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT {counts} FROM "{PageResult._meta.db_table}" WHERE created_at >= %s', [*starts, min(starts)]
        )
        counted = cursor.fetchone()
    return {minutes: count / minutes for minutes, count in zip(windows_minutes, counted, strict=True)}


def cluster_stats() -> list:
    """The live django-q2 clusters, by host. Read from the cache in at most three queries
    however many clusters run: Stat.get_all reads one key per cluster and then rewrites
    the list of keys on every call. A cluster's stat expires seconds after it stops."""
    from django_q.brokers import get_broker
    from django_q.conf import Conf
    from django_q.signing import BadSignature, SignedPackage

    cache = get_broker().cache
    stats = []
    for pack in cache.get_many(cache.get(Conf.Q_STAT) or []).values():
        try:
            stats.append(SignedPackage.loads(pack))
        except BadSignature:  # another deployment's cluster, signed with another key
            continue
    return sorted(stats, key=lambda stat: (stat.host, str(stat.cluster_id)))


# --- batches ----------------------------------------------------------------------------


def batches_for(user) -> QuerySet[Batch]:
    batches = Batch.objects.all()
    if not user.is_staff:
        batches = batches.filter(owner=user)
    return batches.order_by("-created_at")


def batch_for(user, batch_id) -> Batch:
    """One batch the user may see. Raises NotFound (also for other users' batches)."""
    try:
        return batches_for(user).get(pk=batch_id)
    except (Batch.DoesNotExist, ValidationError):
        raise NotFound(f"Batch not found: {batch_id}") from None


def batch_conversions(batch: Batch) -> QuerySet[Conversion]:
    """The batch's conversions in the order they were submitted."""
    return Conversion.objects.filter(batch=batch).select_related("document").order_by("created_at", "pk")


def batch_counts(batch: Batch) -> dict[str, int]:
    """The batch's conversions per status, every status present (zero when none)."""
    counts = dict(Conversion.objects.filter(batch=batch).order_by().values_list("status").annotate(count=Count("*")))
    return {status: counts.get(status, 0) for status in Conversion.Status.values}
