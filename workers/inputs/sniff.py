"""What a file is, from its bytes (libmagic through python-magic), never from its name alone.

The name only refines what the bytes cannot tell apart: plain text that is Markdown (or
CSV libmagic did not recognise) and old binary Office files libmagic reports as a bare
OLE container.
"""

import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePath

import magic

from workers.inputs.errors import InvalidInput

# The PDF header may follow a little junk; readers look in the first 1024 bytes (as
# workers/pdf.py does). libmagic only recognises it at offset 0.
PDF_MAGIC = b"%PDF-"
MAGIC_WINDOW = 1024
ZIP_MAGIC = b"PK\x03\x04"  # a local file header (APPNOTE.TXT 4.3.7)


@dataclass(frozen=True)
class InputType:
    kind: str  # "pdf", "image" or "office" (Office and text documents: LibreOffice)
    content_type: str  # the MIME type recorded on the document
    label: str  # what users call it: "PNG", "DOCX"
    suffix: str  # the extension LibreOffice needs to pick its import filter


def _types(kind: str, rows: str) -> dict[str, InputType]:
    table = {}
    for row in rows.strip().splitlines():
        label, suffix, content_type = row.split()
        table[content_type] = InputType(kind, content_type, label, suffix)
    return table


TYPES: dict[str, InputType] = {
    **_types("pdf", "PDF .pdf application/pdf"),
    **_types(
        "image",
        """
        PNG .png image/png
        JPEG .jpg image/jpeg
        TIFF .tif image/tiff
        WebP .webp image/webp
        BMP .bmp image/bmp
        GIF .gif image/gif
    """,
    ),
    **_types(
        "office",
        """
        DOCX .docx application/vnd.openxmlformats-officedocument.wordprocessingml.document
        DOC .doc application/msword
        ODT .odt application/vnd.oasis.opendocument.text
        RTF .rtf text/rtf
        PPTX .pptx application/vnd.openxmlformats-officedocument.presentationml.presentation
        PPT .ppt application/vnd.ms-powerpoint
        ODP .odp application/vnd.oasis.opendocument.presentation
        XLSX .xlsx application/vnd.openxmlformats-officedocument.spreadsheetml.sheet
        XLS .xls application/vnd.ms-excel
        ODS .ods application/vnd.oasis.opendocument.spreadsheet
        TXT .txt text/plain
        CSV .csv text/csv
        HTML .html text/html
        Markdown .md text/markdown
    """,
    ),
}
SUPPORTED = ", ".join(input_type.label for input_type in TYPES.values())
# Other names libmagic gives the same formats.
ALIASES = {
    "image/x-ms-bmp": "image/bmp",
    "application/rtf": "text/rtf",
    "text/x-markdown": "text/markdown",
    "application/csv": "text/csv",
    "application/xhtml+xml": "text/html",
}
# Members that tell the Office Open XML formats apart inside a ZIP (ECMA-376 part 1).
OOXML_PARTS = {
    "word/document.xml": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xl/workbook.xml": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "ppt/presentation.xml": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}
# A bare OLE2 container (Compound File Binary): DOC, XLS and PPT all are one, and so are
# MSI installers and Outlook messages; the extension says which Office file it claims to be.
OLE_CONTAINERS = {"application/x-ole-storage", "application/CDFV2", "application/vnd.ms-office"}
OLE_BY_SUFFIX = {
    ".doc": "application/msword",
    ".xls": "application/vnd.ms-excel",
    ".ppt": "application/vnd.ms-powerpoint",
}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
# The extensions people give files of these types.
INPUT_SUFFIXES = frozenset({*(t.suffix for t in TYPES.values()), ".jpeg", ".tiff", ".htm", ".markdown"})
# For a file picker's ``accept``: every type's MIME type and extension.
FILE_PICKER_ACCEPT = ",".join([*TYPES, *sorted(INPUT_SUFFIXES)])


class UnsupportedType(InvalidInput):
    """The bytes are of a type the service does not convert (HTTP 415)."""


def type_for(content_type: str) -> InputType:
    """The input type recorded on a document as ``content_type``. KeyError if unknown."""
    return TYPES[content_type]


def sniff(path: Path, *, name: str = "") -> InputType:
    """The type of the file at ``path`` from its content; ``name`` (the client's file name)
    only refines text and OLE files. Raises UnsupportedType naming the supported types."""
    with open(path, "rb") as handle:
        if PDF_MAGIC in handle.read(MAGIC_WINDOW):
            return TYPES["application/pdf"]
    detected = magic.from_file(str(path), mime=True)
    content_type = refine(path, ALIASES.get(detected, detected), PurePath(name).suffix.lower())
    if content_type in TYPES:
        return TYPES[content_type]
    raise UnsupportedType(f"Unsupported file type ({detected}). Supported types: {SUPPORTED}.")


def refine(path: Path, content_type: str, suffix: str) -> str:
    if content_type in ("application/zip", "application/octet-stream") and starts_with(path, ZIP_MAGIC):
        # libmagic names OOXML only when its first member is [Content_Types].xml.
        return office_zip_type(path) or content_type
    if content_type in OLE_CONTAINERS:
        return OLE_BY_SUFFIX.get(suffix, content_type)
    if content_type.startswith("text/") and content_type not in TYPES or content_type == "text/plain":
        # Plain text of any flavour (source code, TeX, logs) is converted as text; only
        # the extension can say that it is Markdown or comma-separated values.
        if suffix in MARKDOWN_SUFFIXES:
            return "text/markdown"
        return "text/csv" if suffix == ".csv" else "text/plain"
    return content_type


def starts_with(path: Path, prefix: bytes) -> bool:
    with open(path, "rb") as handle:
        return handle.read(len(prefix)) == prefix


def office_zip_type(path: Path) -> str | None:
    """The Office type of a ZIP archive from its members; None for any other ZIP."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "mimetype" in names:  # OpenDocument: the first member names the type (ODF 1.2, 3.3)
                declared = archive.read("mimetype")[:100].decode("ascii", "replace").strip()
                return declared if declared in TYPES else None
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    return next((content_type for part, content_type in OOXML_PARTS.items() if part in names), None)
