"""The dots.ocr engine: a client for vLLM servers serving ``rednote-hilab/dots.ocr``.

Each request is the one the reference parser sends (dots_ocr/parser.py ->
dots_ocr/model/inference.py, inference_with_vllm): OpenAI chat completions, one user
message holding the page PNG as a base64 data URL and the text
``<|img|><|imgpad|><|endofimg|>`` + prompt. What the model answers is read as the
reference reads it (dots_ocr/utils/layout_utils.py, post_process_output). Where the
reference gives up on a bad answer (its OutputCleaner keeps only the text), this engine
asks again at a higher temperature, keeps the complete cells with their boxes, or falls
back to plain OCR of the page.

Thread-safe: one engine per process, shared by the threads running pages of a job; the
number of requests in flight per server never exceeds ``in_flight_per_server``.
No Django here.
"""

import base64
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import pymupdf

from workers.ocr.base import PROMPT_MODES, Cell, EngineError, PageOcr
from workers.ocr.dotsocr_output import RawCell, ocr_text, parse_layout, salvage_layout
from workers.ocr.smart_resize import MAX_PIXELS, MIN_PIXELS, bbox_to_page, model_input_size
from workers.pdf import PYMUPDF_LOCK, PdfPage

logger = logging.getLogger(__name__)
T = TypeVar("T")

# dots_ocr/utils/prompts.py, dict_promptmode_to_prompt (text must stay byte-exact: the
# model was trained on these).
PROMPTS = {
    "prompt_layout_all_en": (
        "Please output the layout information from the PDF image, including each layout element's "
        "bbox, its category, and the corresponding text content within the bbox.\n"
        "\n"
        "1. Bbox format: [x1, y1, x2, y2]\n"
        "\n"
        "2. Layout Categories: The possible categories are ['Caption', 'Footnote', 'Formula', "
        "'List-item', 'Page-footer', 'Page-header', 'Picture', 'Section-header', 'Table', 'Text', "
        "'Title'].\n"
        "\n"
        "3. Text Extraction & Formatting Rules:\n"
        "    - Picture: For the 'Picture' category, the text field should be omitted.\n"
        "    - Formula: Format its text as LaTeX.\n"
        "    - Table: Format its text as HTML.\n"
        "    - All Others (Text, Title, etc.): Format their text as Markdown.\n"
        "\n"
        "4. Constraints:\n"
        "    - The output text must be the original text from the image, with no translation.\n"
        "    - All layout elements must be sorted according to human reading order.\n"
        "\n"
        "5. Final Output: The entire output must be a single JSON object.\n"
    ),
    "prompt_layout_only_en": (
        "Please output the layout information from this PDF image, including each layout's bbox "
        "and its category. The bbox should be in the format [x1, y1, x2, y2]. The layout "
        "categories for the PDF document include ['Caption', 'Footnote', 'Formula', 'List-item', "
        "'Page-footer', 'Page-header', 'Picture', 'Section-header', 'Table', 'Text', 'Title']. Do "
        "not output the corresponding text. The layout result should be in JSON format."
    ),
    "prompt_ocr": "Extract the text content from this image.",
    "prompt_grounding_ocr": (
        "Extract text from the given bounding box on the image (format: [x1, y1, x2, y2]).\nBounding Box:\n"
    ),
}
# dots_ocr/model/inference.py: without these tokens before the prompt vLLM v1 inserts "\n".
IMAGE_TOKENS = "<|img|><|imgpad|><|endofimg|>"
CHAT_COMPLETIONS_PATH = "/v1/chat/completions"

# dots_ocr/parser.py, DotsOCRParser.__init__ and main(): model_name "model", temperature
# 0.1, top_p 1.0, max_completion_tokens 16384.
DEFAULT_MODEL_NAME = "model"
DEFAULT_TEMPERATURE = 0.1
DEFAULT_TOP_P = 1.0
DEFAULT_MAX_COMPLETION_TOKENS = 16384
# dots_ocr/model/inference.py: the OpenAI client's key is os.environ.get("API_KEY", "0").
DEFAULT_API_KEY = "0"
# Ours, not the reference's (it never retries): a little more randomness is usually
# enough to leave a repetition loop without changing what the model reads.
RETRY_TEMPERATURE = 0.3
# The original app's settings (VLLM_PORT default 8001; the reference parser uses 8000).
DEFAULT_VLLM_IP = "localhost"
DEFAULT_VLLM_PORT = 8001
# A page of dense text can take minutes to generate at 16k tokens; the OpenAI client the
# reference uses waits 600 s.
DEFAULT_TIMEOUT_SECONDS = 600.0
CONNECT_TIMEOUT_SECONDS = 10.0


