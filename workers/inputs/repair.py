"""Damaged PDFs: recover the pages that can be read, with qpdf, within bounds. No Django here.

When MuPDF cannot open a file or finds no page in it (``UnreadablePdf``), qpdf gets a
try (``qpdf_repair.py``: its own cross-reference repair, then a page tree rebuilt from
the page objects that survive). The repaired file is checked by MuPDF like any upload;
the original is left untouched. Encrypted files, page trees that loop or lie about their
size, and truncated files are refused before any repair (``workers/pdf.py``).

The repair runs in a child process with a wall-clock limit, an address-space limit and
a limit on the size of what it writes, so a hostile file (a bomb in an object stream,
millions of fake objects) costs one bounded attempt and is then refused.
"""

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pymupdf

from workers.pdf import InvalidPdf, PdfInfo, UnreadablePdf, inspect_pdf, open_pdf

logger = logging.getLogger(__name__)

CHILD = Path(__file__).with_name("qpdf_repair.py")
# qpdf repairs a few MB in well under a second (the 2.8 MB corpus file: 0.3 s of CPU);
# these bound a hostile file, not a real one.
REPAIR_SECONDS = 30
REPAIR_MEMORY_MB = 1024
# The repaired file copies the original's streams as they are, so it is about as large.
OUTPUT_SLACK_MB = 64
# Page objects a rebuilt tree may hold when the caller sets no limit (the worker: the
# file was counted at upload); uploads pass MAX_PAGES.
DEFAULT_MAX_PAGES = 100_000


class RepairFailed(Exception):
    """The repair ran past its bounds or crashed; the message says which."""


class NothingToRecover(Exception):
    """The repair found no page to recover; the message says why (for the logs)."""


@dataclass(frozen=True)
class RepairOutcome:
    pages: int
    page_tree_rebuilt: bool

    @property
    def note(self) -> str:
        """What was recovered, for the document, the job's message and the admin."""
        recovered = f"{self.pages} page{'' if self.pages == 1 else 's'} recovered"
        if self.page_tree_rebuilt:
            return f"{recovered}; the page tree was damaged"
        return f"{recovered}; the file's structure was damaged"


def inspect_or_repair(
    path: Path, repaired: Path, *, max_pages: int = DEFAULT_MAX_PAGES
) -> tuple[PdfInfo, RepairOutcome | None]:
    """``inspect_pdf`` of ``path``; when MuPDF cannot read it, of a repair written to
    ``repaired`` (then the outcome too). Raises InvalidPdf with the first reason when
    nothing can be recovered, or the repair's own reason (encrypted, more than
    ``max_pages`` pages); ``repaired`` exists only when a repair is returned."""
    try:
        return inspect_pdf(path), None
    except UnreadablePdf as unreadable:
        outcome = repair_or_refuse(path, repaired, unreadable, max_pages=max_pages)
    try:
        return inspect_pdf(repaired), outcome
    except InvalidPdf:
        repaired.unlink(missing_ok=True)
        raise


@contextmanager
def open_or_repair(path: Path, repaired: Path) -> Iterator[tuple[pymupdf.Document, RepairOutcome | None]]:
    """``path`` open for reading, with None; when MuPDF cannot read it, the repair written
    to ``repaired``, open, with its outcome. For the worker's open step: one open of a
    file that was inspected at upload, where ``inspect_or_repair`` does more. Raises
    InvalidPdf as ``inspect_or_repair`` does; an error of the caller's block is not taken
    for an unreadable file."""
    with ExitStack() as opened:
        try:
            document, outcome = opened.enter_context(open_pdf(path)), None
        except UnreadablePdf as unreadable:
            outcome = repair_or_refuse(path, repaired, unreadable, max_pages=DEFAULT_MAX_PAGES)
            try:
                document = opened.enter_context(open_pdf(repaired))
            except InvalidPdf:
                repaired.unlink(missing_ok=True)
                raise
        yield document, outcome


def repair_or_refuse(path: Path, repaired: Path, unreadable: UnreadablePdf, *, max_pages: int) -> RepairOutcome:
    """The repair's outcome; else MuPDF's reason stands, unless the repair refused the
    file for a reason of its own (InvalidPdf)."""
    try:
        outcome = repair_pdf(path, repaired, max_pages=max_pages)
    except (RepairFailed, NothingToRecover) as failure:
        logger.warning("repair of %s recovered nothing: %s", path.name, failure)
        raise unreadable from None
    logger.info("repaired %s: %s", path.name, outcome.note)
    return outcome


def repair_pdf(
    source: Path,
    target: Path,
    *,
    max_pages: int = DEFAULT_MAX_PAGES,
    seconds: float = REPAIR_SECONDS,
    memory_mb: int = REPAIR_MEMORY_MB,
) -> RepairOutcome:
    """Write a repaired copy of ``source`` to ``target`` with qpdf, in a bounded child.

    Raises NothingToRecover when no page can be recovered, InvalidPdf when the file is
    refused for a reason of its own (encrypted, more than ``max_pages`` pages),
    RepairFailed when the child runs past ``seconds``, ``memory_mb`` or the output
    bound, or crashes. ``target`` exists only when an outcome is returned.
    """
    scratch = target.with_name(f"{target.name}.scaffold")
    try:
        outcome = run_child(source, target, scratch, [max_pages, memory_mb, int(seconds) + 1], seconds=seconds)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    finally:
        scratch.unlink(missing_ok=True)
    return outcome


def run_child(source: Path, target: Path, scratch: Path, limits: list[int], *, seconds: float) -> RepairOutcome:
    output_bytes = 2 * source.stat().st_size + OUTPUT_SLACK_MB * 1024 * 1024
    arguments = [str(source), str(target), str(scratch), *(str(limit) for limit in [*limits, output_bytes])]
    try:
        finished = subprocess.run(
            [sys.executable, "-I", str(CHILD), *arguments], capture_output=True, timeout=seconds, check=False
        )
    except subprocess.TimeoutExpired:
        raise RepairFailed(f"the repair took longer than {seconds:g} s") from None
    answer = last_json_line(finished.stdout)
    if finished.returncode == 0 and "pages" in answer:
        return RepairOutcome(pages=int(answer["pages"]), page_tree_rebuilt=bool(answer["page_tree_rebuilt"]))
    if finished.returncode == 1 and "error" in answer:
        raise (InvalidPdf if answer.get("refused") else NothingToRecover)(answer["error"])
    stderr = finished.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
    raise RepairFailed(f"the repair process ended with code {finished.returncode}: {stderr[0][:300]}")


def last_json_line(stdout: bytes) -> dict:
    for line in reversed(stdout.decode("utf-8", "replace").splitlines()):
        try:
            answer = json.loads(line)
        except ValueError:
            continue
        if isinstance(answer, dict):
            return answer
    return {}
