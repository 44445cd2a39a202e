"""Documents with known content for the fidelity benchmark (bench/fidelity.py) and tests:
PDFs generated here (made with PyMuPDF, nothing to commit) and files of the shared
corpus, each with the checks (bench/fidelity_checks.py) a faithful Markdown passes.

To add a kind of page: write a function that returns a ``Document`` and decorate it
with ``@generated``; ``all_documents`` picks it up. Corpus files get their checks in
``CORPUS_CHECKS`` (checks written from what the page shows, not from any engine's
output).
"""

import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pymupdf

from bench.fidelity_checks import Absent, Check, Heading, Order, Present, TableCell

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("DOTSOCR_CORPUS", REPO.parent / "shared" / "corpus" / "sample-files"))
A4 = pymupdf.paper_rect("a4")


@dataclass(frozen=True)
class Document:
    name: str
    pdf: bytes
    checks: list[Check]
    source: str = "generated"  # or "corpus"
    max_pages: int | None = None  # read only the first pages of a long corpus file


GENERATED: list[Callable[[], Document]] = []


def generated(builder: Callable[[], Document]) -> Callable[[], Document]:
    """Register a builder of a generated document."""
    GENERATED.append(builder)
    return builder


def pdf_bytes(document: pymupdf.Document) -> bytes:
    out = io.BytesIO()
    document.save(out, garbage=3, deflate=True)
    return out.getvalue()


def html_page(document: pymupdf.Document, body: str, rect: pymupdf.Rect | None = None) -> pymupdf.Page:
    page = document.new_page(width=A4.width, height=A4.height)
    page.insert_htmlbox(rect or pymupdf.Rect(72, 72, A4.width - 72, A4.height - 72), body)
    return page


# --- ordinary pages -------------------------------------------------------------------


@generated
def headings_and_lists() -> Document:
    document = pymupdf.open()
    html_page(
        document,
        """
        <h1>Annual Maintenance Report</h1>
        <h2>1 Scope of the inspection</h2>
        <p>The inspection covered every pump station of the northern district in March.</p>
        <ul><li>Bearings replaced at two stations</li><li>Valves tested under full load</li></ul>
        <h2>2 Next steps</h2>
        <ol><li>Order spare impellers</li><li>Schedule the autumn inspection</li></ol>
        <p>Questions go to the district engineer.</p>""",
    )
    return Document(
        "headings-and-lists",
        pdf_bytes(document),
        [
            Heading("Annual Maintenance Report"),
            Heading("1 Scope of the inspection"),
            Heading("2 Next steps"),
            Present("Bearings replaced at two stations"),
            Present("Valves tested under full load"),
            Order("Bearings replaced at two stations", "Valves tested under full load"),
            Order("Order spare impellers", "Schedule the autumn inspection"),
            Order("1 Scope of the inspection", "2 Next steps"),
            Order("Schedule the autumn inspection", "Questions go to the district engineer."),
        ],
    )


LEFT = [
    "Rivers carry sediment from the mountains to the plains every spring.",
    "The sediment settles where the current slows, building wide banks of sand.",
    "Farmers have used these banks for centuries because the soil is rich.",
]
RIGHT = [
    "Floods also bring danger, and towns along the river keep dikes in repair.",
    "Engineers measure the water level at twelve stations along the valley.",
    "Their readings are published every morning during the flood season.",
]


@generated
def two_columns() -> Document:
    document = pymupdf.open()
    page = html_page(document, "<h1>The River Valley</h1>", pymupdf.Rect(72, 60, A4.width - 72, 110))
    middle = A4.width / 2
    for rect, paragraphs in (
        (pymupdf.Rect(72, 120, middle - 12, 760), LEFT),
        (pymupdf.Rect(middle + 12, 120, A4.width - 72, 760), RIGHT),
    ):
        page.insert_htmlbox(rect, "".join(f"<p>{text}</p>" for text in paragraphs * 2))
    return Document(
        "two-columns",
        pdf_bytes(document),
        [
            Present(LEFT[0]),
            Present(RIGHT[2]),
            Order("The River Valley", LEFT[0]),
            Order(LEFT[0], LEFT[1]),
            Order(LEFT[1], LEFT[2]),
            Order(LEFT[2], RIGHT[0]),  # the left column is read to its end first
            Order(RIGHT[0], RIGHT[1]),
        ],
    )


SALES = [
    ["Region", "Q1", "Q2", "Q3"],
    ["North", "120", "131", "140"],
    ["South", "95", "102", "99"],
    ["West", "77", "80", "91"],
    ["East", "64", "70", "73"],
]


@generated
def ruled_table() -> Document:
    document = pymupdf.open()
    page = document.new_page(width=A4.width, height=A4.height)
    page.insert_text((72, 80), "Quarterly sales by region", fontsize=14, fontname="hebo")
    page.insert_text((72, 104), "The table lists sales in thousands of units.", fontsize=11)
    x0, y0, width, height = 72, 120, 110, 24
    for row in range(len(SALES) + 1):
        page.draw_line((x0, y0 + row * height), (x0 + width * len(SALES[0]), y0 + row * height))
    for column in range(len(SALES[0]) + 1):
        page.draw_line((x0 + column * width, y0), (x0 + column * width, y0 + height * len(SALES)))
    for row, cells in enumerate(SALES):
        for column, text in enumerate(cells):
            page.insert_text(
                (x0 + column * width + 6, y0 + row * height + 16),
                text,
                fontsize=11,
                fontname="hebo" if row == 0 else "helv",
            )
    page.insert_text((72, y0 + height * len(SALES) + 24), "Table 1: Sales per quarter.", fontsize=10)
    return Document(
        "ruled-table",
        pdf_bytes(document),
        [
            TableCell("Region", 0, 0),
            TableCell("Q3", 0, 3),
            TableCell("North", 1, 0),
            TableCell("102", 2, 2),
            TableCell("73", 4, 3),
            TableCell("West", 3, 0),
            Order("Quarterly sales by region", "Table 1: Sales per quarter."),
            Present("The table lists sales in thousands of units."),
        ],
    )


