"""Scans whose content is turned 90, 180 or 270 degrees, with no /Rotate and no text
layer, are read upright, with boxes in the frame of the rendered page image (issue 15,
kind 3, scanned content)."""

import pymupdf
import pytest

from bench import trust_samples as documents
from workers.ocr.auto import AutoEngine
from workers.ocr.orientation import unturn_box, unturn_points
from workers.pdf import PdfPage


@pytest.mark.parametrize("angle", [0, 90, 180, 270])
def test_a_turned_scan_is_read_upright_in_order_with_boxes_on_the_page_image(angle):
    document = pymupdf.open("pdf", documents.turned_scan(angle))
    page = PdfPage(page=document[0], dpi=200)
    result = AutoEngine().recognize(page, prompt_mode="prompt_layout_all_en")
    assert result.engine == "rapidocr"
    assert (f"content turned {angle}° clockwise, read upright" if angle else "(upright)") in result.reason
    text = " ".join(cell.text for cell in result.cells)
    positions = [text.find(line.rstrip(".")) for line in documents.SCAN_LINES]
    assert -1 not in positions and positions == sorted(positions), text
    width, height = page.size_px
    for cell in result.cells:
        x1, y1, x2, y2 = cell.bbox
        assert 0 <= x1 < x2 <= width + 1 and 0 <= y1 < y2 <= height + 1
    # The title sits where the turned content puts its top: the top, right, bottom or left edge.
    title = next(cell.bbox for cell in result.cells if "Harbour" in cell.text)
    centre_x, centre_y = (title[0] + title[2]) / 2, (title[1] + title[3]) / 2
    assert {
        0: centre_y < height / 3,
        90: centre_x > width * 2 / 3,
        180: centre_y > height * 2 / 3,
        270: centre_x < width / 3,
    }[angle]


@pytest.mark.parametrize("turn", [0, 90, 180, 270])
def test_boxes_of_the_upright_frame_map_back_onto_the_original_image(turn):
    import numpy as np

    width, height = 40, 30
    image = np.zeros((height, width), dtype=np.uint8)
    image[5:9, 10:20] = 1  # a marked box: x 10..20, y 5..9
    upright = np.rot90(image, k=turn // 90)
    ys, xs = np.nonzero(upright)
    box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert unturn_box(box, turn, width, height) == (10, 5, 20, 9)
    assert unturn_points([[0, 0]], 0, width, height) == [[0, 0]]
