"""Page selections as users write them: ``"1-3,7,10-"`` (1-based, inclusive). No Django here.

A selection is parsed once for its syntax (at submit, whatever the document) and resolved
against a page count when one is known: at submit for PDFs, in the worker for documents
whose pages exist only after conversion. Pages come out in document order, each once
(overlapping parts are merged); ``"10-"`` runs to the last page.
"""

import re
from dataclasses import dataclass

MAX_SELECTION_CHARS = 1000
PART = re.compile(r"(?P<start>\d+)?\s*(?P<dash>-)?\s*(?P<end>\d+)?")


class PageRangeError(ValueError):
    """The selection is malformed, empty, reversed or past the last page; the message
    names the part and is fit to show to the user."""


@dataclass(frozen=True)
class PageRange:
    start: int  # 1-based
    end: int | None  # 1-based, inclusive; None: to the last page


def parse(text: str) -> list[PageRange]:
    """The parts of ``text``. Raises PageRangeError naming the first bad part."""
    if len(text) > MAX_SELECTION_CHARS:
        raise PageRangeError(f"pages: the selection is longer than {MAX_SELECTION_CHARS} characters.")
    if not text.strip():
        raise PageRangeError('pages: the selection is empty; give pages like "1-3,7,10-".')
    return [parse_part(part.strip()) for part in text.split(",")]


def parse_part(part: str) -> PageRange:
    if not part:
        raise PageRangeError('pages: an empty part between commas; give pages like "1-3,7,10-".')
    match = PART.fullmatch(part)
    if match is None or match["start"] is None:
        raise PageRangeError(f'pages: {part!r} is not a page number or a range like "2-5" or "10-".')
    start = int(match["start"])
    end = None if match["dash"] and match["end"] is None else int(match["end"] or start)
    if start < 1:
        raise PageRangeError(f"pages: {part!r}: pages are numbered from 1.")
    if end is not None and end < start:
        raise PageRangeError(f"pages: {part!r} is reversed; write {end}-{start}.")
    return PageRange(start, end)


def resolve(ranges: list[PageRange], page_count: int) -> list[int]:
    """The selected pages as 0-based indexes in document order, each once. Raises
    PageRangeError naming a part past the last page."""
    selected: set[int] = set()
    for page_range in ranges:
        last = page_range.end or page_range.start
        if last > page_count:
            shown = (
                f"{page_range.start}-"
                if page_range.end is None
                else (
                    f"{page_range.start}"
                    if page_range.end == page_range.start
                    else f"{page_range.start}-{page_range.end}"
                )
            )
            raise PageRangeError(
                f"pages: {shown!r} is out of range: the document has {page_count} page{'s' if page_count != 1 else ''}."
            )
        selected.update(range(page_range.start - 1, (page_range.end or page_count)))
    return sorted(selected)


def selected_pages(text: str, page_count: int) -> list[int]:
    """0-based indexes of the pages ``text`` selects (every page when it is blank)."""
    if not text:
        return list(range(page_count))
    return resolve(parse(text), page_count)
