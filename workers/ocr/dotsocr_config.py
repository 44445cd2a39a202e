"""How to reach the dots.ocr servers and how to sample from the model: ``DotsOcrConfig``,
its defaults (the reference parser's and the original app's) and its checks.

The settings read the environment (dotsocr_site/engine_settings.py, with the same
defaults; a test checks they agree) and the worker builds ``DotsOcrConfig(**settings.DOTSOCR)``.

No Django here.
"""

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from workers.ocr.smart_resize import MAX_PIXELS, MIN_PIXELS

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


def normalized_base_url(url: str) -> str:
    """``http://host:port`` from what a user may write: a trailing ``/`` or ``/v1`` goes."""
    url = url.strip().rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def is_http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)
