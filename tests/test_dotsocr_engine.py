"""The dots.ocr engine talks to vLLM exactly as the reference parser does, maps boxes back
to the page, and survives slow, failing, looping and dead servers.

Runs against tests/dotsocr_standin.py, an OpenAI-compatible server that validates every
request; no GPU, no database.
"""

import base64
import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import httpx
import pymupdf
import pytest
from django.core.exceptions import ImproperlyConfigured

from dotsocr_site.engine_settings import dotsocr_settings
from tests.conftest import FOUR_PAGES, ONE_PAGE, WITH_IMAGE
from tests.dotsocr_standin import (
    DROP,
    EMPTY,
    HTTP_500,
    IMAGE_TOKENS,
    INVALID_JSON,
    KNOWN_PROMPTS,
    NORMAL,
    OCR_TEXT,
    REPETITION,
    SLOW,
    TRUNCATED,
    DotsOcrStandin,
    layout_for,
    refused_url,
)
from workers.ocr.base import Cell, EngineError
from workers.ocr.dotsocr import DotsOcrEngine
from workers.ocr.dotsocr_config import DotsOcrConfig
from workers.ocr.dotsocr_output import salvage_layout
from workers.ocr.dotsocr_protocol import PROMPTS
from workers.ocr.smart_resize import MAX_PIXELS, MIN_PIXELS, bbox_to_page, smart_resize
from workers.pdf import PdfPage, open_pdf

A4_PAGE_PX = (1654, 2339)  # A4 rendered at 200 DPI
A4_INPUT_PX = (1652, 2352)  # what the model sees of it


# --- fixtures and helpers --------------------------------------------------------------


@pytest.fixture
def standin():
    with DotsOcrStandin() as server:
        yield server


@pytest.fixture
def make_engine():
    engines = []

    def make(*urls, transport=None, **overrides):
        settings = {"timeout_seconds": 5.0, "max_retries": 2, "backoff_seconds": 0.01, **overrides}
        engine = DotsOcrEngine(DotsOcrConfig(base_urls=list(urls), **settings), transport=transport)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


@pytest.fixture
def a4_page():
    with open_pdf(FOUR_PAGES) as document:
        yield PdfPage(page=document[0], dpi=200)


@pytest.fixture
def small_pages():
    """The four pages of a PDF at 72 DPI: quick to encode, for concurrency tests."""
    with open_pdf(FOUR_PAGES) as document:
        yield [PdfPage(page=page, dpi=72) for page in document]


def blank_pdf_page(width_pt: float, height_pt: float, dpi: int = 200) -> PdfPage:
    document = pymupdf.open()
    page = document.new_page(width=width_pt, height=height_pt)
    page.insert_text((2, 10), "Hello", fontsize=4)
    return PdfPage(page=page, dpi=dpi)


def reference_bbox(bbox, input_size, page_size):
    """dots_ocr/utils/layout_utils.py, post_process_cells, for one box."""
    scale_x = input_size[0] / page_size[0]
    scale_y = input_size[1] / page_size[1]
    return (int(bbox[0] / scale_x), int(bbox[1] / scale_y), int(bbox[2] / scale_x), int(bbox[3] / scale_y))


def expected_cells(raw_cells, input_size=A4_INPUT_PX, page_size=A4_PAGE_PX):
    return [
        Cell(reference_bbox(cell["bbox"], input_size, page_size), cell["category"], cell.get("text", ""))
        for cell in raw_cells
    ]


class CountingTransport(httpx.HTTPTransport):
    """Counts requests per server, including those whose connection is refused."""

    def __init__(self):
        super().__init__()
        self.attempts = Counter()

    def handle_request(self, request):
        self.attempts[f"{request.url.scheme}://{request.url.host}:{request.url.port}"] += 1
        return super().handle_request(request)


# --- the reference's geometry ----------------------------------------------------------


