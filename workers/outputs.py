"""Output files of a conversion, laid out as the original app's (no Django here).

Per page ``<stem>_page_<i>.jpg|.json|.md`` and ``<stem>_page_<i>_nohf.md``; for the whole
document ``<stem>.md``, ``<stem>_nohf.md`` and ``<stem>.jsonl`` (one line per page).
Files are written into a local staging folder as pages complete; when every file is
there the worker uploads the folder to storage under a prefix of its attempt
(conversions/storage.py), and only the completed conversion's row names that prefix, so
a reader never sees a partial result.
"""

import json
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from workers.inputs.sniff import INPUT_SUFFIXES
from workers.ocr.base import Cell


@dataclass(frozen=True)
class PageOutput:
    page_no: int
    cells: list[dict]
    markdown: str
    markdown_nohf: str
    engine: str
    source_page: int | None = None  # 1-based page of the document; None: page_no + 1
    engine_reason: str = ""
    status: str = "done"
    error: str = ""


MAX_NAME_CHARS = 255
MAX_EXTENSION_CHARS = 16


def display_name(filename: str) -> str:
    """A client's file name fit to store and show: its last path component (either slash),
    only printable characters (no NUL, control characters or the lone surrogates that
    undecodable bytes become), at most 255 characters with the extension kept;
    ``document.pdf`` when nothing is left. Never used as a path: files are stored under
    server-chosen names and outputs under ``safe_stem``."""
    name = re.split(r"[/\\]", filename or "")[-1]
    name = "".join(character for character in name if character.isprintable()).strip()
    if name in ("", ".", ".."):
        return "document.pdf"
    if len(name) > MAX_NAME_CHARS:
        stem, dot, extension = name.rpartition(".")
        suffix = dot + extension if stem and len(extension) <= MAX_EXTENSION_CHARS else ""
        name = name[: MAX_NAME_CHARS - len(suffix)] + suffix
    return name


def safe_stem(filename: str) -> str:
    """A file-system-safe stem from a client's file name (never a path)."""
    stem = Path(filename.replace("\\", "/")).name
    suffix = "." + stem.rsplit(".", 1)[-1].lower() if "." in stem else ""
    # The extension of an accepted type goes, as the original app's Path(name).stem did:
    # "scan.png" -> "scan", so its outputs and /markdown-files/scan read as for a PDF.
    stem = stem[: -len(suffix)] if suffix in INPUT_SUFFIXES else stem
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")
    return stem[:100] or "document"


def page_name(stem: str, page_no: int) -> str:
    return f"{stem}_page_{page_no}"


def picture_name(stem: str, page_no: int, index: int) -> str:
    return f"{page_name(stem, page_no)}_picture_{index}.jpg"


