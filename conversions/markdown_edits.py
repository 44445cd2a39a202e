"""A user's edit of a page's Markdown (the original app's ``PUT /markdown/{stem}``).

Edits are per page, of the Markdown without headers/footers (what the original viewer
shows). The model's text is kept beside the edit; the conversion's Markdown files
(per page and whole document, in the output folder and so in the zip) are written again
from the edited pages, so every way of reading the result agrees.
"""

from django.db import transaction

from conversions import selectors, storage
from conversions.exceptions import InvalidParameter, NotFound
from conversions.models import Conversion, PageResult
from workers import markdown_pictures, outputs


@transaction.atomic
def save_markdown_edit(*, conversion: Conversion, page_no: int | None, content: str) -> int:
    """Store ``content`` as the edit of page ``page_no`` (0-based) and rewrite the
    conversion's Markdown files; returns the page number written.

    ``page_no`` None means the only page of a one-page conversion (the original
    frontend's single-file view saves without it); on a longer one it raises
    InvalidParameter rather than guess a page. Raises NotFound for a page the
    conversion does not have. Pictures the client was served embedded (data URLs of
    the conversion's own crops) are stored by file name again.
    """
    locked = Conversion.objects.select_for_update().get(pk=conversion.pk)  # one rewrite of the files at a time
    pages = list(selectors.page_results(locked))
    page = page_to_edit(locked, pages, page_no)
    page.markdown_edited = markdown_pictures.unembed(content, selectors.image_name_by_content(locked))
    page.save(update_fields=["markdown_edited"])
    rewrite_output_markdown(locked, pages)
    return page.page_no


def page_to_edit(conversion: Conversion, pages: list[PageResult], page_no: int | None) -> PageResult:
    if page_no is None:
        if len(pages) != 1:
            raise InvalidParameter(
                f"page_no is required: conversion {conversion.pk} has {len(pages)} pages "
                f"(page_no 0 to {len(pages) - 1}); a whole-document save would overwrite them."
            )
        return pages[0]
    page = next((page for page in pages if page.page_no == page_no), None)
    if page is None:
        raise NotFound(f"No page {page_no} in conversion {conversion.pk} (it has {len(pages)} pages, from 0).")
    return page


def rewrite_output_markdown(conversion: Conversion, pages: list[PageResult]) -> None:
    prefix = conversion.output_dir
    # Deleted meanwhile: nothing to keep in step.
    if not prefix or not storage.exists(storage.join(prefix, f"{outputs.safe_stem(conversion.document.filename)}.md")):
        return
    stem = outputs.safe_stem(conversion.document.filename)  # as the pipeline named the files
    files = outputs.markdown_files(
        stem,
        [
            outputs.PageOutput(
                page_no=page.page_no,
                cells=page.cells,
                markdown=selectors.page_markdown(page, headers_footers=True),
                markdown_nohf=selectors.page_markdown(page),
                engine=page.engine,
                source_page=page.source_page,
            )
            for page in pages
        ],
    )
    # Each file is replaced whole (one PutObject, or an atomic rename on the local disk).
    for name, text in files.items():
        storage.put(storage.join(prefix, name), text)
