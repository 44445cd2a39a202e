"""Recover the pages of a damaged PDF with qpdf (pikepdf). Runs alone, in a child process.

``python -I qpdf_repair.py SOURCE TARGET SCRATCH MAX_PAGES MEMORY_MB CPU_SECONDS OUTPUT_BYTES`` limits its
own address space, CPU time and file size with ``setrlimit`` (the parent may have
threads, so it cannot do so between fork and exec), then writes the repaired PDF to
TARGET (using SCRATCH on the way; the parent removes it) and prints
one JSON line: ``{"pages": int, "page_tree_rebuilt": bool}`` (exit 0), or
``{"error": str, "refused": bool}`` (exit 1) when nothing can be recovered (``refused``:
the error is a reason to give the user, e.g. the file is encrypted or has more than
MAX_PAGES pages). It imports only the standard
library and pikepdf, so it runs without the project on ``sys.path``. With those limits
and the parent's (``repair.py``) wall-clock timeout, a hostile file can cost a repair
attempt, never the process that asked for it.

Two routes, the first that yields pages wins:

1. qpdf's own repair (``attempt_recovery``): rebuilds a lost or broken cross-reference
   table and trailer by scanning the file for objects.
2. A new page tree: when the tree's root is gone, qpdf refuses the file. The page
   objects that survive are found by scanning the raw bytes for ``N G obj`` headers
   whose dictionary says ``/Type /Page``; a new catalog and page tree listing them (in
   the order they appear in the file) and a fresh cross-reference table are appended to
   a copy of the file, which qpdf then reads and writes out clean. Attributes a page
   inherited from a surviving ancestor (``/Resources``, ``/MediaBox``...) are copied onto
   it first. Pages stored inside object streams are not found this way.
"""

import json
import mmap
import re
import resource
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pikepdf

WHITE = rb"[\0\t\n\f\r ]"  # PDF 32000-1, 7.2.2: the six white-space characters
DELIMITER = rb"[\0\t\n\f\r /<>\[\]()%{}]"
OBJECT_HEADER = re.compile(
    rb"(?<![0-9])([0-9]{1,10})" + WHITE + rb"{1,8}([0-9]{1,5})" + WHITE + rb"{1,8}obj(?=" + DELIMITER + b")"
)
PAGE_TYPE = re.compile(rb"/Type" + WHITE + rb"*/Page(?=" + DELIMITER + b")")
ENCRYPTED = re.compile(rb"/Encrypt" + WHITE + rb"*(?:[0-9]+" + WHITE + rb"+[0-9]+" + WHITE + rb"+R|<<)")
# How far past an object header its dictionary is looked for: a page dictionary is a few
# hundred bytes; the bound keeps the scan linear in the file size whatever the file holds.
DICTIONARY_WINDOW = 64 * 1024
# PDF 32000-1, Annex C.2: the largest object number a conforming file uses.
MAX_OBJECT_NUMBER = 8_388_607
# Inheritable page attributes (PDF 32000-1, 7.7.3.4) and how far up a tree they are sought.
INHERITABLE = ("/Resources", "/MediaBox", "/CropBox", "/Rotate")
MAX_TREE_DEPTH = 64
ENCRYPTED_REASON = "The PDF is encrypted; a password is needed to open it."


class NothingRecovered(Exception):
    """No page could be recovered; the message says why."""


class Refused(NothingRecovered):
    """The file must be refused for a reason of its own; the message is for the user."""


@dataclass
class ObjectScan:
    """Where each object's last definition starts (the last one wins, as with an
    incremental update), and the page objects in the order they first appear."""

    offsets: dict[int, tuple[int, int]] = field(default_factory=dict)  # number -> (generation, offset)
    pages: list[int] = field(default_factory=list)
    page_set: set[int] = field(default_factory=set)
    max_pages: int = 0
    encrypted: bool = False


def main(argv: list[str]) -> int:
    source, target, scratch = Path(argv[1]), Path(argv[2]), Path(argv[3])
    max_pages, memory_mb, cpu_seconds, output_bytes = (int(value) for value in argv[4:8])
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb * 1024 * 1024,) * 2)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds,) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (output_bytes,) * 2)
    try:
        result = repair(source, target, scratch, max_pages)
    except NothingRecovered as error:
        print(json.dumps({"error": str(error), "refused": isinstance(error, Refused)}))
        return 1
    print(json.dumps(result))
    return 0


def repair(source: Path, target: Path, scratch: Path, max_pages: int) -> dict:
    pages = structural_repair(source, target, max_pages)
    if pages:
        return {"pages": pages, "page_tree_rebuilt": False}
    return {"pages": rebuild_page_tree(source, target, scratch, max_pages), "page_tree_rebuilt": True}


def too_many_pages(max_pages: int) -> Refused:
    return Refused(f"The PDF has more than {max_pages} pages; the limit is {max_pages}.")


def structural_repair(source: Path, target: Path, max_pages: int) -> int:
    """qpdf's repair of the cross-reference table; the pages written, 0 when qpdf cannot
    open the file or finds no page in it."""
    try:
        with pikepdf.open(source, attempt_recovery=True) as pdf:
            count = len(pdf.pages)
            if count > max_pages:
                raise too_many_pages(max_pages)
            if count:
                save(pdf, target)
            return count
    except pikepdf.PasswordError:
        raise Refused(ENCRYPTED_REASON) from None
    except Refused:
        raise
    except Exception:  # whatever qpdf raises on this file, this route is closed: try the next
        return 0