# Environment variable behind each configurable field, for messages that name it.
ENV_NAMES = {
    "base_urls": "OCR_ENGINE_URLS",
    "model_name": "VLLM_MODEL_NAME",
    "temperature": "TEMPERATURE",
    "top_p": "TOP_P",
    "max_completion_tokens": "MAX_COMPLETION_TOKENS",
    "min_pixels": "MIN_PIXELS",
    "max_pixels": "MAX_PIXELS",
    "timeout_seconds": "OCR_REQUEST_TIMEOUT",
    "in_flight_per_server": "OCR_IN_FLIGHT_PER_SERVER",
}


@dataclass
class DotsOcrConfig:
    """How to reach the dots.ocr servers and how to sample from the model.

    Raises ValueError on construction when a value is out of range.
    """

    base_urls: list[str] = field(default_factory=lambda: [f"http://{DEFAULT_VLLM_IP}:{DEFAULT_VLLM_PORT}"])
    model_name: str = DEFAULT_MODEL_NAME
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = DEFAULT_TOP_P
    max_completion_tokens: int = DEFAULT_MAX_COMPLETION_TOKENS
    min_pixels: int = MIN_PIXELS
    max_pixels: int = MAX_PIXELS
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    # The OpenAI client of dots_ocr/model/inference.py retries twice, from 0.5 s, doubling.
    max_retries: int = 2
    backoff_seconds: float = 0.5
    in_flight_per_server: int = 8
    retry_temperature: float = RETRY_TEMPERATURE
    dead_server_cooldown_seconds: float = 30.0
    api_key: str = field(default=DEFAULT_API_KEY, repr=False)

    def __post_init__(self) -> None:
        self.base_urls = [normalized_base_url(url) for url in self.base_urls]
        problems = config_problems(self)
        if problems:
            raise ValueError(" ".join(problems))

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "DotsOcrConfig":
        """The settings under the original app's variable names (empty counts as unset).

        ``OCR_ENGINE_URLS`` (comma separated) overrides ``VLLM_IP``/``VLLM_PORT``.
        Raises ValueError naming the variable when a value is malformed.
        """
        env = EnvReader(environ)
        urls = [url.strip() for url in env.text("OCR_ENGINE_URLS", "").split(",") if url.strip()]
        if not urls:
            urls = [f"http://{env.text('VLLM_IP', DEFAULT_VLLM_IP)}:{env.port('VLLM_PORT', DEFAULT_VLLM_PORT)}"]
        return cls(
            base_urls=urls,
            model_name=env.text("VLLM_MODEL_NAME", DEFAULT_MODEL_NAME),
            temperature=env.number("TEMPERATURE", DEFAULT_TEMPERATURE),
            top_p=env.number("TOP_P", DEFAULT_TOP_P),
            max_completion_tokens=env.integer("MAX_COMPLETION_TOKENS", DEFAULT_MAX_COMPLETION_TOKENS),
            min_pixels=env.integer("MIN_PIXELS", MIN_PIXELS),
            max_pixels=env.integer("MAX_PIXELS", MAX_PIXELS),
            timeout_seconds=env.number("OCR_REQUEST_TIMEOUT", DEFAULT_TIMEOUT_SECONDS),
            in_flight_per_server=env.integer("OCR_IN_FLIGHT_PER_SERVER", cls.in_flight_per_server),
        )

    @property
    def max_concurrency(self) -> int:
        """Requests this process may have in flight, all servers together."""
        return self.in_flight_per_server * len(self.base_urls)