@pytest.mark.parametrize(
    ("height", "width", "expected"),
    [
        (2339, 1654, (2352, 1652)),  # A4 at 200 DPI
        (2200, 1700, (2212, 1708)),  # US letter at 200 DPI
        (42, 28, (84, 56)),  # a tiny page, scaled up to min_pixels
        (3000, 4000, (2884, 3864)),  # a poster at 72 DPI, scaled down to max_pixels
        (3360, 3360, (3360, 3360)),  # exactly max_pixels
        (2352, 1652, (2352, 1652)),  # a smart_resize result is left alone
    ],
)
def test_smart_resize_gives_the_reference_sizes(height, width, expected):
    assert smart_resize(height, width) == expected
    input_height, input_width = expected
    assert input_height % 28 == 0 and input_width % 28 == 0
    assert MIN_PIXELS <= input_height * input_width <= MAX_PIXELS


def test_smart_resize_refuses_a_sliver():
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(28, 28 * 201)


def test_model_boxes_map_back_to_page_pixels_like_the_reference():
    assert bbox_to_page([100, 200, 1500, 2300], input_size=A4_INPUT_PX, page_size=A4_PAGE_PX) == (100, 198, 1501, 2287)
    # Upscaled tiny page: halve; reversed corners come out ordered.
    assert bbox_to_page([50, 80, 10, 20], input_size=(56, 84), page_size=(28, 42)) == (5, 10, 25, 40)
    # A box reaching past the image is clamped to it.
    assert bbox_to_page([-10, -10, 5000, 5000], input_size=A4_INPUT_PX, page_size=A4_PAGE_PX) == (0, 0, 1654, 2339)


@pytest.mark.parametrize(
    ("width_pt", "height_pt", "page_px", "input_px"),
    [
        (595.276, 841.89, (1654, 2339), (1652, 2352)),  # A4
        (612, 792, (1700, 2200), (1708, 2212)),  # letter
        (10, 15, (28, 42), (56, 84)),  # tiny
        (4000, 3000, (4000, 3000), (3864, 2884)),  # huge: 72 DPI re-render, then max_pixels
    ],
)
def test_page_is_sent_at_its_smart_resize_size_and_cells_come_back_in_page_pixels(
    standin, make_engine, width_pt, height_pt, page_px, input_px
):
    page = blank_pdf_page(width_pt, height_pt)
    assert page.size_px == page_px

    result = make_engine(standin.url).recognize(page, prompt_mode="prompt_layout_all_en")

    assert [request.image_size for request in standin.requests] == [input_px]
    assert result.cells == expected_cells(layout_for(input_px), input_px, page_px)
    for cell in result.cells:
        x1, y1, x2, y2 = cell.bbox
        assert 0 <= x1 <= x2 <= page_px[0] and 0 <= y1 <= y2 <= page_px[1]


# --- the request -----------------------------------------------------------------------


def test_prompts_are_the_reference_prompts():
    assert PROMPTS == KNOWN_PROMPTS


