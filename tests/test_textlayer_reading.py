"""The text-layer engine reads pages as they are displayed (issue 15, kinds 3 to 7): turned
pages, right-to-left and vertical writing, form fields, hyphens at line ends, and pages
crowded with vector drawings. Inputs come from bench/reading_samples.py."""

import functools

import numpy
import pymupdf
import pytest

from bench import reading_samples as documents
from tests.conftest import CORPUS
from workers.ocr.layout import cells_to_markdown
from workers.ocr.textlayer import TextLayerEngine
from workers.ocr.textlayer_tables import MAX_TABLE_ITEMS, drawing_items, line_like
from workers.ocr.textlayer_words import DocumentWords
from workers.pdf import PdfPage


def read(data: bytes, page_number: int = 0, dpi: int = 200):
    """The cells of one page and the page itself (its document stays open with it)."""
    document = pymupdf.open("pdf", data)
    page = PdfPage(page=document[page_number], dpi=dpi)
    return TextLayerEngine().recognize(page, prompt_mode="prompt_layout_all_en").cells, page


def markdown(cells) -> str:
    return cells_to_markdown(cells, picture_link=lambda index, cell: f"{index}.jpg")


# --- kind 3: /Rotate ----------------------------------------------------------------------


@pytest.mark.parametrize("size", [documents.LETTER, (842, 595)], ids=["letter", "a4-landscape-mediabox"])
@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_turned_page_reads_in_displayed_order_with_boxes_on_the_rendered_words(rotation, size):
    labels = ("Alpha", "Bravo", "Charlie")
    cells, page = read(documents.rotated_report(rotation, labels=labels, size=size))
    firsts = [cell.text.split()[0] for cell in cells]
    assert firsts[:2] == ["#", "Alpha"] and cells[0].text == "# Quarterly Field Report"
    assert [word for word in firsts if word in labels] == list(labels)
    width, height = page.size_px
    pixels = numpy.frombuffer(page.render().samples, dtype=numpy.uint8).reshape(height, width, 3)
    for cell in cells:
        x0, y0, x1, y1 = cell.bbox
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height, (cell, page.size_px)
        assert pixels[y0:y1, x0:x1].min() < 128, f"no ink under {cell}"
    for label in labels:
        found = page.page.search_for(label)[0] * page.page.rotation_matrix * page.zoom
        cell = next(cell for cell in cells if cell.text.startswith(label))
        assert inside(found, cell.bbox), (label, found, cell.bbox)


def test_rendered_page_of_the_issue_sample_is_2200_by_1700():
    cells, page = read(documents.rotated_report(90))
    assert page.size_px == (2200, 1700)
    labels = [cell.text.split()[0] for cell in cells if cell.text.split()[0] in ("Alpha", "Bravo", "Charlie")]
    assert cells[0].category == "Title" and labels == ["Alpha", "Bravo", "Charlie"]


UPRIGHT_KINDS = {
    "table": lambda: documents.table_page(0),
    "crowded-table": lambda: documents.table_page(1200),
    "hebrew": documents.rtl_visual_order,
    "tategaki": documents.tategaki,
    "hyphens": documents.hyphenated_text,
}


@functools.cache
def upright_reading(kind: str) -> tuple[bytes, list, tuple[int, int]]:
    upright = UPRIGHT_KINDS[kind]()
    cells, page = read(upright, dpi=72)
    return upright, cells, page.size_px


@pytest.mark.parametrize("rotation", [90, 180, 270])
@pytest.mark.parametrize("kind", sorted(UPRIGHT_KINDS))
def test_a_page_turned_with_rotate_reads_as_the_same_page_upright(kind, rotation):
    upright, cells, size_px = upright_reading(kind)
    turned_cells, turned_page = read(documents.turned(upright, rotation), dpi=72)
    assert turned_page.size_px == size_px
    assert [(cell.category, cell.text) for cell in turned_cells] == [(cell.category, cell.text) for cell in cells]
    for cell, turned_cell in zip(cells, turned_cells, strict=True):
        assert all(abs(a - b) <= 2 for a, b in zip(cell.bbox, turned_cell.bbox, strict=True)), (cell, turned_cell)


def inside(rect: pymupdf.Rect, bbox, slack: float = 3) -> bool:
    return (
        rect.x0 >= bbox[0] - slack
        and rect.y0 >= bbox[1] - slack
        and rect.x1 <= bbox[2] + slack
        and rect.y1 <= bbox[3] + slack
    )


# --- kind 4: writing direction --------------------------------------------------------------

OTHER_HEBREW = (
    'מחיר: 12.50 ש"ח (כולל מע"מ)',
    "גרסה 2 של Word היא חדשה",
    "בשנת 2024 נפתחו 3 סניפים!",
)


@pytest.mark.parametrize(
    "lines, script",
    [
        (documents.HEBREW_LINES, "hebrew"),
        (OTHER_HEBREW, "hebrew"),
        (documents.ARABIC_LINES, "arabic"),
    ],
    ids=["issue-sample", "numbers-punctuation-latin", "arabic"],
)
def test_right_to_left_lines_stored_in_visual_order_come_out_in_logical_order(lines, script):
    cells, _page = read(documents.rtl_visual_order(lines, script))
    assert [cell.text for cell in cells] == list(lines)


@pytest.mark.parametrize("lines", [documents.HEBREW_LINES, OTHER_HEBREW[1:]], ids=["issue-lines", "latin-inside"])
def test_right_to_left_lines_stored_in_logical_order_stay_as_they_are(lines):
    cells, _page = read(documents.rtl_logical_order(lines))
    assert [cell.text for cell in cells] == list(lines)


