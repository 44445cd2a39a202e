"""The fidelity benchmark's checks (bench/fidelity_checks.py) judge Markdown correctly:
each passes on a faithful Markdown and fails on a wrong one, and the generated
documents (bench/documents.py) are readable PDFs whose own text layer holds what their
checks look for."""

import pymupdf
import pytest

from bench.documents import GENERATED, all_documents
from bench.fidelity_checks import Absent, Heading, Order, Present, TableCell, normalize, tables

GOOD = """# Annual Report

The misﬁts. “The rebels.” The infor-
mation is **here**.

<table><tr><th>Region</th><th>Q1</th></tr><tr><td>North</td><td colspan="2">120</td></tr></table>

|Name|Score|
|---|---|
|Ada|9|
"""


@pytest.mark.parametrize(
    "check, good, bad",
    [
        (Present('The misfits. "The rebels."'), GOOD, GOOD.replace("rebels", "rebel")),
        (Present("information is here"), "The information is **here**.", GOOD),
        (Absent("0DLQWHQDQFH"), GOOD, GOOD + "\n0DLQWHQDQFH 5HSRUW"),
        (Order("Annual Report", "The rebels"), GOOD, "The rebels.\n\n# Annual Report"),
        (Order("North", "Ada"), GOOD, "|Ada|9|\n\nNorth"),
        (TableCell("120", 1, 1), GOOD, GOOD.replace('colspan="2">120', ">121")),
        (TableCell("9", 1, 1), GOOD, GOOD.replace("|Ada|9|", "|9|Ada|")),
        (TableCell("Region", 0, 0), GOOD, "Region Q1 North 120"),
        (Heading("Annual Report"), GOOD, GOOD.replace("# Annual Report", "Annual Report")),
    ],
)
def test_a_check_passes_on_faithful_markdown_and_fails_on_a_wrong_one(check, good, bad):
    assert check.passes(good)
    assert not check.passes(bad)


def test_an_order_check_fails_when_either_text_is_missing():
    assert not Order("Annual Report", "nowhere").passes(GOOD)
    assert not Order("nowhere", "Annual Report").passes(GOOD)


def test_tables_are_read_from_html_and_pipes():
    assert tables(GOOD) == [[["Region", "Q1"], ["North", "120", "120"]], [["Name", "Score"], ["Ada", "9"]]]


def test_normalize_folds_markup_ligatures_and_quotes_but_keeps_hyphens():
    assert normalize("## **Fine** ﬁsh  “x”\n<br>tail-end") == 'Fine fish "x" tail-end'


# The ordinary pages only: the issue-15 pages (bench/fidelity_issue15.py) have text layers that
# do not say what the page shows, on purpose.
ORDINARY = [build for build in GENERATED if build.__module__ == "bench.documents"]


@pytest.mark.parametrize("build", ORDINARY, ids=lambda build: build.__name__)
def test_generated_documents_hold_what_their_checks_look_for(build):
    document = build()
    with pymupdf.open(stream=document.pdf, filetype="pdf") as pdf:
        text = "\n".join(page.get_text() for page in pdf)
    for check in document.checks:
        if isinstance(check, Present):
            assert normalize(check.text) in normalize(text), check
        if isinstance(check, Absent):
            assert normalize(check.text) not in normalize(text), check


def test_every_document_has_checks_and_a_unique_name():
    documents = all_documents()
    assert all(document.checks for document in documents)
    assert len({document.name for document in documents}) == len(documents)


def test_every_kind_of_issue_15_has_a_document_with_checks():
    names = {document.name for document in all_documents(corpus=None)}
    kinds = {
        "shifted-tounicode",
        "type3-font",
        "invisible-ocr-layer",
        "rotate-90",
        "turned-scan-90",
        "hebrew-visual-order",
        "tategaki",
        "filled-form",
        "hyphens",
        "table-beside-1200-markers",
    }
    assert {f"issue15-{kind}" for kind in kinds} <= names
