"""The text-layer engine on PDFs made here with PyMuPDF: titles, lists, columns, tables."""

import pymupdf
import pytest

from workers.ocr.layout import cells_to_markdown
from workers.ocr.textlayer import TextLayerEngine, is_list_marker, line_boxes
from workers.ocr.textlayer_frame import text_layout
from workers.ocr.textlayer_lines import span_text
from workers.ocr.textlayer_tables import has_table_rules
from workers.pdf import PdfPage, open_pdf

LOREM = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore"
TABLE = [
    ["City", "Country", "Millions"],
    ["Oslo", "Norway", "0.71"],
    ["Lima", "Peru", "9.75"],
    ["Quito", "Ecuador", "2.80"],
]


def recognize(path, page_number=0):
    with open_pdf(path) as document:
        page = PdfPage(page=document[page_number], dpi=72)
        return TextLayerEngine().recognize(page, prompt_mode="prompt_layout_all_en")


def save(document, path):
    document.save(path)
    return path


def paragraph(label: str) -> str:
    return f"{label} {LOREM} {LOREM} {label}-end."


def two_column_pdf(path):
    """A title and a two-line author block centred over the gutter, two columns of three
    paragraphs written row by row into the content stream (left 1, right 1, left 2, ...),
    a closing paragraph across the page and a page number in the gutter."""
    document = pymupdf.open()
    page = document.new_page(width=595, height=842)
    page.insert_text((170, 80), "A Study In Two Columns", fontsize=22)
    page.insert_text((262, 105), "Ada Lovelace", fontsize=10)
    page.insert_text((222, 118), "Analytical Engine Society", fontsize=10)
    for row in range(3):
        top = 140 + row * 160
        page.insert_textbox(pymupdf.Rect(50, top, 287, top + 150), paragraph(f"left{row}"), fontsize=10)
        page.insert_textbox(pymupdf.Rect(308, top, 545, top + 150), paragraph(f"right{row}"), fontsize=10)
    page.insert_textbox(pymupdf.Rect(50, 640, 545, 720), paragraph("closing") + " " + LOREM, fontsize=10)
    page.insert_text((295, 760), "7", fontsize=10)
    return save(document, path)


def test_two_columns_are_read_left_column_first_with_full_width_blocks_in_place(tmp_path):
    cells = recognize(two_column_pdf(tmp_path / "columns.pdf")).cells
    assert cells[0].category == "Title" and cells[0].text == "# A Study In Two Columns"
    assert [cell.text.split()[0] for cell in cells[1:]] == [
        "Ada",
        "left0",
        "left1",
        "left2",
        "right0",
        "right1",
        "right2",
        "closing",
        "7",
    ]


def test_single_column_page_is_read_top_to_bottom(tmp_path):
    document = pymupdf.open()
    page = document.new_page(width=595, height=842)
    # Written bottom first: the content stream order is not the reading order.
    page.insert_textbox(pymupdf.Rect(50, 400, 545, 480), paragraph("second"), fontsize=10)
    page.insert_textbox(pymupdf.Rect(50, 200, 545, 280), paragraph("first"), fontsize=10)
    cells = recognize(save(document, tmp_path / "single.pdf")).cells
    assert [cell.text.split()[0] for cell in cells] == ["first", "second"]


def test_large_fonts_are_title_and_section_header(tmp_path):
    document = pymupdf.open()
    page = document.new_page(width=595, height=842)
    page.insert_text((50, 120), "Annual Report", fontsize=26)
    page.insert_text((50, 170), "Results of the year", fontsize=15)
    page.insert_textbox(pymupdf.Rect(50, 190, 545, 400), paragraph("body") * 2, fontsize=10)
    cells = recognize(save(document, tmp_path / "headings.pdf")).cells
    assert [(cell.category, cell.text) for cell in cells[:2]] == [
        ("Title", "# Annual Report"),
        ("Section-header", "## Results of the year"),
    ]
    assert cells[2].category == "Text" and cells[2].text.startswith("body")