@generated
def footnotes() -> Document:
    document = pymupdf.open()
    page = html_page(
        document,
        """
        <h2>Water use in 2023</h2>
        <p>Households used less water than in any year since records began.<sup>1</sup>
        Industry used slightly more, mostly for cooling.<sup>2</sup></p>
        <p>The report recommends keeping the summer restrictions.</p>""",
        pymupdf.Rect(72, 72, A4.width - 72, 400),
    )
    page.draw_line((72, 740), (220, 740), width=0.5)
    page.insert_text((72, 754), "1 Measured at the household meters, not estimated.", fontsize=8)
    page.insert_text((72, 766), "2 Power stations report their own figures.", fontsize=8)
    return Document(
        "footnotes",
        pdf_bytes(document),
        [
            Present("Households used less water than in any year since records began."),
            Present("Measured at the household meters, not estimated."),
            Order(
                "The report recommends keeping the summer restrictions.",
                "Measured at the household meters, not estimated.",
            ),
            Order("Measured at the household meters", "Power stations report their own figures."),
        ],
    )


@generated
def pages_in_order() -> Document:
    document = pymupdf.open()
    for number, word in enumerate(("first", "second", "third"), start=1):
        page = document.new_page(width=A4.width, height=A4.height)
        page.insert_text((72, 90), f"Chapter {number}", fontsize=16, fontname="hebo")
        page.insert_text((72, 120), f"This is the {word} page of the report.", fontsize=11)
        page.insert_text((A4.width / 2, A4.height - 40), f"{number}", fontsize=9)
    return Document(
        "pages-in-order",
        pdf_bytes(document),
        [
            Order("This is the first page of the report.", "This is the second page of the report."),
            Order("This is the second page of the report.", "This is the third page of the report."),
            Present("Chapter 3"),
            Absent("Chapter 4"),
        ],
    )


# --- the shared corpus ----------------------------------------------------------------

LOREM = "Lorem ipsum dolor sit amet, consetetur sadipscing elitr"
CORPUS_CHECKS: dict[str, list[Check]] = {
    "001-trivial/minimal-document.pdf": [Present(LOREM), Present("no sea takimata sanctus est")],
    "002-trivial-libre-office-writer/002-trivial-libre-office-writer.pdf": [Present(LOREM)],
    "003-pdflatex-image/pdflatex-image.pdf": [
        Present("1 Your Chapter"),
        Order("1 Your Chapter", LOREM),
        Order(LOREM, "Stet clita kasd gubergren"),
    ],
    "004-pdflatex-4-pages/pdflatex-4-pages.pdf": [Present("Hello, here is some text without a meaning.")],
    "008-reportlab-inline-image/inline-image.pdf": [Present("Test")],
    "010-pdflatex-forms/pdflatex-forms.pdf": [Present("Name"), Present("Submit")],
    "011-google-doc-document/google-doc-document.pdf": [
        Present("Example document"),
        Order("Beautiful is better than ugly.", "Explicit is better than implicit."),
        Order("Simple is better than complex.", "Readability counts."),
    ],
    "012-libreoffice-form/libreoffice-form.pdf": [Present("Example for a Form"), Order("Gender:", "Nationality:")],
    "013-reportlab-overlay/reportlab-overlay.pdf": [
        Present("Name: Foo Bar"),
        Present("Fingerprint: asdfSa2123"),
        Order("Name: Foo Bar", "Signed:"),
    ],
    "015-arabic/habibi.pdf": [Present("habibi")],
    "016-libre-office-link/libre-office-link.pdf": [Present("This is a link to an awesome blog.")],
    "020-xmp/output_with_metadata_pymupdf.pdf": [Present("Hello, World!")],
    "021-pdfa/crazyones-pdfa.pdf": [
        Present("The Crazy Ones"),
        Present("The misfits. The rebels. The troublemakers."),
        Order("The Crazy Ones", "October 14, 1998"),
    ],
    "022-pdfkit/pdfkit.pdf": [Present("Foo: bar"), Present("ABC: DEF")],
    "024-annotations/annotated_pdf.pdf": [Present("Some text."), Order("Line 1", "Line 2")],
    "026-latex-multicolumn/multicolumn.pdf": [
        Order("Two-Column Document with Lorem Ipsum", "Abstract"),
        Order("congue non, volutpat", "pellentesque ante. Phasellus adipiscing semper elit."),
    ],
    "009-pdflatex-geotopo/GeoTopo-komprimiert.pdf": [Present("Geometrie und Topologie"), Present("Martin Thoma")],
}
CORPUS_MAX_PAGES = {"009-pdflatex-geotopo/GeoTopo-komprimiert.pdf": 2, "026-latex-multicolumn/multicolumn.pdf": 1}


def corpus_documents(root: Path = CORPUS) -> list[Document]:
    """The corpus files that have checks and are present under ``root``."""
    return [
        Document(
            relative, (root / relative).read_bytes(), checks, source="corpus", max_pages=CORPUS_MAX_PAGES.get(relative)
        )
        for relative, checks in CORPUS_CHECKS.items()
        if (root / relative).is_file()
    ]


def all_documents(*, corpus: Path | None = CORPUS) -> list[Document]:
    import bench.fidelity_issue15  # noqa: F401  (registers the issue-15 page kinds; it imports this module)

    documents = [build() for build in GENERATED]
    return documents + (corpus_documents(corpus) if corpus else [])
