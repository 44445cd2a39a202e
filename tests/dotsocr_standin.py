"""A stand-in for ``vllm serve rednote-hilab/dots.ocr``: an OpenAI-compatible chat
completions server that checks each request is the one the reference dots.ocr parser
sends, and answers as the model does, or misbehaves on cue.

    with DotsOcrStandin() as server:
        server.script(HTTP_500, NORMAL)   # the next two requests; then `server.mode`
        ... DotsOcrConfig(base_urls=[server.url]) ...
        server.requests                   # what was received, validated

    DotsOcrStandin(latency=2.0, capacity=64)  # a GPU batch: 64 answered at once, the rest queue

Independent of ``workers.ocr.dotsocr`` on purpose: it keeps its own copy of the
reference prompts and size rules, so it catches a client that drifts from them.
"""

import base64
import binascii
import json
import socket
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pymupdf

# Behaviours, per request.
NORMAL = "normal"  # the model's answer for the prompt
TRUNCATED = "truncated"  # layout JSON cut mid-element, finish_reason "length"
REPETITION = "repetition"  # a cell repeated until the token limit, finish_reason "length"
INVALID_JSON = "invalid-json"  # prose instead of JSON, finish_reason "stop"
EMPTY = "empty"  # "[]" for layout prompts, "" for prompt_ocr
HTTP_500 = "http-500"
SLOW = "slow"  # a normal answer after `slow_seconds`
DROP = "drop"  # read the request, close the connection without answering
BEHAVIOURS = (NORMAL, TRUNCATED, REPETITION, INVALID_JSON, EMPTY, HTTP_500, SLOW, DROP)

CHAT_PATH = "/v1/chat/completions"
HEALTH_PATH = "/health"  # vLLM's liveness route: 200, empty body
IMAGE_TOKENS = "<|img|><|imgpad|><|endofimg|>"
REQUEST_FIELDS = ("messages", "model", "max_completion_tokens", "temperature", "top_p")
FACTOR, MIN_PIXELS, MAX_PIXELS = 28, 3136, 11289600
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# The prompts of dots_ocr/utils/prompts.py, copied independently of the engine's copy.
KNOWN_PROMPTS = {
    "prompt_layout_all_en": (
        "Please output the layout information from the PDF image, including each layout element's bbox, "
        "its category, and the corresponding text content within the bbox.\n\n"
        "1. Bbox format: [x1, y1, x2, y2]\n\n"
        "2. Layout Categories: The possible categories are ['Caption', 'Footnote', 'Formula', 'List-item', "
        "'Page-footer', 'Page-header', 'Picture', 'Section-header', 'Table', 'Text', 'Title'].\n\n"
        "3. Text Extraction & Formatting Rules:\n"
        "    - Picture: For the 'Picture' category, the text field should be omitted.\n"
        "    - Formula: Format its text as LaTeX.\n"
        "    - Table: Format its text as HTML.\n"
        "    - All Others (Text, Title, etc.): Format their text as Markdown.\n\n"
        "4. Constraints:\n"
        "    - The output text must be the original text from the image, with no translation.\n"
        "    - All layout elements must be sorted according to human reading order.\n\n"
        "5. Final Output: The entire output must be a single JSON object.\n"
    ),
    "prompt_layout_only_en": (
        "Please output the layout information from this PDF image, including each layout's bbox and its "
        "category. The bbox should be in the format [x1, y1, x2, y2]. The layout categories for the PDF "
        "document include ['Caption', 'Footnote', 'Formula', 'List-item', 'Page-footer', 'Page-header', "
        "'Picture', 'Section-header', 'Table', 'Text', 'Title']. Do not output the corresponding text. "
        "The layout result should be in JSON format."
    ),
    "prompt_ocr": "Extract the text content from this image.",
    "prompt_grounding_ocr": (
        "Extract text from the given bounding box on the image (format: [x1, y1, x2, y2]).\nBounding Box:\n"
    ),
}
LAYOUT_PROMPTS = ("prompt_layout_all_en", "prompt_layout_only_en")