@pytest.mark.parametrize(
    "heading_size, bold_font, category",
    [
        (14, "hebo", "Section-header"),  # a Word "Heading 1" as LibreOffice exports it: 14 pt bold over 11 pt
        (18, "helv", "Title"),
        (11, "hebo", "Section-header"),  # a run-in bold heading at body size
    ],
)
def test_heading_set_close_above_its_paragraph_is_its_own_cell(tmp_path, heading_size, bold_font, category):
    document = pymupdf.open()
    page = document.new_page(width=595, height=842)
    # Close enough that MuPDF makes heading and paragraph one block.
    page.insert_text((72, 100), "Quarterly report", fontsize=heading_size, fontname=bold_font)
    body = [
        "Revenue grew by 12 percent in the third quarter,",
        "which was a good quarter for everyone involved,",
        "and the fourth is expected to be as good.",
    ]
    for number, line in enumerate(body):
        page.insert_text((72, 100 + heading_size - 2 + 13 * number), line, fontsize=11, fontname="tiro")
    path = save(document, tmp_path / "heading.pdf")
    assert len(text_layout(pymupdf.open(path)[0])["blocks"]) == 1  # the case: one MuPDF block
    cells = recognize(path).cells
    assert [cell.category for cell in cells] == [category, "Text"]
    assert cells[0].text.lstrip("# ") == "Quarterly report" and cells[1].text.startswith("Revenue grew")


def test_bold_first_line_ending_a_sentence_stays_in_its_paragraph(tmp_path):
    document = pymupdf.open()
    page = document.new_page(width=595, height=842)
    page.insert_text((72, 100), "Read this first.", fontsize=11, fontname="hebo")
    page.insert_text((72, 113), "Then read the rest of the paragraph, which goes on.", fontsize=11, fontname="tiro")
    cells = recognize(save(document, tmp_path / "bold.pdf")).cells
    assert len(cells) == 1 and cells[0].category == "Text"


def test_bulleted_and_numbered_lists_are_one_list_item_per_entry(tmp_path):
    document = pymupdf.open()
    page = document.new_page(width=595, height=842)
    page.insert_htmlbox(
        pymupdf.Rect(50, 100, 545, 500),
        (
            "<p>We need the following things for the trip to the mountains:</p>"
            "<ul><li>warm boots for the snow</li><li>a map of the valley</li><li>matches</li></ul>"
            "<ol><li>pack the car</li><li>leave at dawn</li></ol>"
        ),
    )
    cells = recognize(save(document, tmp_path / "list.pdf")).cells
    assert [(cell.category, cell.text) for cell in cells] == [
        ("Text", "We need the following things for the trip to the mountains:"),
        ("List-item", "- warm boots for the snow"),
        ("List-item", "- a map of the valley"),
        ("List-item", "- matches"),
        ("List-item", "1. pack the car"),
        ("List-item", "2. leave at dawn"),
    ]


def test_bullets_set_apart_from_their_text_still_start_list_items(tmp_path):
    """LaTeX's itemize draws the bullet on its own, a little left of the item's text."""
    document = pymupdf.open()
    page = document.new_page(width=595, height=842)
    for index, item in enumerate(["first item of the list", "second item of the list", "third item"]):
        page.insert_text((60, 200 + index * 13), "\u2022", fontsize=10)
        page.insert_text((72, 200 + index * 13), item, fontsize=10)
    cells = recognize(save(document, tmp_path / "itemize.pdf")).cells
    assert [(cell.category, cell.text) for cell in cells] == [
        ("List-item", "- first item of the list"),
        ("List-item", "- second item of the list"),
        ("List-item", "- third item"),
    ]


@pytest.mark.parametrize(
    "text,is_marker",
    [
        ("• apples", True),
        ("- apples", True),
        ("1. first", True),
        ("(ii) second", True),
        ("b) third", True),
        ("-5 degrees below zero", False),
        ("0. Auflage, 2016", False),
        ("e.g. this", False),
        ("2019. The year", False),
    ],
)
def test_list_markers(text, is_marker):
    assert is_list_marker(text) is is_marker