def config_problems(config: DotsOcrConfig) -> list[str]:
    def named(field_name: str) -> str:
        return ENV_NAMES.get(field_name, field_name)

    problems = []
    checks = (
        (bool(config.base_urls), "base_urls", "at least one server URL"),
        (bool(config.model_name), "model_name", "a model name"),
        (0 <= config.temperature <= 2, "temperature", "between 0 and 2"),
        (0 < config.top_p <= 1, "top_p", "above 0 and at most 1"),
        (config.max_completion_tokens >= 1, "max_completion_tokens", "at least 1"),
        # dots_ocr/parser.py asserts the same bounds; vLLM's image processor clamps to them.
        (MIN_PIXELS <= config.min_pixels <= MAX_PIXELS, "min_pixels", f"between {MIN_PIXELS} and {MAX_PIXELS}"),
        (config.min_pixels <= config.max_pixels <= MAX_PIXELS, "max_pixels", f"between MIN_PIXELS and {MAX_PIXELS}"),
        (config.timeout_seconds > 0, "timeout_seconds", "above 0 seconds"),
        (config.max_retries >= 0, "max_retries", "at least 0"),
        (config.backoff_seconds >= 0, "backoff_seconds", "at least 0 seconds"),
        (config.in_flight_per_server >= 1, "in_flight_per_server", "at least 1"),
        (0 <= config.retry_temperature <= 2, "retry_temperature", "between 0 and 2"),
        (config.dead_server_cooldown_seconds >= 0, "dead_server_cooldown_seconds", "at least 0 seconds"),
    )
    for ok, field_name, expected in checks:
        if not ok:
            problems.append(f"{named(field_name)} must be {expected}, got {getattr(config, field_name)!r}.")
    for url in config.base_urls:
        if not is_http_url(url):
            problems.append(f"{named('base_urls')} has {url!r}, which is not an http(s) URL.")
    return problems


class EnvReader:
    """Typed reads from an environment mapping; a malformed value raises ValueError naming it."""

    def __init__(self, environ: Mapping[str, str]):
        self.environ = environ

    def raw(self, name: str) -> str | None:
        value = (self.environ.get(name) or "").strip()
        return value or None

    def text(self, name: str, default: str) -> str:
        return self.raw(name) or default

    def number(self, name: str, default: float) -> float:
        return self.parsed(name, default, float, "a number")

    def integer(self, name: str, default: int) -> int:
        return self.parsed(name, default, int, "an integer")

    def port(self, name: str, default: int) -> int:
        port = self.integer(name, default)
        if not 1 <= port <= 65535:
            raise ValueError(f"Environment variable {name}={port!r} is not a port number (1-65535).")
        return port

    def parsed(self, name: str, default: T, parse: Callable[[str], T], expected: str) -> T:
        value = self.raw(name)
        if value is None:
            return default
        try:
            return parse(value)
        except ValueError:
            raise ValueError(f"Environment variable {name}={value!r} is not {expected}.") from None


def normalized_base_url(url: str) -> str:
    """``http://host:port`` from what a user may write: a trailing ``/`` or ``/v1`` goes."""
    url = url.strip().rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def is_http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


# --- the image the model sees ----------------------------------------------------------


@dataclass(frozen=True)
class ModelInput:
    """A page image resized the way the model sees it, and the sizes to map boxes back."""

    data_url: str  # the PNG, as dots_ocr/utils/image_utils.py (PILimage_to_base64) sends it
    page_size: tuple[int, int]  # (width, height) of the rendered page
    input_size: tuple[int, int]  # (width, height) sent to the model


def model_input_for(page: PdfPage, *, min_pixels: int, max_pixels: int) -> ModelInput:
    """The rendered page at its smart_resize size, as PNG. Raises EngineError for pages
    the model cannot take (flatter than 1:200).

    The reference parser resizes on the client when min/max pixels are set
    (dots_ocr/utils/image_utils.py, fetch_image) and otherwise leaves it to the server's
    processor, which applies the same smart_resize (idempotent): the model sees the same
    size either way. Resizing here makes the coordinate space explicit and keeps the
    request no larger than what the model reads.
    """
    with PYMUPDF_LOCK:
        pixmap = page.render()
        page_size = (pixmap.width, pixmap.height)
        try:
            input_size = model_input_size(page_size, min_pixels=min_pixels, max_pixels=max_pixels)
        except ValueError as error:
            width, height = page_size
            raise EngineError(f"The page image ({width}x{height} px) cannot be read by dots.ocr: {error}.") from None
        if input_size != page_size:
            pixmap = render_at_size(page, input_size)
        png = pixmap.tobytes("png")
    data_url = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    return ModelInput(data_url=data_url, page_size=page_size, input_size=input_size)


