"""The request/response protocol of dots.ocr over vLLM's OpenAI-compatible API: the
reference prompts, the pieces of a chat-completions request, and reading the answer's
envelope (what the model wrote is read by ``workers.ocr.dotsocr_output``).

No Django here.
"""

from dataclasses import dataclass

import httpx

from workers.ocr.base import PROMPT_MODES, EngineError

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


@dataclass(frozen=True)
class Completion:
    content: str
    finish_reason: str | None

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


class TransientFailure(Exception):
    """A failure worth retrying: timeout, 5xx, connection refused or dropped."""


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