def ruled_table_pdf(path, rows=TABLE, merged_header=False):
    """A paragraph, a table ruled on every side of every cell, another paragraph. With
    ``merged_header`` the header's second cell spans the last two columns."""
    document = pymupdf.open()
    page = document.new_page(width=595, height=842)
    page.insert_textbox(pymupdf.Rect(50, 80, 545, 140), paragraph("before"), fontsize=10)
    left, top, column_width, row_height = 80, 170, 140, 24
    for row_index, row in enumerate(rows):
        for column_index, value in enumerate(row):
            page.insert_text(
                (left + column_index * column_width + 6, top + row_index * row_height + 16), value, fontsize=11
            )
    bottom, right = top + len(rows) * row_height, left + len(rows[0]) * column_width
    for row_index in range(len(rows) + 1):
        y = top + row_index * row_height
        page.draw_line((left, y), (right, y), width=0.8)
    for column_index in range(len(rows[0]) + 1):
        x = left + column_index * column_width
        merged = merged_header and column_index == len(rows[0]) - 1
        page.draw_line((x, top + row_height if merged else top), (x, bottom), width=0.8)
    page.insert_textbox(pymupdf.Rect(50, bottom + 30, 545, bottom + 90), paragraph("after"), fontsize=10)
    return save(document, path)


def test_ruled_table_is_one_table_cell_in_html_and_its_text_is_not_repeated(tmp_path):
    cells = recognize(ruled_table_pdf(tmp_path / "table.pdf")).cells
    assert [cell.category for cell in cells] == ["Text", "Table", "Text"]
    table = cells[1].text
    assert table.startswith("<table>") and table.endswith("</table>")
    assert table.count("<tr>") == len(TABLE)
    for value in TABLE[0]:
        assert f"<th>{value}</th>" in table
    for row in TABLE[1:]:
        assert "".join(f"<td>{value}</td>" for value in row) in table
    other_text = " ".join(cell.text for cell in cells if cell.category != "Table")
    for value in (value for row in TABLE for value in row):
        assert value not in other_text


def test_merged_table_cells_span_columns(tmp_path):
    rows = [["Name", "Scores", ""], ["Ann", "12", "15"], ["Bob", "9", "11"]]
    cells = recognize(ruled_table_pdf(tmp_path / "merged.pdf", rows=rows, merged_header=True)).cells
    table = next(cell.text for cell in cells if cell.category == "Table")
    assert table.startswith('<table><tr><th>Name</th><th colspan="2">Scores</th></tr>')
    assert "<tr><td>Ann</td><td>12</td><td>15</td></tr>" in table


def test_markdown_renders_the_table_html(tmp_path):
    cells = recognize(ruled_table_pdf(tmp_path / "table.pdf")).cells
    markdown = cells_to_markdown(cells, picture_link=lambda index, cell: f"picture_{index}.jpg")
    blocks = markdown.split("\n\n")
    assert blocks[0].startswith("before") and blocks[2].startswith("after")
    assert blocks[1] == cells[1].text
    assert "<td>Lima</td><td>Peru</td><td>9.75</td>" in blocks[1]


def rules_page(draw):
    document = pymupdf.open()
    page = document.new_page(width=595, height=842)
    page.insert_textbox(pymupdf.Rect(50, 80, 545, 400), paragraph("text") * 3, fontsize=10)
    draw(page)
    return document, page


def table_rows(page):
    for y in (500, 520, 540, 560, 580):
        page.draw_line((80, y), (500, y))
        if y < 580:
            page.insert_text((90, y + 15), f"row at {y}")


def header_rule_and_box(page):
    page.draw_line((50, 40), (545, 40))
    page.draw_rect(pymupdf.Rect(60, 450, 530, 600))


def empty_grid(page):
    for y in range(450, 650, 20):
        page.draw_line((100, y), (300, y))


@pytest.mark.parametrize(
    "draw,expected",
    [
        (table_rows, True),
        (header_rule_and_box, False),  # rules, but not a table's
        (empty_grid, False),  # a coordinate grid in a figure: aligned rules, no text rows
    ],
)
def test_table_finding_runs_only_on_pages_ruled_like_a_table(draw, expected):
    document, page = rules_page(draw)
    assert has_table_rules(page, line_boxes(text_layout(page))) is expected


def test_control_characters_from_broken_font_maps_become_spaces():
    """PostgreSQL refuses NULs in text; a \\x03 between two words still separates them."""
    assert span_text({"text": "habibi\x03word\x00end\x12n\x13"}) == "habibi word end n "