def rebuild_page_tree(source: Path, target: Path, scaffold: Path, max_pages: int) -> int:
    """A new page tree over the page objects that survive; the pages written."""
    with open(source, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        scan = scan_objects(data, max_pages)
        header_at = max(0, data.find(b"%PDF-", 0, 1024))
    if scan.encrypted:
        raise Refused(ENCRYPTED_REASON)
    if not scan.pages:
        raise NothingRecovered("no page object survives in the file")
    try:
        write_scaffold(source, scaffold, scan, header_at)
        with pikepdf.open(scaffold, inherit_page_attributes=False) as pdf:
            adopt_pages(pdf)
            count = len(pdf.pages)
            if not count:
                raise NothingRecovered("the page objects in the file are damaged too")
            save(pdf, target)
            return count
    except NothingRecovered:
        raise
    except Exception as error:
        raise NothingRecovered(f"qpdf cannot read the rebuilt file: {error}") from None
    finally:
        scaffold.unlink(missing_ok=True)


def scan_objects(data, max_pages: int) -> ObjectScan:
    """Every ``N G obj`` header in the file, skipping stream data. Linear in the file size:
    a header's dictionary is sought only up to the next header (and DICTIONARY_WINDOW),
    and the end of stream data is searched for at most once past any position. Raises
    Refused as soon as more than ``max_pages`` page objects are found."""
    scan, streams_end = ObjectScan(max_pages=max_pages), True
    scan.encrypted = ENCRYPTED.search(data) is not None
    header = OBJECT_HEADER.search(data)
    while header is not None:
        body = header.end()
        following = OBJECT_HEADER.search(data, body)
        limit = min(following.start() if following else len(data), body + DICTIONARY_WINDOW)
        endobj, stream_at = data.find(b"endobj", body, limit), data.find(b"stream", body, limit)
        dictionary_end = min((index for index in (endobj, stream_at) if index >= 0), default=limit)
        record(scan, header, data[body:dictionary_end])
        if stream_at >= 0 and dictionary_end == stream_at and streams_end:
            # Skip the stream's data: bytes in it may look like object headers.
            end = data.find(b"endstream", stream_at + 6)
            streams_end = end >= 0  # none here means none further on: never search again
            if streams_end and following is not None and following.start() < end:
                following = OBJECT_HEADER.search(data, end + 9)
        header = following
    return scan


def record(scan: ObjectScan, header: re.Match, dictionary: bytes) -> None:
    number, generation = int(header[1]), int(header[2])
    if not 0 < number <= MAX_OBJECT_NUMBER:
        return
    scan.offsets[number] = (generation, header.start())
    if PAGE_TYPE.search(dictionary) and number not in scan.page_set:
        scan.pages.append(number)
        scan.page_set.add(number)
        if len(scan.pages) > scan.max_pages:
            raise too_many_pages(scan.max_pages)


def write_scaffold(source: Path, scaffold: Path, scan: ObjectScan, header_at: int) -> None:
    """A copy of the file with a new catalog and page tree, and a cross-reference table
    of every object found, appended. Offsets count from the ``%PDF-`` header, as readers
    do when junk precedes it."""
    shutil.copyfile(source, scaffold)
    tree, catalog = max(scan.offsets) + 1, max(scan.offsets) + 2
    kids = b" ".join(b"%d %d R" % (number, scan.offsets[number][0]) for number in scan.pages)
    offsets = {number: (generation, at - header_at) for number, (generation, at) in scan.offsets.items()}
    with open(scaffold, "ab") as out:
        out.write(b"\n")
        offsets[tree] = (0, out.tell() - header_at)
        out.write(b"%d 0 obj\n<< /Type /Pages /Kids [%s] /Count %d >>\nendobj\n" % (tree, kids, len(scan.pages)))
        offsets[catalog] = (0, out.tell() - header_at)
        out.write(b"%d 0 obj\n<< /Type /Catalog /Pages %d 0 R >>\nendobj\n" % (catalog, tree))
        xref_at = out.tell() - header_at
        out.write(xref_table(offsets))
        out.write(b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (catalog + 1, catalog, xref_at))


def xref_table(offsets: dict[int, tuple[int, int]]) -> bytes:
    """A classic cross-reference table with one subsection per run of consecutive numbers,
    so its size follows the objects found, not the largest number."""
    lines, numbers = [b"xref\n0 1\n0000000000 65535 f \n"], sorted(offsets)
    run_start = 0
    for index, number in enumerate(numbers):
        if index + 1 == len(numbers) or numbers[index + 1] != number + 1:
            run = numbers[run_start : index + 1]
            lines.append(b"%d %d\n" % (run[0], len(run)))
            lines.extend(b"%010d %05d n \n" % (offsets[n][1], offsets[n][0]) for n in run)
            run_start = index + 1
    return b"".join(lines)


def adopt_pages(pdf: pikepdf.Pdf) -> None:
    """Make each page a child of the new tree, keeping what it inherited from the old one."""
    tree = pdf.Root.Pages
    for page in tree.Kids:
        if not isinstance(page, pikepdf.Dictionary):
            continue
        ancestor, depth = page.get("/Parent"), 0
        while isinstance(ancestor, pikepdf.Dictionary) and depth < MAX_TREE_DEPTH:
            for key in INHERITABLE:
                if key not in page and key in ancestor:
                    page[key] = ancestor[key]
            ancestor, depth = ancestor.get("/Parent"), depth + 1
        page.Parent = tree


def save(pdf: pikepdf.Pdf, target: Path) -> None:
    # Streams are copied as they are, never decoded: a Flate bomb stays a few compressed
    # bytes here, and the page budget of workers/pdf.py judges it where it is drawn.
    pdf.save(
        target,
        stream_decode_level=pikepdf.StreamDecodeLevel.none,
        compress_streams=False,
        object_stream_mode=pikepdf.ObjectStreamMode.preserve,
        fix_metadata_version=False,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv))
