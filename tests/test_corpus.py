"""Every PDF of the shared sample corpus (py-pdf/sample-files, CC BY-SA 4.0, read in
place, never copied into this repository) through the real pipeline with `auto` on CPU.

A file converts, or is refused with a reason a user understands; the Markdown of each
page read from its text layer contains lines PyMuPDF itself reads on that page.
"""

import re
import unicodedata
from pathlib import Path

import pymupdf
import pytest

from conversions import services
from conversions.exceptions import InvalidDocument
from conversions.models import Conversion
from tests.conftest import CORPUS, ENCRYPTED, FOUR_PAGES, published, stored, upload_of
from workers import pipeline

NO_PAGES = CORPUS / "017-unreadable-meta-data" / "unreadablemetadata.pdf"
REFUSED = {ENCRYPTED: "password"}
# Damaged files MuPDF reads no page of, repaired at upload (tests/test_repair.py):
# the pages recovered and a word of the first.
REPAIRED = {NO_PAGES: (3, "Wirewound")}
CORPUS_PDFS = sorted(CORPUS.rglob("*.pdf"))
CONVERTIBLE = [path for path in CORPUS_PDFS if path not in REFUSED and path not in REPAIRED]
# The largest corpus file (40 s on the CPU engines) runs with the slow suites (`make bench`).
SLOW = {"GeoTopo-komprimiert.pdf"}
# A page with this much text has a real text layer: auto must read it, not OCR it.
REAL_TEXT_CHARS = 200
LINES_PER_PAGE = 3
TAG = re.compile(r"</?[a-zA-Z][^<>]*>")  # an HTML tag, not "a < b > c" in a formula
# PyMuPDF's plain text with ligatures expanded, as the engine reads pages: MuPDF loses
# the space after a kept "ﬀ" glyph ("Begriﬀder"), which is not a fault of the Markdown.
PLAIN_TEXT_FLAGS = pymupdf.TEXTFLAGS_TEXT & ~pymupdf.TEXT_PRESERVE_LIGATURES


def corpus_id(path: Path) -> str:
    return str(path.relative_to(CORPUS))


def words_only(text: str) -> str:
    """Letters and digits in order: list bullets, Markdown marks, HTML tags, punctuation
    and spacing may differ between the text layer and the Markdown; the words may not."""
    text = unicodedata.normalize("NFKC", TAG.sub(" ", text))
    return " ".join(re.sub(r"[\W_]+", " ", text).split())


def sample_lines(page: pymupdf.Page) -> list[str]:
    """A few lines of the page as PyMuPDF reads them: first, middle and last."""
    lines = page.get_text("text", flags=PLAIN_TEXT_FLAGS).splitlines()
    eligible = [
        line
        for index, line in enumerate(lines)
        if len(words_only(line).split()) >= 2
        and len(words_only(line)) >= 8
        # a hyphenated word is joined across lines in the Markdown
        and not line.rstrip().endswith("-")
        and not (index and lines[index - 1].rstrip().endswith("-"))
    ]
    picks = sorted({0, len(eligible) // 2, len(eligible) - 1}) if eligible else []
    return [eligible[index] for index in picks][:LINES_PER_PAGE]


def text_chars(page: pymupdf.Page) -> int:
    return len("".join(page.get_text("text", flags=PLAIN_TEXT_FLAGS).split()))


@pytest.fixture
def cpu_only(settings):
    settings.DOTSOCR_CONFIGURED = False  # auto = text layer or RapidOCR, per page


def test_the_corpus_is_there_with_its_refused_files():
    assert len(CONVERTIBLE) >= 25
    with pymupdf.open(ENCRYPTED) as encrypted, pymupdf.open(NO_PAGES) as empty:
        assert encrypted.needs_pass and empty.page_count == 0


@pytest.mark.parametrize(
    "path",
    [pytest.param(path, marks=pytest.mark.slow) if path.name in SLOW else path for path in CONVERTIBLE],
    ids=corpus_id,
)
def test_corpus_pdf_converts_with_auto_on_cpu_and_keeps_its_text(path, make_conversion, cpu_only, settings):
    conversion = make_conversion(path, engine="auto")
    assert pipeline.run_conversion(str(conversion.pk)) == "completed", Conversion.objects.get(pk=conversion.pk).error
    done = Conversion.objects.get(pk=conversion.pk)
    results = {page.page_no: page for page in done.pages.all()}
    with pymupdf.open(path) as document:
        assert sorted(results) == list(range(document.page_count))
        for page in document:
            result = results[page.number]
            if text_chars(page) >= REAL_TEXT_CHARS:
                assert result.engine == "textlayer", f"page {page.number + 1} has a text layer"
            if result.engine != "textlayer":
                continue
            markdown = words_only(result.markdown)
            for line in sample_lines(page):
                assert words_only(line) in markdown, f"page {page.number + 1}: {line!r} missing"
    combined = (published(done) / f"{done.document.stem}.md").read_text(encoding="utf-8")
    assert words_only(combined) == words_only("\n\n".join(results[number].markdown for number in sorted(results)))


@pytest.mark.parametrize("path", sorted(REPAIRED), ids=corpus_id)
def test_damaged_corpus_pdf_is_repaired_and_converts_the_pages_that_survive(path, make_conversion, cpu_only):
    pages, first_words = REPAIRED[path]
    conversion = make_conversion(path, engine="auto")
    assert conversion.document.repaired and conversion.document.page_count == pages
    assert pipeline.run_conversion(str(conversion.pk)) == "completed", Conversion.objects.get(pk=conversion.pk).error
    results = list(Conversion.objects.get(pk=conversion.pk).pages.order_by("page_no"))
    assert [result.page_no for result in results] == list(range(pages))
    assert first_words in results[0].markdown


@pytest.mark.parametrize("path", sorted(REFUSED), ids=corpus_id)
def test_unconvertible_corpus_pdf_is_refused_with_a_reason(path, owner, settings):
    with pytest.raises(InvalidDocument) as refused:
        services.create_document(owner=owner, upload=upload_of(path), max_pages=settings.MAX_PAGES)
    assert REFUSED[path] in refused.value.detail.lower()
    assert list(settings.UPLOAD_DIR.iterdir()) == []


@pytest.mark.parametrize("path", sorted(REFUSED), ids=corpus_id)
def test_unconvertible_pdf_reaching_a_worker_fails_the_job_with_the_reason(path, make_conversion, cpu_only, settings):
    """A stored file replaced after its upload was checked still fails cleanly."""
    conversion = make_conversion(FOUR_PAGES)
    stored(conversion.document.stored_path).write_bytes(path.read_bytes())
    assert pipeline.run_conversion(str(conversion.pk)) == "failed"
    failed = Conversion.objects.get(pk=conversion.pk)
    assert failed.status == "failed" and REFUSED[path] in failed.error.lower()
    assert not (settings.OUTPUT_DIR / str(conversion.pk)).exists()