def test_request_is_the_one_the_reference_parser_sends(standin, make_engine, a4_page):
    make_engine(standin.url).recognize(a4_page, prompt_mode="prompt_layout_all_en")

    assert standin.rejections == []
    [request] = standin.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer 0"
    assert list(request.body) == ["messages", "model", "max_completion_tokens", "temperature", "top_p"]
    assert request.body["model"] == "model"
    assert request.body["max_completion_tokens"] == 16384
    assert request.body["temperature"] == 0.1
    assert request.body["top_p"] == 1.0
    [message] = request.body["messages"]
    assert message["role"] == "user"
    image_part, text_part = message["content"]
    assert text_part == {"type": "text", "text": IMAGE_TOKENS + KNOWN_PROMPTS["prompt_layout_all_en"]}
    assert list(image_part) == ["type", "image_url"] and image_part["type"] == "image_url"
    url = image_part["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    sent = pymupdf.Pixmap(base64.b64decode(url.removeprefix("data:image/png;base64,")))
    assert (sent.width, sent.height) == A4_INPUT_PX
    assert request.image_size == A4_INPUT_PX


def test_configured_sampling_and_model_name_are_sent(make_engine, a4_page):
    with DotsOcrStandin(model_name="dots") as server:
        engine = make_engine(server.url, model_name="dots", temperature=0.2, top_p=0.9, max_completion_tokens=4096)
        engine.recognize(a4_page, prompt_mode="prompt_layout_all_en")
        [request] = server.requests
    assert (request.body["model"], request.body["temperature"], request.body["top_p"]) == ("dots", 0.2, 0.9)
    assert request.body["max_completion_tokens"] == 4096


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"stream": True}, 400, "fields must be exactly"),
        ({"model": "other"}, 404, "does not exist"),
        ({"top_p": 0}, 400, "top_p"),
        ({"image_size": (100, 100)}, 400, "multiples of 28"),
        ({"prompt": "Describe this image."}, 400, "unknown prompt"),
        ({"tokens": ""}, 400, "must start with <|img|>"),
    ],
)
def test_standin_rejects_requests_the_reference_would_not_send(standin, change, status, message):
    change = dict(change)
    width, height = change.pop("image_size", (56, 84))
    pixmap = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, width, height), False)
    pixmap.clear_with(255)
    text = change.pop("tokens", IMAGE_TOKENS) + change.pop("prompt", KNOWN_PROMPTS["prompt_ocr"])
    data_url = "data:image/png;base64," + base64.b64encode(pixmap.tobytes("png")).decode()
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": data_url}},
                    {"type": "text", "text": text},
                ],
            }
        ],
        "model": "model",
        "max_completion_tokens": 16384,
        "temperature": 0.1,
        "top_p": 1.0,
        **change,
    }
    response = httpx.post(standin.url + "/v1/chat/completions", json=body)
    assert response.status_code == status
    assert message in response.json()["message"]
    assert standin.requests == []


# --- answers ---------------------------------------------------------------------------


def test_layout_answer_becomes_page_cells(standin, make_engine):
    with open_pdf(WITH_IMAGE) as document:
        page = PdfPage(page=document[0], dpi=200)
        result = make_engine(standin.url).recognize(page, prompt_mode="prompt_layout_all_en")

    assert result.engine == "dotsocr"
    assert result.cells == expected_cells(layout_for(A4_INPUT_PX))
    picture = next(cell for cell in result.cells if cell.category == "Picture")
    assert picture.text == "" and "text" not in picture.as_dict()
    formula = next(cell for cell in result.cells if cell.category == "Formula")
    assert formula.text == "$$\\frac{a}{b} = \\sum_{i=1}^{n} x_{i}$$"


def test_layout_only_answer_has_boxes_without_text(standin, make_engine, a4_page):
    result = make_engine(standin.url).recognize(a4_page, prompt_mode="prompt_layout_only_en")

    assert standin.requests[0].prompt_mode == "prompt_layout_only_en"
    assert result.engine == "dotsocr"
    assert result.cells == expected_cells(layout_for(A4_INPUT_PX, with_text=False))
    assert all(cell.text == "" for cell in result.cells)


def test_prompt_ocr_gives_one_text_cell_covering_the_page(standin, make_engine):
    with open_pdf(ONE_PAGE) as document:
        result = make_engine(standin.url).recognize(PdfPage(page=document[0], dpi=200), prompt_mode="prompt_ocr")

    assert standin.requests[0].prompt_mode == "prompt_ocr"
    assert result.engine == "dotsocr"
    assert result.cells == [Cell(bbox=(0, 0, *A4_PAGE_PX), category="Text", text=OCR_TEXT)]


def test_grounding_mode_is_refused_before_any_request(standin, make_engine, a4_page):
    with pytest.raises(EngineError, match="bounding box"):
        make_engine(standin.url).recognize(a4_page, prompt_mode="prompt_grounding_ocr")
    with pytest.raises(EngineError, match="Unknown prompt mode"):
        make_engine(standin.url).recognize(a4_page, prompt_mode="prompt_table_html")
    assert standin.requests == []


# --- transport failures ----------------------------------------------------------------


def test_slow_answer_times_out_and_is_retried(standin, make_engine, a4_page):
    standin.slow_seconds = 5
    standin.script(SLOW)
    started = time.monotonic()

    result = make_engine(standin.url, timeout_seconds=0.5).recognize(a4_page, prompt_mode="prompt_layout_all_en")

    assert time.monotonic() - started < 4
    assert result.engine == "dotsocr"
    assert [request.behaviour for request in standin.requests] == [SLOW, NORMAL]