# A realistic page: (category, box as fractions of the image, text).
PAGE_LAYOUT = (
    ("Page-header", (0.10, 0.03, 0.55, 0.05), "Journal of Stand-in Studies, Vol. 3"),
    ("Title", (0.15, 0.08, 0.85, 0.12), "# On Answering Like a Model"),
    ("Section-header", (0.10, 0.15, 0.45, 0.17), "## 1 Introduction"),
    ("Text", (0.10, 0.18, 0.90, 0.30), "Layout parsing turns a page image into **cells**: boxes, categories, text."),
    ("Formula", (0.30, 0.31, 0.70, 0.35), "$$\\frac{a}{b} = \\sum_{i=1}^{n} x_{i}$$"),
    ("List-item", (0.12, 0.36, 0.90, 0.39), "- Boxes are in pixels of the image the model saw."),
    ("Picture", (0.20, 0.41, 0.80, 0.62), None),
    ("Caption", (0.20, 0.63, 0.80, 0.65), "Figure 1: A picture, with a caption."),
    ("Table", (0.10, 0.67, 0.90, 0.80), "<table><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>"),
    ("Footnote", (0.10, 0.88, 0.90, 0.91), "1 A footnote {with braces}."),
    ("Page-footer", (0.48, 0.95, 0.52, 0.97), "1"),
)
OCR_TEXT = "# On Answering Like a Model\n\n## 1 Introduction\n\nLayout parsing turns a page image into cells."
PROSE = "The image shows a page of a scientific article with a title, a figure and a table."
REPEATED_CELLS = 400


def layout_for(size: tuple[int, int], *, with_text: bool = True) -> list[dict]:
    """The cells the stand-in answers for an image of ``size`` (width, height), in its pixels."""
    width, height = size
    cells = []
    for category, (x1, y1, x2, y2), text in PAGE_LAYOUT:
        bbox = [round(x1 * width), round(y1 * height), round(x2 * width), round(y2 * height)]
        cell = {"bbox": bbox, "category": category}
        if with_text and text is not None:
            cell["text"] = text
        cells.append(cell)
    return cells


class InvalidRequest(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class ReceivedRequest:
    path: str
    headers: dict
    body: dict
    image_size: tuple[int, int]  # (width, height) of the PNG
    prompt_mode: str
    behaviour: str = ""

    @property
    def text(self) -> str:
        return self.body["messages"][0]["content"][1]["text"]


@dataclass
class Rejection:
    path: str
    status: int
    message: str


@dataclass
class DotsOcrStandin:
    """The server; use as a context manager, or call start() and stop()."""

    model_name: str = "model"
    mode: str = NORMAL  # behaviour once the script is used up
    latency: float = 0.0  # seconds added to every answer
    slow_seconds: float = 2.0
    # Requests worked on at once, as vLLM's batch (max_num_seqs) bounds them; the others
    # wait for a slot, unanswered. None: no limit.
    capacity: int | None = None
    requests: list = field(default_factory=list)
    rejections: list = field(default_factory=list)
    in_flight: int = 0  # received and not yet answered, queued for a slot or not
    peak_in_flight: int = 0

    def __post_init__(self):
        if self.capacity is not None and self.capacity < 1:
            raise ValueError(f"capacity must be at least 1 or None, got {self.capacity!r}")
        self.lock = threading.Lock()
        self.slots = threading.Semaphore(self.capacity) if self.capacity else None
        self.queue = deque()
        self.stopping = threading.Event()
        self.httpd = None
        self.thread = None

    # --- control ---------------------------------------------------------------------

    def script(self, *behaviours: str) -> None:
        """Behaviours for the next requests, in order of arrival."""
        unknown = [behaviour for behaviour in behaviours if behaviour not in BEHAVIOURS]
        if unknown:
            raise ValueError(f"unknown behaviours {unknown}; choose from {BEHAVIOURS}")
        with self.lock:
            self.queue.extend(behaviours)

    def start(self) -> "DotsOcrStandin":
        self.httpd = StandinServer(("127.0.0.1", 0), StandinHandler)
        self.httpd.daemon_threads = True
        self.httpd.standin = self
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(timeout=5)
            self.httpd = None

    def __enter__(self) -> "DotsOcrStandin":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    # --- serving ---------------------------------------------------------------------

    def next_behaviour(self) -> str:
        with self.lock:
            return self.queue.popleft() if self.queue else self.mode

    def enter(self) -> None:
        with self.lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1

    @contextmanager
    def slot(self) -> Iterator[bool]:
        """Hold one of the ``capacity`` slots while answering; yields False if the server
        stopped before one was free."""
        if self.slots is None:
            yield True
            return
        while not self.slots.acquire(timeout=0.05):
            if self.stopping.is_set():
                yield False
                return
        try:
            yield True
        finally:
            self.slots.release()

    def validate(self, path: str, headers: dict, raw: bytes) -> ReceivedRequest:
        """The request if it is what the reference parser sends; raises InvalidRequest."""
        if path != CHAT_PATH:
            raise InvalidRequest(f"Not Found: {path}", 404)
        if not headers.get("content-type", "").startswith("application/json"):
            raise InvalidRequest(f"content-type must be application/json, got {headers.get('content-type')!r}")
        try:
            body = json.loads(raw)
        except ValueError as error:
            raise InvalidRequest(f"body is not JSON: {error}") from None
        if not isinstance(body, dict) or set(body) != set(REQUEST_FIELDS):
            got = sorted(body) if isinstance(body, dict) else body
            raise InvalidRequest(f"fields must be exactly {sorted(REQUEST_FIELDS)}, got {got!r}")
        if body["model"] != self.model_name:
            raise InvalidRequest(f"The model `{body['model']}` does not exist.", 404)
        check_sampling(body)
        image_part, text_part = message_parts(body["messages"])
        image_size = png_size(image_part)
        prompt_mode = prompt_mode_of(text_part)
        return ReceivedRequest(path=path, headers=headers, body=body, image_size=image_size, prompt_mode=prompt_mode)

    def reply_to(self, path: str, headers: dict, raw: bytes) -> tuple[int, dict] | None:
        """(status, JSON body) to answer with, or None to drop the connection."""
        if self.latency:
            self.stopping.wait(self.latency)
        try:
            request = self.validate(path, headers, raw)
        except InvalidRequest as error:
            with self.lock:
                self.rejections.append(Rejection(path, error.status, str(error)))
            return error.status, openai_error(str(error), error.status)
        request.behaviour = self.next_behaviour()
        with self.lock:
            self.requests.append(request)
        if request.behaviour == DROP:
            return None
        if request.behaviour == HTTP_500:
            return 500, openai_error("EngineCore encountered an issue.", 500)
        if request.behaviour == SLOW:
            self.stopping.wait(self.slow_seconds)
        content, finish_reason = self.answer(request, request.behaviour)
        return 200, self.completion_body(request, content, finish_reason)

    def answer(self, request: ReceivedRequest, behaviour: str) -> tuple[str, str]:
        """(content, finish_reason) for a valid request."""
        layout = request.prompt_mode in LAYOUT_PROMPTS
        cells = layout_for(request.image_size, with_text=request.prompt_mode == "prompt_layout_all_en")
        complete = json.dumps(cells, ensure_ascii=False)
        if behaviour == EMPTY:
            return ("[]" if layout else ""), "stop"
        if behaviour == INVALID_JSON:
            return PROSE, "stop"
        if behaviour == TRUNCATED:
            return (complete[: int(len(complete) * 0.6)] if layout else OCR_TEXT + "\nLayout parsing tur"), "length"
        if behaviour == REPETITION:
            return repetition_loop(cells, layout), "length"
        return (complete if layout else OCR_TEXT), "stop"

    def completion_body(self, request: ReceivedRequest, content: str, finish_reason: str) -> dict:
        width, height = request.image_size
        prompt_tokens = width * height // (FACTOR * FACTOR) + len(request.text) // 4
        completion_tokens = max(1, len(content) // 3)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "tool_calls": []},
                    "logprobs": None,
                    "finish_reason": finish_reason,
                    "stop_reason": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "completion_tokens": completion_tokens,
            },
            "prompt_logprobs": None,
        }


