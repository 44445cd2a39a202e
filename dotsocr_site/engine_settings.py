"""The dots.ocr engine's settings, read under the original app's variable names.

Plain values only, so the settings never import the engine: the worker builds
``workers.ocr.dotsocr_config.DotsOcrConfig(**settings.DOTSOCR)`` from them (the engine
checks them again there). The defaults are the ones ``DotsOcrConfig`` has;
tests/test_dotsocr_engine.py checks that the two agree.
"""

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotsocr_site.env import env_float, env_int, env_port, env_str, env_urls

# The original app's settings (VLLM_PORT default 8001; the reference parser uses 8000).
DEFAULT_VLLM_IP = "localhost"
DEFAULT_VLLM_PORT = 8001
# dots_ocr/parser.py, DotsOCRParser.__init__ and main(): model_name "model", temperature
# 0.1, top_p 1.0, max_completion_tokens 16384.
DEFAULT_MODEL_NAME = "model"
DEFAULT_TEMPERATURE = 0.1
DEFAULT_TOP_P = 1.0
DEFAULT_MAX_COMPLETION_TOKENS = 16384
# dots_ocr/utils/consts.py (MIN_PIXELS, MAX_PIXELS): dots_ocr/parser.py asserts a
# configured pair lies within them; vLLM's image processor clamps to them.
MIN_PIXELS = 3136
MAX_PIXELS = 11289600
# A page of dense text can take minutes to generate at 16k tokens; the OpenAI client the
# reference uses waits 600 s.
DEFAULT_TIMEOUT_SECONDS = 600.0


def dotsocr_settings(*, in_flight_per_server: int) -> dict[str, Any]:
    """The keyword arguments of ``DotsOcrConfig``, from the environment (empty counts as unset).

    ``OCR_ENGINE_URLS`` (comma separated) overrides ``VLLM_IP``/``VLLM_PORT``;
    ``in_flight_per_server`` is the default of ``OCR_IN_FLIGHT_PER_SERVER``. Raises
    ImproperlyConfigured naming the variable when a value is malformed or out of range.
    """
    base_urls = env_urls("OCR_ENGINE_URLS") or [
        f"http://{env_str('VLLM_IP', DEFAULT_VLLM_IP)}:{env_port('VLLM_PORT', DEFAULT_VLLM_PORT)}"
    ]
    min_pixels = env_int("MIN_PIXELS", MIN_PIXELS, minimum=MIN_PIXELS, maximum=MAX_PIXELS)
    return {
        "base_urls": base_urls,
        "model_name": env_str("VLLM_MODEL_NAME", DEFAULT_MODEL_NAME),
        "temperature": env_float("TEMPERATURE", DEFAULT_TEMPERATURE, minimum=0, maximum=2),
        "top_p": env_float("TOP_P", DEFAULT_TOP_P, above=0, maximum=1),
        "max_completion_tokens": env_int("MAX_COMPLETION_TOKENS", DEFAULT_MAX_COMPLETION_TOKENS, minimum=1),
        "min_pixels": min_pixels,
        "max_pixels": env_int("MAX_PIXELS", MAX_PIXELS, minimum=min_pixels, maximum=MAX_PIXELS),
        "timeout_seconds": env_float("OCR_REQUEST_TIMEOUT", DEFAULT_TIMEOUT_SECONDS, above=0),
        "in_flight_per_server": env_int("OCR_IN_FLIGHT_PER_SERVER", in_flight_per_server, minimum=1),
    }


def dotsocr_configured() -> bool:
    """Whether a dots.ocr server is named (``auto`` then uses it)."""
    return bool(env_str("OCR_ENGINE_URLS", "") or env_str("VLLM_IP", ""))


def original_app_config(dotsocr: dict[str, Any], *, num_thread: int, dpi: int, output_dir: Path) -> dict[str, Any]:
    """The OCR half of what the original app's GET /config answers."""
    first_server = urlsplit(dotsocr["base_urls"][0])
    return {
        "vllm_ip": first_server.hostname,
        "vllm_port": first_server.port,
        "model_name": dotsocr["model_name"],
        "temperature": dotsocr["temperature"],
        "top_p": dotsocr["top_p"],
        "max_completion_tokens": dotsocr["max_completion_tokens"],
        "num_thread": num_thread,
        "dpi": dpi,
        "output_dir": str(output_dir),
        "min_pixels": dotsocr["min_pixels"],
        "max_pixels": dotsocr["max_pixels"],
    }