def write_atomically(path: Path, data: bytes | str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    if isinstance(data, bytes):
        temporary.write_bytes(data)
    else:
        temporary.write_text(data, encoding="utf-8")
    os.replace(temporary, path)


def write_page_images(staging: Path, stem: str, page_no: int, jpeg: bytes, pictures: dict[int, bytes]) -> None:
    """The page image and its picture crops, written as soon as the page is rendered."""
    staging.mkdir(parents=True, exist_ok=True)
    write_atomically(staging / f"{page_name(stem, page_no)}.jpg", jpeg)
    for index, crop in pictures.items():
        write_atomically(staging / picture_name(stem, page_no, index), crop)


def markdown_files(stem: str, pages: list[PageOutput]) -> dict[str, str]:
    """Every Markdown file of a conversion by name (per page, then the document's): what
    a user's edit writes again; its layout JSON, JSONL and images stay the model's."""
    files = {}
    for page in pages:
        name = page_name(stem, page.page_no)
        files[f"{name}.md"] = page.markdown
        files[f"{name}_nohf.md"] = page.markdown_nohf
    files[f"{stem}.md"] = join_markdown([(page.markdown, page.page_no, page.source_page) for page in pages]) + "\n"
    files[f"{stem}_nohf.md"] = (
        join_markdown([(page.markdown_nohf, page.page_no, page.source_page) for page in pages]) + "\n"
    )
    return files


def source_page_of(page_no: int, source_page: int | None) -> int:
    return page_no + 1 if source_page is None else source_page


def join_markdown(pages: list[tuple[str, int, int | None]]) -> str:
    """The document's Markdown from (markdown, page_no, source_page) per page. When only
    some pages were converted, each page opens with ``<!-- page N -->`` naming the page of
    the document it comes from (an HTML comment: invisible once rendered)."""
    selected = any(source_page_of(page_no, source) != page_no + 1 for _, page_no, source in pages)
    if not selected:
        return "\n\n".join(markdown for markdown, _, _ in pages)
    return "\n\n".join(
        f"<!-- page {source_page_of(page_no, source)} -->\n\n{markdown}" for markdown, page_no, source in pages
    )


def page_files(stem: str, page_no: int) -> dict[str, str]:
    """The names of one page's files, keyed as the dots.ocr parser's result records."""
    name = page_name(stem, page_no)
    return {
        "layout_info_path": f"{name}.json",
        "layout_image_path": f"{name}.jpg",
        "md_content_path": f"{name}.md",
        "md_content_nohf_path": f"{name}_nohf.md",
    }


def jsonl_record(stem: str, page: PageOutput) -> dict:
    """One JSONL line: the page's files and cells, which engine path produced it and why,
    and, for a page that could not be read, its status and error."""
    record = {
        "page_no": page.page_no,
        "source_page": source_page_of(page.page_no, page.source_page),
        "engine": page.engine,
        "engine_reason": page.engine_reason,
        **page_files(stem, page.page_no),
        "cells": page.cells,
    }
    if page.error:
        record |= {"status": page.status, "error": page.error}
    return record


def complete_folder(staging: Path, stem: str, pages: list[PageOutput]) -> Path:
    """Write every page and document file into the local ``staging`` folder (which holds
    the page images already), ready to be uploaded whole. Each file is written plainly,
    not through a temporary file and a rename: nothing reads the folder before it is
    published whole, and an attempt that dies here writes them all again (only the page
    images, which a resumed attempt keeps, are written atomically)."""
    staging.mkdir(parents=True, exist_ok=True)
    files = {
        f"{page_name(stem, page.page_no)}.json": json.dumps(page.cells, ensure_ascii=False, indent=1) for page in pages
    }
    files |= markdown_files(stem, pages)
    lines = [json.dumps(jsonl_record(stem, page), ensure_ascii=False) for page in pages]
    files[f"{stem}.jsonl"] = "\n".join(lines) + "\n"
    for name, text in files.items():
        (staging / name).write_text(text, encoding="utf-8")
    return staging


CELL_KEYS = ("bbox", "category", "text")  # Cell.as_dict's order, dots.ocr's


def cell_in_order(cell: dict) -> dict:
    """A cell with its keys in dots.ocr's order (``CELL_KEYS``, then any other): PostgreSQL's
    jsonb hands them back in its own order (by length), and a job's files must not depend
    on whether its rows were in hand or read back."""
    return {**{key: cell[key] for key in CELL_KEYS if key in cell}, **cell}


def cells_from_dicts(cells: list[dict]) -> list[Cell]:
    return [Cell(bbox=tuple(cell["bbox"]), category=cell["category"], text=cell.get("text", "")) for cell in cells]


def link_latest(by_stem: Path, stem: str, final: Path) -> None:
    """Point ``by_stem/<stem>`` and ``by_stem/<stem>.jsonl`` at a conversion's outputs,
    the original app's layout (the latest conversion of a name wins). Atomic replace."""
    by_stem.mkdir(parents=True, exist_ok=True)
    for name, target in ((stem, final), (f"{stem}.jsonl", final / f"{stem}.jsonl")):
        temporary = by_stem / f".{name}.{uuid.uuid4().hex}"
        temporary.symlink_to(target)
        os.replace(temporary, by_stem / name)


def unlink_dangling(by_stem: Path, stem: str) -> None:
    """Remove the original-layout links of a stem whose outputs are gone."""
    for name in (stem, f"{stem}.jsonl"):
        link = by_stem / name
        if link.is_symlink() and not link.exists():
            link.unlink()
