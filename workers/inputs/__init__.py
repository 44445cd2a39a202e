"""Inputs other than PDF: what a file is (``sniff``), image frames as PDF pages
(``images``) and Office/text documents to PDF through LibreOffice (``office``).

No Django here. The pipeline turns every input into a PDF in the worker (``to_pdf``) and
then runs the one PDF path: same engines, outputs, progress and limits for every type.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from workers.inputs.errors import InvalidInput
from workers.inputs.sniff import InputType, UnsupportedType, sniff, type_for

__all__ = ["InputType", "InvalidInput", "OfficeOptions", "UnsupportedType", "sniff", "to_pdf", "type_for"]


@dataclass(frozen=True)
class OfficeOptions:
    soffice: str  # the LibreOffice program: a name on PATH or a path
    timeout_seconds: float
    interrupt: Callable[[], None] = field(default=lambda: None)  # raises to stop a conversion


def to_pdf(
    source: Path, input_type: InputType, scratch: Path, *, dpi: int, max_pixels: int, office: OfficeOptions
) -> Path:
    """``source`` as a PDF file inside ``scratch`` (a PDF is returned as it is).

    Images: one page per frame, sized so the page renders back at the image's own
    resolution at ``dpi``. Office and text: LibreOffice headless. Raises InvalidInput
    with a reason for the user.
    """
    from workers.inputs import images
    from workers.inputs import office as office_documents

    if input_type.kind == "pdf":
        return source
    if input_type.kind == "image":
        return images.image_to_pdf(source, scratch / "document.pdf", dpi=dpi, max_pixels=max_pixels)
    return office_documents.convert_to_pdf(
        source,
        input_type,
        scratch,
        soffice=office.soffice,
        timeout_seconds=office.timeout_seconds,
        interrupt=office.interrupt,
    )
