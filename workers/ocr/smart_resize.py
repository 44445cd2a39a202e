"""The image geometry of dots.ocr: the size the model sees, and mapping its boxes back.

The model (a Qwen2-VL style vision encoder) works on images whose sides are multiples of
28 px and whose area lies within fixed bounds; it answers with boxes in that resized
image. No Django here.
"""

import math

# dots_ocr/utils/consts.py (IMAGE_FACTOR, MIN_PIXELS, MAX_PIXELS); the same values are the
# defaults of smart_resize in dots_ocr/utils/image_utils.py.
IMAGE_FACTOR = 28
MIN_PIXELS = 3136
MAX_PIXELS = 11289600
# dots_ocr/utils/image_utils.py, smart_resize: the vision encoder rejects flatter images.
MAX_ASPECT_RATIO = 200


def round_by_factor(number: float, factor: int) -> int:
    return round(number / factor) * factor


def ceil_by_factor(number: float, factor: int) -> int:
    return math.ceil(number / factor) * factor


def floor_by_factor(number: float, factor: int) -> int:
    return math.floor(number / factor) * factor


def smart_resize(
    height: int,
    width: int,
    factor: int = IMAGE_FACTOR,
    min_pixels: int = MIN_PIXELS,
    max_pixels: int = MAX_PIXELS,
) -> tuple[int, int]:
    """``(height, width)`` the model sees for an image of this size, as dots.ocr computes it.

    Sides become multiples of ``factor``, the area is brought within
    ``[min_pixels, max_pixels]``, the aspect ratio kept as closely as possible
    (dots_ocr/utils/image_utils.py, smart_resize). Idempotent on its own results.
    Raises ValueError for images flatter than 1:200.
    """
    aspect_ratio = max(height, width) / min(height, width)
    if aspect_ratio > MAX_ASPECT_RATIO:
        raise ValueError(f"aspect ratio must be below {MAX_ASPECT_RATIO}, got {aspect_ratio:.1f}")
    h_bar = max(factor, round_by_factor(height, factor))
    w_bar = max(factor, round_by_factor(width, factor))
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, floor_by_factor(height / beta, factor))
        w_bar = max(factor, floor_by_factor(width / beta, factor))
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = ceil_by_factor(height * beta, factor)
        w_bar = ceil_by_factor(width * beta, factor)
        # The reference checks max_pixels again here: it bounds the token count.
        if h_bar * w_bar > max_pixels:
            beta = math.sqrt((h_bar * w_bar) / max_pixels)
            h_bar = max(factor, floor_by_factor(h_bar / beta, factor))
            w_bar = max(factor, floor_by_factor(w_bar / beta, factor))
    return h_bar, w_bar


def model_input_size(page_size: tuple[int, int], *, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """``(width, height)`` of the image sent to the model for a page image of ``page_size``."""
    width, height = page_size
    input_height, input_width = smart_resize(height, width, min_pixels=min_pixels, max_pixels=max_pixels)
    return input_width, input_height


def bbox_to_page(
    bbox: tuple[float, float, float, float],
    *,
    input_size: tuple[int, int],
    page_size: tuple[int, int],
) -> tuple[int, int, int, int]:
    """A model box (pixels of the resized input) in pixels of the rendered page, clamped to it.

    Same arithmetic as dots_ocr/utils/layout_utils.py, post_process_cells (divide by the
    resize scale, truncate to int), so boxes match the reference parser's to the pixel.
    """
    input_width, input_height = input_size
    page_width, page_height = page_size
    scale_x = input_width / page_width
    scale_y = input_height / page_height
    x1, y1, x2, y2 = (
        int(float(bbox[0]) / scale_x),
        int(float(bbox[1]) / scale_y),
        int(float(bbox[2]) / scale_x),
        int(float(bbox[3]) / scale_y),
    )
    x1, x2 = sorted((clamp(x1, page_width), clamp(x2, page_width)))
    y1, y2 = sorted((clamp(y1, page_height), clamp(y2, page_height)))
    return x1, y1, x2, y2


def clamp(value: int, upper: int) -> int:
    return min(max(value, 0), upper)
