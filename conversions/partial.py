"""Partial success (``on_page_error="skip"``): a page the engine still cannot read after
its retries is recorded as failed, with its reason, and the job completes without it.

Never a silent gap: the page's Markdown is a visible notice (an HTML comment a program
can find, and a blockquote a reader sees), the conversion lists it in ``pages_failed``
and its completion message and final event say so. Pages that show ink but yield no
text (workers/ocr/trust.py) are failed pages too and are listed the same way.
"""

from dataclasses import dataclass

from conversions.models import Conversion, PageResult

# The engine path recorded for a skipped page: no engine produced it.
SKIPPED_ENGINE = "skipped"


def failure_markdown(source_page: int, reason: str) -> str:
    """What stands in the Markdown for a page that failed: ``<!-- page N failed: ... -->``
    then ``> **Page N could not be converted:** reason`` (N: the document's page, 1-based)."""
    one_line = " ".join(reason.split())
    comment = one_line.replace("--", "- -")  # "--" may not appear inside an HTML comment
    return (
        f"<!-- page {source_page} failed: {comment} -->\n\n> **Page {source_page} could not be converted:** {one_line}"
    )


@dataclass(frozen=True)
class FailedPage:
    """A page of a job that failed: skipped after its retries (``on_page_error=skip``) or
    read without any text (it shows ink)."""

    page_no: int  # the job's page, 0-based
    source_page: int  # the document's page, 1-based
    reason: str
    skipped: bool


def failed_pages_of(conversion: Conversion) -> list[FailedPage]:
    """The conversion's failed pages in order, in one query."""
    rows = PageResult.objects.filter(conversion=conversion, status=PageResult.Status.FAILED).order_by("page_no")
    return [
        _failed_page(page_no, source_page, error, engine)
        for page_no, source_page, error, engine in rows.values_list("page_no", "source_page", "error", "engine")
    ]


def failed_pages_in(results: list[PageResult]) -> list[FailedPage]:
    """``failed_pages_of`` from page results in hand (every page of the job, in page
    order), no query."""
    return [
        _failed_page(result.page_no, result.source_page, result.error, result.engine)
        for result in results
        if result.status == PageResult.Status.FAILED
    ]


def _failed_page(page_no: int, source_page: int | None, error: str, engine: str) -> FailedPage:
    return FailedPage(page_no, source_page or page_no + 1, error, engine == SKIPPED_ENGINE)


def pages_failed_field(failed: list[FailedPage]) -> list[dict]:
    """``Conversion.pages_failed``: [{"page": job page, 1-based, "source_page": the
    document's page, 1-based, "reason": str}]."""
    return [{"page": page.page_no + 1, "source_page": page.source_page, "reason": page.reason} for page in failed]


def skipped_message(conversion: Conversion, failed: list[FailedPage]) -> str | None:
    """The completion message when pages were skipped (None when none was): how many
    failed, which, and the first reason."""
    if not any(page.skipped for page in failed):
        return None
    numbers = ", ".join(str(page.source_page) for page in failed[:20])
    more = ", ..." if len(failed) > 20 else ""
    total = conversion.pages_total or len(failed)
    return (
        f"Conversion completed with {len(failed)} of {total} pages failed "
        f"({'page' if len(failed) == 1 else 'pages'} {numbers}{more}); see pages_failed. "
        f"First reason: {failed[0].reason}"
    )[:500]
