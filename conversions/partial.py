"""Partial success (``on_page_error="skip"``): a page the engine still cannot read after
its retries is recorded as failed, with its reason, and the job completes without it.

Never a silent gap: the page's Markdown is a visible notice (an HTML comment a program
can find, and a blockquote a reader sees), the conversion lists it in ``pages_failed``
and its completion message and final event say so. Pages that show ink but yield no
text (workers/ocr/trust.py) are failed pages too and are listed the same way.
"""

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


def failed_pages(conversion: Conversion) -> list[dict]:
    """The conversion's failed pages, in order: [{"page": job page, 1-based, "source_page":
    the document's page, 1-based, "reason": str}]."""
    rows = PageResult.objects.filter(conversion=conversion, status=PageResult.Status.FAILED).order_by("page_no")
    return [
        {"page": page_no + 1, "source_page": source_page or page_no + 1, "reason": error}
        for page_no, source_page, error in rows.values_list("page_no", "source_page", "error")
    ]


def skipped_message(conversion: Conversion, pages_failed: list[dict]) -> str | None:
    """The completion message when pages were skipped (None when none was): how many,
    which, and the first reason."""
    skipped = PageResult.objects.filter(conversion=conversion, engine=SKIPPED_ENGINE).exists()
    if not skipped or not pages_failed:
        return None
    numbers = ", ".join(str(page["source_page"]) for page in pages_failed[:20])
    more = ", ..." if len(pages_failed) > 20 else ""
    total = conversion.pages_total or len(pages_failed)
    return (
        f"Conversion completed with {len(pages_failed)} of {total} pages failed "
        f"({'page' if len(pages_failed) == 1 else 'pages'} {numbers}{more}); see pages_failed. "
        f"First reason: {pages_failed[0]['reason']}"
    )[:500]
