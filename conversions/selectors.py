"""Every read shared by the API, pages, admin and workers."""

from pathlib import Path

from django.core.exceptions import ValidationError
from django.db.models import Count, Q, QuerySet

from conversions.exceptions import NotFound
from conversions.models import Conversion, Document, PageResult
from workers import outputs


def conversions_for(user, *, status: str | None = None) -> QuerySet[Conversion]:
    conversions = Conversion.objects.select_related("document")
    if not user.is_staff:
        conversions = conversions.filter(owner=user)
    if status:
        conversions = conversions.filter(status=status)
    return conversions.order_by("-created_at")


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


def checkpointed_page_numbers(conversion: Conversion) -> set[int]:
    return set(PageResult.objects.filter(conversion=conversion).values_list("page_no", flat=True))


def cancel_requested(conversion: Conversion) -> bool:
    return Conversion.objects.filter(pk=conversion.pk, cancel_requested=True).exists()


def queue_counts() -> dict[str, int]:
    """Jobs waiting and jobs running, exact, in one query."""
    counts = Conversion.objects.aggregate(
        queued=Count("pk", filter=Q(status=Conversion.Status.QUEUED)),
        running=Count("pk", filter=Q(status=Conversion.Status.RUNNING)),
    )
    return {"queued": counts["queued"], "running": counts["running"]}


def conversion_by_id(conversion_id) -> Conversion:
    """Any conversion, for internal use (workers, event publishing): no owner check."""
    return Conversion.objects.select_related("document").get(pk=conversion_id)


def output_file(conversion: Conversion, name: str) -> Path:
    """A file of a completed conversion's outputs, by its bare name. Raises NotFound.

    The name must be one the output folder lists, so no client string becomes a path.
    """
    for path in output_files(conversion):
        if path.name == name:
            return path
    raise NotFound(f"No output file {name!r} for conversion {conversion.pk}.")


def page_image(conversion: Conversion, page_no: int) -> Path:
    return output_file(conversion, f"{outputs.page_name(outputs.safe_stem(conversion.document.filename), page_no)}.jpg")


def output_files(conversion: Conversion) -> list[Path]:
    """Every output file of a completed conversion, sorted by name. Raises NotFound."""
    if conversion.status != Conversion.Status.COMPLETED or not conversion.output_dir:
        raise NotFound(f"Conversion {conversion.pk} has no outputs (status: {conversion.status}).")
    return sorted(path for path in Path(conversion.output_dir).iterdir() if path.is_file())