def check_sampling(body: dict) -> None:
    def number(name):
        value = body[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidRequest(f"{name} must be a number, got {value!r}")
        return value

    if not 0 <= number("temperature") <= 2:
        raise InvalidRequest(f"temperature must be in [0, 2], got {body['temperature']}")
    if not 0 < number("top_p") <= 1:
        raise InvalidRequest(f"top_p must be in (0, 1], got {body['top_p']}")
    tokens = body["max_completion_tokens"]
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
        raise InvalidRequest(f"max_completion_tokens must be a positive integer, got {tokens!r}")


def message_parts(messages) -> tuple[dict, dict]:
    """The image and text parts of the one user message."""
    if not (isinstance(messages, list) and len(messages) == 1 and isinstance(messages[0], dict)):
        raise InvalidRequest(f"expected exactly one message, got {messages!r:.200}")
    message = messages[0]
    if set(message) != {"role", "content"} or message["role"] != "user":
        raise InvalidRequest(f"expected one user message with role and content, got keys {sorted(message)}")
    content = message["content"]
    if not (isinstance(content, list) and len(content) == 2):
        raise InvalidRequest("content must be a list of [image_url part, text part]")
    image_part, text_part = content
    is_image_part = isinstance(image_part, dict) and set(image_part) == {"type", "image_url"}
    if not is_image_part or image_part["type"] != "image_url":
        raise InvalidRequest(f"first content part must be an image_url part, got {str(image_part)[:200]}")
    if not (isinstance(image_part["image_url"], dict) and set(image_part["image_url"]) == {"url"}):
        raise InvalidRequest('image_url must be {"url": ...}')
    if not (isinstance(text_part, dict) and set(text_part) == {"type", "text"} and text_part["type"] == "text"):
        raise InvalidRequest(f"second content part must be a text part, got {str(text_part)[:200]}")
    return image_part, text_part


def png_size(image_part: dict) -> tuple[int, int]:
    """(width, height) of the PNG data URL, checked to be a smart_resize result."""
    url = image_part["image_url"]["url"]
    prefix = "data:image/png;base64,"
    if not isinstance(url, str) or not url.startswith(prefix):
        raise InvalidRequest(f"image url must be a {prefix} data URL, got {str(url)[:40]!r}")
    try:
        png = base64.b64decode(url[len(prefix) :], validate=True)
    except (binascii.Error, ValueError) as error:
        raise InvalidRequest(f"image is not valid base64: {error}") from None
    if png[:8] != PNG_SIGNATURE or png[12:16] != b"IHDR":
        raise InvalidRequest("image is not a PNG")
    width, height = struct.unpack(">II", png[16:24])
    try:
        pixmap = pymupdf.Pixmap(png)
    except Exception as error:  # noqa: BLE001 - any decoder failure means a broken PNG
        raise InvalidRequest(f"PNG does not decode: {error}") from None
    if (pixmap.width, pixmap.height) != (width, height):
        raise InvalidRequest("PNG header and pixels disagree")
    if width % FACTOR or height % FACTOR:
        raise InvalidRequest(f"image {width}x{height} is not a smart_resize result: sides must be multiples of 28")
    if not MIN_PIXELS <= width * height <= MAX_PIXELS:
        raise InvalidRequest(f"image {width}x{height} has {width * height} pixels, not in [{MIN_PIXELS}, {MAX_PIXELS}]")
    return width, height


def prompt_mode_of(text_part: dict) -> str:
    text = text_part["text"]
    if not isinstance(text, str) or not text.startswith(IMAGE_TOKENS):
        raise InvalidRequest(f"text must start with {IMAGE_TOKENS}, got {str(text)[:60]!r}")
    prompt = text[len(IMAGE_TOKENS) :]
    for mode, known in KNOWN_PROMPTS.items():
        if prompt == known:
            return mode
    raise InvalidRequest(f"unknown prompt {prompt[:80]!r}")


def repetition_loop(cells: list[dict], layout: bool) -> str:
    """Three good cells, then one cell over and over until the tokens run out."""
    if not layout:
        return OCR_TEXT + "\n" + "Layout parsing turns a page image into cells.\n" * REPEATED_CELLS + "Layout pars"
    x1, y1, x2, y2 = cells[3]["bbox"]
    looping = dict(cells[3], bbox=[x1, y1 + 1, x2, y2 + 1])
    text = json.dumps(cells[:3], ensure_ascii=False)[:-1]
    text += ", " + ", ".join([json.dumps(looping, ensure_ascii=False)] * REPEATED_CELLS)
    return text + ', {"bbox": [12, 3'


class StandinServer(ThreadingHTTPServer):
    # A job opens dozens of connections at once; the default backlog of 5 would drop
    # SYNs and add seconds of retransmission to a benchmark (uvicorn listens with 2048).
    request_queue_size = 256


class StandinHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as vLLM's server
    server_version = "uvicorn"

    def setup(self):
        super().setup()
        # No Nagle, as uvicorn's asyncio transports: headers and body go out in two
        # writes, and the body would wait ~40 ms for the client's delayed ACK.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self):  # noqa: N802 - http.server's naming
        standin = self.server.standin
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        standin.enter()
        try:
            with standin.slot() as served:
                reply = standin.reply_to(self.path, headers, raw) if served else None
        finally:
            # Leave before answering: once the client has the answer it may send the next
            # request, which must not be counted together with this one.
            standin.leave()
        if reply is None:
            self.close_connection = True  # dropped: no answer at all
            return
        try:
            self.send_json(*reply)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (timeout tests)

    def do_GET(self):  # noqa: N802
        if self.path == HEALTH_PATH:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_json(404, openai_error(f"Not Found: {self.path}", 404))

    def send_json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):  # noqa: A002 - quiet test output
        pass


def openai_error(message: str, status: int) -> dict:
    kinds = {400: "BadRequestError", 404: "NotFoundError", 500: "InternalServerError"}
    return {"object": "error", "message": message, "type": kinds.get(status, "Error"), "param": None, "code": status}


def refused_url() -> str:
    """The URL of a local port nothing listens on: connections to it are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def use_standin(settings, standin: "DotsOcrStandin", *, in_flight_per_server: int, threads: int) -> None:
    """Point the service's dots.ocr engine at ``standin`` (5 s timeout, one quick retry),
    with ``in_flight_per_server`` requests at once and ``threads`` page threads per job."""
    settings.DOTSOCR = {
        "base_urls": [standin.url],
        "in_flight_per_server": in_flight_per_server,
        "timeout_seconds": 5,
        "max_retries": 1,
        "backoff_seconds": 0.01,
    }
    settings.DOTSOCR_CONFIGURED = True
    settings.NUM_THREAD = threads