def test_server_error_then_success(standin, make_engine, a4_page):
    standin.script(HTTP_500)

    result = make_engine(standin.url).recognize(a4_page, prompt_mode="prompt_layout_all_en")

    assert result.engine == "dotsocr"
    assert result.cells == expected_cells(layout_for(A4_INPUT_PX))
    assert len(standin.requests) == 2


def test_server_error_forever_raises_a_readable_engine_error(standin, make_engine, a4_page):
    standin.mode = HTTP_500

    with pytest.raises(EngineError) as raised:
        make_engine(standin.url, max_retries=2).recognize(a4_page, prompt_mode="prompt_layout_all_en")

    assert "failed 3 times" in str(raised.value)
    assert "HTTP 500" in str(raised.value) and "EngineCore encountered an issue" in str(raised.value)
    assert len(standin.requests) == 3


def test_dropped_connection_is_retried(standin, make_engine, a4_page):
    standin.script(DROP)

    result = make_engine(standin.url).recognize(a4_page, prompt_mode="prompt_layout_all_en")

    assert result.engine == "dotsocr"
    assert [request.behaviour for request in standin.requests] == [DROP, NORMAL]


def test_rejected_request_fails_at_once_without_retries(standin, make_engine, a4_page):
    with pytest.raises(EngineError, match="rejected the request: HTTP 404: The model `other` does not exist"):
        make_engine(standin.url, model_name="other").recognize(a4_page, prompt_mode="prompt_layout_all_en")
    assert len(standin.rejections) == 1


# --- bad model output ------------------------------------------------------------------


def test_truncated_answer_is_asked_again_at_a_higher_temperature(standin, make_engine, a4_page):
    standin.script(TRUNCATED)

    result = make_engine(standin.url).recognize(a4_page, prompt_mode="prompt_layout_all_en")

    assert result.engine == "dotsocr-retry"
    assert result.cells == expected_cells(layout_for(A4_INPUT_PX))
    assert [request.body["temperature"] for request in standin.requests] == [0.1, 0.3]


def test_truncated_twice_keeps_the_complete_cells(standin, make_engine, a4_page):
    standin.script(TRUNCATED, TRUNCATED)

    result = make_engine(standin.url).recognize(a4_page, prompt_mode="prompt_layout_all_en")

    cells = layout_for(A4_INPUT_PX)
    answer = json.dumps(cells, ensure_ascii=False)
    cut = answer[: int(len(answer) * 0.6)]
    complete = max(
        count for count in range(len(cells) + 1) if cut.startswith(json.dumps(cells[:count], ensure_ascii=False)[:-1])
    )
    assert 3 <= complete < len(cells)
    assert result.engine == "dotsocr-salvaged"
    assert result.cells == expected_cells(cells[:complete])


def test_repetition_loop_is_salvaged_without_the_loop(standin, make_engine, a4_page):
    standin.script(REPETITION, REPETITION)

    result = make_engine(standin.url).recognize(a4_page, prompt_mode="prompt_layout_all_en")

    assert result.engine == "dotsocr-salvaged"
    assert [cell.category for cell in result.cells] == ["Page-header", "Title", "Section-header", "Text"]
    assert result.cells[:3] == expected_cells(layout_for(A4_INPUT_PX)[:3])


def test_empty_layout_is_asked_again(standin, make_engine, a4_page):
    standin.script(EMPTY)

    result = make_engine(standin.url).recognize(a4_page, prompt_mode="prompt_layout_all_en")

    assert result.engine == "dotsocr-retry"
    assert len(result.cells) == len(layout_for(A4_INPUT_PX))


def test_invalid_json_twice_falls_back_to_plain_ocr(standin, make_engine, a4_page):
    standin.script(INVALID_JSON, INVALID_JSON)

    result = make_engine(standin.url).recognize(a4_page, prompt_mode="prompt_layout_all_en")

    modes = [request.prompt_mode for request in standin.requests]
    assert modes == ["prompt_layout_all_en", "prompt_layout_all_en", "prompt_ocr"]
    assert result.engine == "dotsocr-ocr-fallback"
    assert result.cells == [Cell(bbox=(0, 0, *A4_PAGE_PX), category="Text", text=OCR_TEXT)]