def test_corpus_arabic_keeps_its_text():
    for name in ("habibi.pdf", "habibi-oneline-cmap.pdf"):
        data = (CORPUS / "015-arabic" / name).read_bytes()
        cells, _page = read(data)
        assert "حَبيبي habibi" in markdown(cells)


@pytest.mark.parametrize(
    "columns",
    [
        documents.TATEGAKI_COLUMNS,
        ("春はあけぼの", "やうやう白くなりゆく", "山ぎは少しあかりて", "紫だちたる雲の"),
        ("令和6年は2024年です", "第12回の会議、開催。"),
    ],
    ids=["issue-sample", "four-columns", "digits-punctuation"],
)
@pytest.mark.parametrize("writing", ["vertical-cmap", "rotated"])
def test_vertical_japanese_reads_column_by_column_from_the_right_without_spaces(columns, writing):
    cells, _page = read(documents.tategaki(columns, writing=writing))
    assert markdown(cells) == "\n\n".join(columns)


def test_wrapped_horizontal_cjk_lines_join_without_a_space():
    document = pymupdf.open()
    page = document.new_page(width=595, height=842)
    text = "日本語の文章は単語の間に空白を入れずに書かれるので行の折り返しで空白を足してはいけない"
    page.insert_textbox(pymupdf.Rect(72, 72, 272, 400), text, fontname="japan", fontsize=12)
    cells, _page = read(document.tobytes())
    assert markdown(cells) == text


# --- kind 5: form fields ------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, rise, field_x",
    [
        (documents.FORM_FIELDS, 1.0, 170),
        (
            (("Invoice number:", "INV-2024-0042"), ("Due date:", "31 March 2025"), ("Amount due:", "1,250.00 EUR")),
            0.5,
            200,
        ),
        ((("Name", "Grace Hopper"), ("Department", "Computing")), 2.0, 150),
    ],
    ids=["issue-sample", "invoice", "labels-without-colons"],
)
def test_filled_form_field_follows_its_label_on_the_same_line(fields, rise, field_x):
    cells, _page = read(documents.filled_form(fields, rise=rise, field_x=field_x))
    texts = [cell.text for cell in cells]
    for label, value in fields:
        assert f"{label} {value}" in texts, texts


def test_corpus_libreoffice_form_value_follows_its_label():
    cells, _page = read((CORPUS / "012-libreoffice-form" / "libreoffice-form.pdf").read_bytes())
    assert "First Name Alice" in markdown(cells)


# --- kind 6: hyphens ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "keep, split",
    [
        ("price-determining", "information"),
        ("decision-making", "documentation"),
    ],
    ids=["issue-sample", "other-words"],
)
def test_line_end_hyphen_joins_a_split_word_and_keeps_a_real_one(keep, split):
    cells, _page = read(documents.hyphenated_text(keep=keep, split=split))
    text = markdown(cells)
    assert split in text and keep in text
    assert keep.replace("-", "") not in text


def test_line_end_hyphen_rule():
    document = pymupdf.open()
    page = document.new_page()
    page.insert_text((72, 72), "a well-known result; co-operation and cooperation and cooperation", fontsize=10)
    words = DocumentWords(document)
    assert words.join("a well-", "known fact") == "a well-known fact"  # the hyphenated form is written
    assert words.join("the co-", "operation") == "the cooperation"  # the joined form is written more often
    assert words.join("more infor-", "mation") == "more information"  # no evidence: hyphenation
    assert words.join("Jean-", "Paul") == "Jean-Paul"
    assert words.join("soft\u00ad", "ware") == "software"
    assert words.join("a dash -", "then") == "a dash - then"


# --- kind 7: crowded pages ----------------------------------------------------------------


@pytest.mark.parametrize(
    "markers, seed, one_path",
    [(1200, 7, False), (3000, 11, False), (1200, 5, True)],
    ids=["issue-sample", "3000-markers", "markers-in-one-path"],
)
def test_table_beside_a_scatter_plot_keeps_its_cells_and_caption_without_the_layout_model(markers, seed, one_path):
    data = documents.table_page(markers=markers, seed=seed, one_path=one_path)
    document = pymupdf.open("pdf", data)
    page = PdfPage(page=document[0], dpi=72)
    assert drawing_items(page.page.get_drawings()) > MAX_TABLE_ITEMS
    cells = TextLayerEngine().recognize(page, prompt_mode="prompt_layout_all_en").cells
    # The layout model, whose time grows with the drawings, did not run on this page.
    assert page.page.layout_information is None
    tables = [cell for cell in cells if cell.category == "Table"]
    assert len(tables) == 1
    for row in documents.TABLE_ROWS:
        assert (
            "".join(f"<td>{text}</td>" for text in row) in tables[0].text
            or "".join(f"<th>{text}</th>" for text in row) in tables[0].text
        )
    assert documents.TABLE_CAPTION in [cell.text for cell in cells]


def test_only_long_straight_strokes_reach_table_detection_on_a_crowded_page():
    document = pymupdf.open("pdf", documents.table_page(markers=600))
    kept = line_like(document[0].get_drawings())
    strokes = [item for path in kept for item in path["items"]]
    # the table's 10 rules and 4 column lines, and the plot's frame; no marker
    assert len(strokes) == len(documents.TABLE_ROWS) + 1 + 4 + 1