def render_at_size(page: PdfPage, size: tuple[int, int]) -> pymupdf.Pixmap:
    """The page rendered straight at the model's input size: some 25x faster than
    resampling the rendered page (2.5 ms against 67 ms for an A4 page at 200 DPI).
    Falls back to resampling when MuPDF's rounding misses the size by a pixel."""
    width, height = size
    rect = page.page.rect
    matrix = pymupdf.Matrix(width / rect.width, height / rect.height)
    pixmap = page.page.get_pixmap(matrix=matrix, alpha=False, colorspace=pymupdf.csRGB)
    if (pixmap.width, pixmap.height) != size:
        pixmap = pymupdf.Pixmap(page.render(), width, height, None)
    return pixmap


# --- servers ---------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    outstanding: int = 0
    dead_until: float = 0.0


class ServerPool:
    """The dots.ocr servers of this process: least outstanding requests first, at most
    ``in_flight_per_server`` each, servers refusing connections skipped for a cool-down."""

    def __init__(
        self,
        urls: list[str],
        *,
        in_flight_per_server: int,
        cooldown_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.servers = [Server(url) for url in urls]
        self.in_flight_per_server = in_flight_per_server
        self.cooldown_seconds = cooldown_seconds
        self.clock = clock
        self.changed = threading.Condition()

    @contextmanager
    def lease(self) -> Iterator[Server]:
        """A server with a free slot, held for one request; blocks while none is free."""
        with self.changed:
            server = self.changed.wait_for(self.pick, timeout=None)
            assert server is not None  # without a timeout, wait_for returns a server
            server.outstanding += 1
        try:
            yield server
        finally:
            with self.changed:
                server.outstanding -= 1
                self.changed.notify_all()

    def pick(self) -> Server | None:
        now = self.clock()
        live = [server for server in self.servers if server.dead_until <= now]
        # Every server down: try the one that failed longest ago rather than wait out
        # the cool-down; the caller's backoff paces the attempts.
        candidates = live or sorted(self.servers, key=lambda server: server.dead_until)[:1]
        free = [server for server in candidates if server.outstanding < self.in_flight_per_server]
        return min(free, key=lambda server: server.outstanding, default=None)

    def mark_dead(self, server: Server) -> None:
        with self.changed:
            server.dead_until = self.clock() + self.cooldown_seconds
            self.changed.notify_all()

    def mark_alive(self, server: Server) -> None:
        with self.changed:
            server.dead_until = 0.0

    def snapshot(self) -> list[dict[str, Any]]:
        """Per server: URL, requests in flight, whether it is cooling down after a failure."""
        with self.changed:
            now = self.clock()
            return [
                {"url": server.url, "outstanding": server.outstanding, "dead": server.dead_until > now}
                for server in self.servers
            ]


# --- the engine ------------------------------------------------------------------------


@dataclass(frozen=True)
class Completion:
    content: str
    finish_reason: str | None

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


class TransientFailure(Exception):
    """A failure worth retrying: timeout, 5xx, connection refused or dropped."""


# Why a page came back as one block of plain text, by engine path.
TEXT_REASONS = {
    "dotsocr": "dots.ocr read the page as plain text (prompt_ocr)",
    "dotsocr-retry": "dots.ocr read the page as plain text on a retry: its first answer was cut off",
    "dotsocr-salvaged": "dots.ocr's plain-text answers were cut off twice; the longer one, its loop trimmed, is kept",
    "dotsocr-ocr-fallback": "dots.ocr gave no usable layout twice; the page was read as plain text instead",
}


class DotsOcrEngine:
    """Layout cells of a page from dots.ocr over vLLM's OpenAI-compatible API.

    ``PageOcr.engine`` says which path produced the cells: ``dotsocr`` (first answer),
    ``dotsocr-retry`` (second answer, at a higher temperature), ``dotsocr-salvaged``
    (the complete cells of a cut-off answer), ``dotsocr-ocr-fallback`` (plain OCR of the
    page as one Text cell).
    """

    name = "dotsocr"

    def __init__(self, config: DotsOcrConfig, *, transport: httpx.BaseTransport | None = None):
        self.config = config
        self.pool = ServerPool(
            config.base_urls,
            in_flight_per_server=config.in_flight_per_server,
            cooldown_seconds=config.dead_server_cooldown_seconds,
        )
        connections = config.max_concurrency
        self.client = httpx.Client(
            timeout=httpx.Timeout(config.timeout_seconds, connect=min(config.timeout_seconds, CONNECT_TIMEOUT_SECONDS)),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            headers={"Authorization": f"Bearer {config.api_key}"},
            transport=transport,
        )

    @property
    def max_concurrency(self) -> int:
        """How many pages it is useful to recognize at once from threads of this process."""
        return self.config.max_concurrency

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> "DotsOcrEngine":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def recognize(self, page: PdfPage, *, prompt_mode: str) -> PageOcr:
        """Layout cells of one page, boxes in rendered-page pixels. Never returns an empty
        page: raises EngineError when neither the layout nor plain OCR yields content."""
        check_prompt_mode(prompt_mode)
        model_input = model_input_for(page, min_pixels=self.config.min_pixels, max_pixels=self.config.max_pixels)
        if prompt_mode == "prompt_ocr":
            return self.read_text(model_input, page_number=page.number)
        return self.read_layout(model_input, prompt_mode, page_number=page.number)

    def read_layout(self, model_input: ModelInput, prompt_mode: str, *, page_number: int) -> PageOcr:
        first = self.complete(model_input, PROMPTS[prompt_mode], temperature=self.config.temperature)
        raw_cells = parse_layout(first.content)
        if raw_cells:
            return PageOcr(
                cells=page_cells(raw_cells, model_input),
                engine="dotsocr",
                reason=f"dots.ocr read the layout ({prompt_mode})",
            )
        log_unusable(first, page_number, "retrying at a higher temperature")
        second = self.complete(model_input, PROMPTS[prompt_mode], temperature=self.retry_temperature)
        raw_cells = parse_layout(second.content)
        if raw_cells:
            return PageOcr(
                cells=page_cells(raw_cells, model_input),
                engine="dotsocr-retry",
                reason=f"dots.ocr read the layout ({prompt_mode}) on a retry at a higher temperature: "
                "its first answer was not valid layout JSON",
            )
        raw_cells = max(salvage_layout(second.content), salvage_layout(first.content), key=len)
        if raw_cells:
            log_unusable(second, page_number, f"salvaged {len(raw_cells)} complete cells")
            return PageOcr(
                cells=page_cells(raw_cells, model_input),
                engine="dotsocr-salvaged",
                reason=f"dots.ocr's layout answers were cut off twice; {len(raw_cells)} complete cells salvaged",
            )
        log_unusable(second, page_number, "nothing to salvage, falling back to plain OCR")
        return self.read_text(model_input, page_number=page_number, fallback=True)

    def read_text(self, model_input: ModelInput, *, page_number: int, fallback: bool = False) -> PageOcr:
        """Plain OCR of the page as one Text cell covering it (prompt_ocr)."""
        completion = self.complete(model_input, PROMPTS["prompt_ocr"], temperature=self.config.temperature)
        engine = "dotsocr-ocr-fallback" if fallback else "dotsocr"
        if completion.truncated and not fallback:
            log_unusable(completion, page_number, "retrying at a higher temperature")
            engine, completion = self.retry_text(model_input, completion)
        text = ocr_text(completion.content, truncated=completion.truncated)
        if not text:
            raise EngineError("dots.ocr found no content on the page, neither as layout nor as plain text.")
        width, height = model_input.page_size
        return PageOcr(
            cells=[Cell(bbox=(0, 0, width, height), category="Text", text=text)],
            engine=engine,
            reason=TEXT_REASONS[engine],
        )

    def retry_text(self, model_input: ModelInput, first: Completion) -> tuple[str, Completion]:
        retry = self.complete(model_input, PROMPTS["prompt_ocr"], temperature=self.retry_temperature)
        if not retry.truncated:
            return "dotsocr-retry", retry
        # Both cut off: keep whichever leaves more text once its loop is trimmed.
        return "dotsocr-salvaged", max(retry, first, key=lambda answer: len(ocr_text(answer.content, truncated=True)))

    @property
    def retry_temperature(self) -> float:
        return max(self.config.retry_temperature, self.config.temperature)

    def complete(self, model_input: ModelInput, prompt: str, *, temperature: float) -> Completion:
        """One chat completion, retried with backoff on timeouts, 5xx and connection
        failures. Raises EngineError when retries run out or the server rejects the request."""
        body = self.request_body(model_input, prompt, temperature=temperature)
        attempts = self.config.max_retries + 1
        for attempt in range(attempts):
            if attempt:
                time.sleep(self.backoff(attempt))
            with self.pool.lease() as server:
                try:
                    return self.post(server, body)
                except TransientFailure as failure:
                    last_failure = f"{server.url}: {failure}"
                    logger.warning(
                        "dots.ocr request failed attempt=%d/%d server=%s error=%s",
                        attempt + 1,
                        attempts,
                        server.url,
                        failure,
                    )
        raise EngineError(f"The dots.ocr server failed {attempts} times; last error from {last_failure}")

    def request_body(self, model_input: ModelInput, prompt: str, *, temperature: float) -> dict[str, Any]:
        # Field order and content order as the OpenAI client of dots_ocr/model/inference.py
        # sends them.
        return {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": model_input.data_url}},
                        {"type": "text", "text": f"{IMAGE_TOKENS}{prompt}"},
                    ],
                }
            ],
            "model": self.config.model_name,
            "max_completion_tokens": self.config.max_completion_tokens,
            "temperature": temperature,
            "top_p": self.config.top_p,
        }

    def post(self, server: Server, body: dict[str, Any]) -> Completion:
        try:
            response = self.client.post(server.url + CHAT_COMPLETIONS_PATH, json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            self.pool.mark_dead(server)
            raise TransientFailure(f"cannot connect ({error or type(error).__name__})") from None
        except httpx.TimeoutException:
            raise TransientFailure(f"no answer within {self.config.timeout_seconds:g} s") from None
        except httpx.TransportError as error:
            raise TransientFailure(f"connection lost ({error or type(error).__name__})") from None
        self.pool.mark_alive(server)
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientFailure(f"HTTP {response.status_code}: {error_detail(response)}")
        if response.status_code != 200:
            raise EngineError(
                f"The dots.ocr server {server.url} rejected the request: "
                f"HTTP {response.status_code}: {error_detail(response)}"
            )
        return completion_from(response)

    def backoff(self, attempt: int) -> float:
        """Exponential, with jitter so pages failing together do not retry together."""
        return float(self.config.backoff_seconds * 2 ** (attempt - 1) * random.uniform(0.5, 1.5))


def check_prompt_mode(prompt_mode: str) -> None:
    if prompt_mode == "prompt_grounding_ocr":
        # dots_ocr/parser.py, get_prompt: this mode appends a box given by the caller to
        # the prompt; a whole-page conversion has no such box.
        raise EngineError(
            "prompt_grounding_ocr reads the text inside one given bounding box; whole-page conversion cannot use it."
        )
    if prompt_mode not in PROMPT_MODES:
        raise EngineError(f"Unknown prompt mode {prompt_mode!r}; choose one of {', '.join(PROMPT_MODES)}.")


def completion_from(response: httpx.Response) -> Completion:
    try:
        choice = response.json()["choices"][0]
        content = choice["message"]["content"]
    except (ValueError, LookupError, TypeError):
        raise TransientFailure(f"malformed answer: {response.text[:200]!r}") from None
    return Completion(content=content or "", finish_reason=choice.get("finish_reason"))


def error_detail(response: httpx.Response) -> str:
    """The message of an OpenAI-style error body, else the start of the body."""
    try:
        answer = response.json()
        message = answer.get("message") or answer.get("error", {}).get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or response.text[:200] or response.reason_phrase)


def page_cells(raw_cells: list[RawCell], model_input: ModelInput) -> list[Cell]:
    """Model cells as page cells: boxes mapped to the rendered page; pictures that fall
    outside it dropped (there is nothing to crop)."""
    cells = []
    for raw in raw_cells:
        x1, y1, x2, y2 = raw["bbox"]
        bbox = bbox_to_page((x1, y1, x2, y2), input_size=model_input.input_size, page_size=model_input.page_size)
        if raw["category"] == "Picture" and (bbox[0] == bbox[2] or bbox[1] == bbox[3]):
            continue
        cells.append(Cell(bbox=bbox, category=raw["category"], text=raw["text"]))
    return cells


def log_unusable(completion: Completion, page_number: int, action: str) -> None:
    logger.warning(
        "dots.ocr answer unusable page=%d finish_reason=%s chars=%d action=%r",
        page_number + 1,
        completion.finish_reason,
        len(completion.content),
        action,
    )
