"""Progress events: what WebSocket clients receive, built from the database (the truth).

Native events (``/ws/v1/conversions/<id>``) carry the Conversion's own status strings;
the original app's socket (``/ws/conversion/<id>``) gets its status strings and shapes.
"""

from conversions import storage
from conversions.models import Conversion
from conversions.queue_position import queue_position
from workers import outputs

Status = Conversion.Status
ORIGINAL_STATUS: dict[str, str] = {
    Status.QUEUED: "pending",
    Status.RUNNING: "processing",
    Status.COMPLETED: "completed",
    Status.FAILED: "error",
    Status.CANCELLED: "error",
}


def conversion_event(conversion: Conversion, *, page_no: int | None = None) -> dict:
    event = {
        "type": "conversion",
        "conversion_id": str(conversion.pk),
        "status": conversion.status,
        "progress": conversion.progress,
        "message": conversion.message,
        "pages_done": conversion.pages_done,
        "pages_total": conversion.pages_total,
        "seq": conversion.event_seq,
    }
    if page_no is not None:
        event["page_no"] = page_no
    if conversion.status == Status.QUEUED:
        event["queue_position"] = queue_position(conversion)
    if conversion.status == Status.COMPLETED:
        event["results"] = result_files(conversion)
        if conversion.pages_failed:  # partial success (on_page_error "skip"): say which pages are missing
            event["pages_failed"] = conversion.pages_failed
    if conversion.status in (Status.FAILED, Status.CANCELLED):
        event["error"] = conversion.error or conversion.message
    return event


def result_files(conversion: Conversion) -> list[dict]:
    """Per-page output files of a completed conversion (the original's `results`)."""
    stem = outputs.safe_stem(conversion.document.filename)
    prefix = conversion.output_dir
    return [
        {
            "page_no": page_no,
            **{
                key: storage.shown_path(storage.join(prefix, name))
                for key, name in outputs.page_files(stem, page_no).items()
            },
        }
        for page_no in range(conversion.pages_total or 0)
    ]


def original_status_record(conversion: Conversion) -> dict:
    """The original app's conversion status record (`GET /conversion-status/{id}`)."""
    record = {
        "id": str(conversion.pk),
        "filename": conversion.document.filename,
        "status": ORIGINAL_STATUS[conversion.status],
        # The original reported 0 once a conversion failed (as original_event does).
        "progress": 0 if conversion.status in (Status.FAILED, Status.CANCELLED) else conversion.progress,
        "message": conversion.message,
        "created_at": iso(conversion.created_at),
        "started_at": iso(conversion.started_at),
        "completed_at": iso(conversion.finished_at),
        "error": conversion.error or (conversion.message if conversion.status == Status.CANCELLED else None),
    }
    if conversion.status == Status.QUEUED:  # an extra field while pending: jobs claimed before this one
        record["queue_position"] = queue_position(conversion)
    return record


def original_event(event: dict) -> dict:
    """A native event in the original app's shape (its frontend reads status/progress/message)."""
    status = event["status"]
    shaped = {**event, "status": ORIGINAL_STATUS[status]}
    if status in (Status.FAILED, Status.CANCELLED):
        shaped["progress"] = 0
    return shaped


def iso(moment) -> str | None:
    return moment.isoformat() if moment else None