def test_page_with_no_content_anywhere_is_an_error_not_an_empty_page(standin, make_engine, a4_page):
    standin.script(INVALID_JSON, INVALID_JSON, EMPTY)

    with pytest.raises(EngineError, match="no content"):
        make_engine(standin.url).recognize(a4_page, prompt_mode="prompt_layout_all_en")
    assert len(standin.requests) == 3


def test_looping_plain_ocr_is_retried_then_trimmed(standin, make_engine, a4_page):
    engine = make_engine(standin.url)
    standin.script(REPETITION)
    assert engine.recognize(a4_page, prompt_mode="prompt_ocr").engine == "dotsocr-retry"

    standin.script(REPETITION, REPETITION)
    result = engine.recognize(a4_page, prompt_mode="prompt_ocr")

    assert result.engine == "dotsocr-salvaged"
    [cell] = result.cells
    assert cell.text.startswith(OCR_TEXT)
    assert cell.text.count("Layout parsing turns a page image into cells.") <= 3
    assert not cell.text.endswith("Layout pars")


def test_salvage_keeps_braces_inside_text_and_tolerates_a_missing_comma():
    answer = (
        '```json\n[{"bbox": [1, 2, 3, 4], "category": "Formula", "text": "$$\\\\frac{a}{b}$$"} '
        '{"bbox": [5, 6, 7, 8], "category": "Other", "text": "x"}, {"bbox": [9, 1'
    )

    assert salvage_layout(answer) == [
        {"bbox": [1, 2, 3, 4], "category": "Formula", "text": "$$\\frac{a}{b}$$"},
        {"bbox": [5, 6, 7, 8], "category": "Text", "text": "x"},
    ]


# --- several servers, in-flight budget -------------------------------------------------


def test_dead_server_is_skipped_until_its_cool_down_ends(standin, make_engine, small_pages):
    dead = refused_url()
    transport = CountingTransport()
    engine = make_engine(dead, standin.url, transport=transport, dead_server_cooldown_seconds=30)
    now = [1000.0]
    engine.pool.clock = lambda: now[0]

    results = [engine.recognize(page, prompt_mode="prompt_layout_all_en") for page in small_pages]

    assert all(result.engine == "dotsocr" for result in results)
    assert len(standin.requests) == 4
    assert transport.attempts[dead] == 1  # refused once, then skipped
    assert [server.dead for server in engine.pool.snapshot()] == [True, False]

    now[0] += 31
    engine.recognize(small_pages[0], prompt_mode="prompt_layout_all_en")
    assert transport.attempts[dead] == 2  # cool-down over: tried again
    assert len(standin.requests) == 5


def test_no_live_server_is_an_engine_error(make_engine, a4_page):
    with pytest.raises(EngineError, match="cannot connect"):
        make_engine(refused_url(), refused_url(), max_retries=2).recognize(a4_page, prompt_mode="prompt_layout_all_en")


def test_requests_go_to_the_server_with_fewest_outstanding(make_engine, small_pages):
    with DotsOcrStandin(latency=0.6) as first, DotsOcrStandin(latency=0.6) as second:
        # Room for all four on either server: only least-outstanding spreads them.
        engine = make_engine(first.url, second.url, in_flight_per_server=4)
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(partial(engine.recognize, prompt_mode="prompt_layout_all_en"), small_pages))

        assert all(result.engine == "dotsocr" for result in results)
        assert (len(first.requests), len(second.requests)) == (2, 2)
        assert first.peak_in_flight == second.peak_in_flight == 2


