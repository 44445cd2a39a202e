"""A conversion's ``pages`` checked against its document (workers/page_ranges.py parses)."""

from conversions.exceptions import InvalidPageSelection
from workers import page_ranges


def selected_page_count(page_count: int | None, pages: str) -> int | None:
    """How many pages a conversion of a document with ``page_count`` pages converts
    (None while the count is unknown: Office files have pages only once converted, and
    the worker checks the selection then). Raises InvalidPageSelection naming the part."""
    try:
        if not pages:
            return page_count
        ranges = page_ranges.parse(pages)
        return None if page_count is None else len(page_ranges.resolve(ranges, page_count))
    except page_ranges.PageRangeError as error:
        raise InvalidPageSelection(str(error)) from None


def normalized(pages: str | None) -> str:
    """The selection as stored: surrounding blanks dropped; blank means every page."""
    return (pages or "").strip()
