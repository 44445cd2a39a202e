"""The CPU engine for scanned pages: RapidOCR (PaddleOCR models as ONNX, shipped inside
the rapidocr-onnxruntime wheel, so nothing is fetched at run time). No Django here."""

import os
import statistics
import threading

import numpy as np

from workers.ocr.base import Cell, PageOcr
from workers.ocr.orientation import Ocr, OcrLine, Points, Reading, read_upright, unturn_box
from workers.pdf import PYMUPDF_LOCK, PdfPage

_reader: Ocr | None = None
_reader_lock = threading.Lock()
# onnxruntime's own default is a thread per core, spinning while it waits for work: with
# several worker processes on a host each reading a page, that oversubscribes the cores
# (measured on 2 busy cores: a page cost 54 s of CPU with the default, 36 s with one thread).
# Alone in a process (a REPL, the CLI's in-process run) it may have every core.
_threads = os.cpu_count() or 1


def use_threads(count: int) -> None:
    """Run the OCR models on ``count`` threads (>= 1) in this process; the models are loaded
    again on next use when the count changes."""
    global _reader, _threads
    if count < 1:
        raise ValueError(f"OCR threads must be at least 1, not {count}")
    with _reader_lock:
        if count != _threads:
            _threads, _reader = count, None


def reader() -> Ocr:
    """The OCR models, loaded once per process (about a second), on ``use_threads``' count."""
    global _reader
    with _reader_lock:
        if _reader is None:
            from rapidocr_onnxruntime import RapidOCR

            _reader = RapidOCR(intra_op_num_threads=_threads, inter_op_num_threads=1)
        return _reader


class RapidOcrEngine:
    name = "rapidocr"

    def recognize(self, page: PdfPage, *, prompt_mode: str) -> PageOcr:
        """The page image read upright, whichever way its content is turned; boxes in
        the frame of the rendered page image."""
        reading = self.read(page)
        return PageOcr(cells=reading_to_cells(reading, page), engine=self.name, reason=describe(reading))

    def read(self, page: PdfPage) -> Reading:
        with PYMUPDF_LOCK:
            pixmap = page.render()
            image = np.frombuffer(pixmap.samples, dtype=np.uint8).reshape(pixmap.height, pixmap.width, pixmap.n)
            image = image.copy()
        return read_upright(image, reader())


def describe(reading: Reading) -> str:
    turned = f"content turned {reading.turn}° clockwise, read upright" if reading.turn else "upright"
    return f"rapidocr read {len(reading.lines)} lines ({turned})"


def reading_to_cells(reading: Reading, page: PdfPage) -> list[Cell]:
    """Paragraph cells in the upright reading order, boxes in the rendered image's frame."""
    cells = lines_to_cells(reading.lines)
    if not reading.turn:
        return cells
    width, height = page.size_px
    return [
        Cell(bbox=unturn_box(cell.bbox, reading.turn, width, height), category=cell.category, text=cell.text)
        for cell in cells
    ]


def lines_to_cells(lines: list[OcrLine]) -> list[Cell]:
    """OCR'd lines (box, text, score) grouped into paragraphs, in reading order."""
    boxes = sorted((line_box(points), text) for points, text, _score in lines if text.strip())
    if not boxes:
        return []
    line_height = statistics.median(y2 - y1 for (_x1, y1, _x2, y2), _text in boxes)
    paragraphs: list[tuple[list[int], list[str]]] = []
    for (x1, y1, x2, y2), text in sorted(boxes, key=lambda item: (item[0][1], item[0][0])):
        if paragraphs and continues(paragraphs[-1][0], (x1, y1, x2, y2), line_height):
            box, texts = paragraphs[-1]
            box[:] = [min(box[0], x1), min(box[1], y1), max(box[2], x2), max(box[3], y2)]
            texts.append(text.strip())
        else:
            paragraphs.append(([x1, y1, x2, y2], [text.strip()]))
    return [paragraph_cell(box, texts, line_height) for box, texts in paragraphs]


def line_box(points: Points) -> tuple[int, int, int, int]:
    xs, ys = [point[0] for point in points], [point[1] for point in points]
    return (round(min(xs)), round(min(ys)), round(max(xs)), round(max(ys)))


def continues(paragraph_box: list[int], line: tuple[int, int, int, int], line_height: float) -> bool:
    """A line continues a paragraph when it starts just below it, near its left edge."""
    gap = line[1] - paragraph_box[3]
    return -line_height * 0.5 < gap < line_height * 0.8 and abs(line[0] - paragraph_box[0]) < line_height * 3


def paragraph_cell(box: list[int], texts: list[str], line_height: float) -> Cell:
    text = " ".join(texts)
    if len(texts) == 1 and (box[3] - box[1]) > line_height * 1.5 and len(text) < 120:
        return Cell(bbox=(box[0], box[1], box[2], box[3]), category="Section-header", text=f"## {text}")
    return Cell(bbox=(box[0], box[1], box[2], box[3]), category="Text", text=text)
