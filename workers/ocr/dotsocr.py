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

import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx

from workers.ocr.base import Cell, EngineError, PageOcr
from workers.ocr.dotsocr_config import CONNECT_TIMEOUT_SECONDS, DotsOcrConfig
from workers.ocr.dotsocr_output import ocr_text, parse_layout, salvage_layout
from workers.ocr.dotsocr_page import ModelInput, model_input_for, page_cells
from workers.ocr.dotsocr_pool import Server, ServerPool
from workers.ocr.dotsocr_protocol import (
    CHAT_COMPLETIONS_PATH,
    IMAGE_TOKENS,
    PROMPTS,
    Completion,
    TransientFailure,
    check_prompt_mode,
    completion_from,
    error_detail,
)
from workers.pdf import PdfPage

logger = logging.getLogger(__name__)


# Why a page came back as one block of plain text, by engine path.
TEXT_REASONS = {
    "dotsocr": "dots.ocr read the page as plain text (prompt_ocr)",
    "dotsocr-retry": "dots.ocr read the page as plain text on a retry: its first answer was cut off",
    "dotsocr-salvaged": "dots.ocr's plain-text answers were cut off twice; the longer one, its loop trimmed, is kept",
    "dotsocr-ocr-fallback": "dots.ocr gave no usable layout twice; the page was read as plain text instead",
}


@dataclass(frozen=True)
class TextAnswer:
    """The plain-text answer kept for a page, and the path that produced it (``PageOcr.engine``)."""

    engine: str
    completion: Completion


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
            answer = self.retry_text(model_input, completion)
            engine, completion = answer.engine, answer.completion
        text = ocr_text(completion.content, truncated=completion.truncated)
        if not text:
            raise EngineError("dots.ocr found no content on the page, neither as layout nor as plain text.")
        width, height = model_input.page_size
        return PageOcr(
            cells=[Cell(bbox=(0, 0, width, height), category="Text", text=text)],
            engine=engine,
            reason=TEXT_REASONS[engine],
        )

    def retry_text(self, model_input: ModelInput, first: Completion) -> TextAnswer:
        retry = self.complete(model_input, PROMPTS["prompt_ocr"], temperature=self.retry_temperature)
        if not retry.truncated:
            return TextAnswer(engine="dotsocr-retry", completion=retry)
        # Both cut off: keep whichever leaves more text once its loop is trimmed.
        longer = max(retry, first, key=lambda answer: len(ocr_text(answer.content, truncated=True)))
        return TextAnswer(engine="dotsocr-salvaged", completion=longer)

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


def log_unusable(completion: Completion, page_number: int, action: str) -> None:
    logger.warning(
        "dots.ocr answer unusable page=%d finish_reason=%s chars=%d action=%r",
        page_number + 1,
        completion.finish_reason,
        len(completion.content),
        action,
    )