def test_in_flight_budget_holds_with_20_threads(standin, make_engine, small_pages):
    standin.latency = 0.1
    # A transport of our own has httpx's default 100-connection pool, so the engine's
    # budget, not a small connection pool, is what holds requests back.
    engine = make_engine(standin.url, in_flight_per_server=3, transport=httpx.HTTPTransport())
    assert engine.max_concurrency == 3
    start = threading.Barrier(20)

    def recognize(index):
        start.wait()
        return engine.recognize(small_pages[index % 4], prompt_mode="prompt_layout_all_en")

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(recognize, range(20)))

    assert all(result.engine == "dotsocr" and result.cells for result in results)
    assert len(standin.requests) == 20
    assert standin.peak_in_flight == 3  # used to the full, never beyond
    assert engine.pool.snapshot()[0].outstanding == 0


# --- configuration ---------------------------------------------------------------------

ENGINE_VARIABLES = (
    "OCR_ENGINE_URLS",
    "VLLM_IP",
    "VLLM_PORT",
    "VLLM_MODEL_NAME",
    "TEMPERATURE",
    "TOP_P",
    "MAX_COMPLETION_TOKENS",
    "MIN_PIXELS",
    "MAX_PIXELS",
    "OCR_REQUEST_TIMEOUT",
    "OCR_IN_FLIGHT_PER_SERVER",
)


@pytest.fixture
def config_from_env(monkeypatch):
    """The configuration a worker builds from what the settings read of ``environ``."""

    def read(environ):
        for name in ENGINE_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        for name, value in environ.items():
            monkeypatch.setenv(name, value)
        return DotsOcrConfig(**dotsocr_settings(in_flight_per_server=DotsOcrConfig.in_flight_per_server))

    return read


def test_config_defaults_are_the_reference_defaults(config_from_env):
    config = config_from_env({})

    assert config.base_urls == ["http://localhost:8001"]
    assert (config.model_name, config.temperature, config.top_p) == ("model", 0.1, 1.0)
    assert config.max_completion_tokens == 16384
    assert (config.min_pixels, config.max_pixels) == (3136, 11289600)


def test_config_reads_the_original_app_variables(config_from_env):
    config = config_from_env(
        {
            "VLLM_IP": "gpu-1",
            "VLLM_PORT": "9000",
            "VLLM_MODEL_NAME": "dots",
            "TEMPERATURE": "0.2",
            "TOP_P": "0.9",
            "MAX_COMPLETION_TOKENS": "8192",
            "MIN_PIXELS": "4000",
            "MAX_PIXELS": "1000000",
            "OCR_REQUEST_TIMEOUT": "30",
            "OCR_IN_FLIGHT_PER_SERVER": "2",
            "NUM_WORKERS": "ignored",
        }
    )

    assert config.base_urls == ["http://gpu-1:9000"]
    assert (config.model_name, config.temperature, config.top_p) == ("dots", 0.2, 0.9)
    assert config.max_completion_tokens == 8192
    assert (config.min_pixels, config.max_pixels) == (4000, 1000000)
    assert (config.timeout_seconds, config.in_flight_per_server) == (30.0, 2)


def test_engine_urls_override_ip_and_port(config_from_env):
    config = config_from_env(
        {
            "OCR_ENGINE_URLS": " http://gpu-1:8001/v1/ , https://gpu-2:8443,",
            "VLLM_IP": "unused",
            "VLLM_PORT": "",
        }
    )

    assert config.base_urls == ["http://gpu-1:8001", "https://gpu-2:8443"]
    assert config.max_concurrency == 2 * config.in_flight_per_server


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VLLM_PORT", "eighty"),
        ("VLLM_PORT", "70000"),
        ("TEMPERATURE", "hot"),
        ("TOP_P", "0"),
        ("MAX_COMPLETION_TOKENS", "1.5"),
        ("MIN_PIXELS", "100"),
        ("MAX_PIXELS", "99999999"),
        ("OCR_REQUEST_TIMEOUT", "-1"),
        ("OCR_IN_FLIGHT_PER_SERVER", "0"),
        ("OCR_ENGINE_URLS", "gpu-1:8001"),
    ],
)
def test_malformed_setting_names_its_variable(config_from_env, name, value):
    with pytest.raises(ImproperlyConfigured, match=name):
        config_from_env({name: value})


def test_the_settings_defaults_are_the_engines(config_from_env):
    """The settings keep their own copy of the defaults (they never import the engine)."""
    assert config_from_env({}) == DotsOcrConfig()
