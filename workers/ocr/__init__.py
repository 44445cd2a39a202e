"""OCR engines. ``engine_for`` picks the implementation for a job's engine setting."""

import dataclasses

from workers.ocr.auto import AutoDotsOcr, AutoEngine
from workers.ocr.base import EngineError, OcrEngine
from workers.ocr.dotsocr import DotsOcrEngine
from workers.ocr.dotsocr_config import DotsOcrConfig
from workers.ocr.noop import NoopEngine
from workers.ocr.rapidocr import RapidOcrEngine
from workers.ocr.textlayer import TextLayerEngine

__all__ = ["DotsOcrConfig", "EngineError", "OcrEngine", "engine_for", "ENGINES"]

# "noop" reads nothing (one placeholder cell per page): for benchmarks of the queue.
ENGINES = ("auto", "textlayer", "rapidocr", "dotsocr", "noop")
_dotsocr_engines: dict[str, DotsOcrEngine] = {}


def engine_for(name: str, *, dotsocr: DotsOcrConfig | None = None) -> OcrEngine:
    """The engine for a conversion's ``engine`` field. Raises EngineError for unknown names.

    ``auto`` is dots.ocr when a server is configured (``dotsocr`` given), else per page
    the text layer or OCR (``AutoEngine``). The dots.ocr engine is one per process and configuration (equal
    configurations share one, whichever object holds them), so its in-flight budget and connections are shared by
    every job the process runs.
    """
    if name == "textlayer":
        return TextLayerEngine()
    if name == "rapidocr":
        return RapidOcrEngine()
    if name == "noop":
        return NoopEngine()
    if name == "auto" and dotsocr is None:
        return AutoEngine()
    if name in ("auto", "dotsocr"):
        if dotsocr is None:
            raise EngineError("The dots.ocr engine is not configured: set OCR_ENGINE_URLS or VLLM_IP/VLLM_PORT.")
        key = repr(dataclasses.astuple(dotsocr))
        if key not in _dotsocr_engines:
            _dotsocr_engines[key] = DotsOcrEngine(dotsocr)
        engine = _dotsocr_engines[key]
        return AutoDotsOcr(engine) if name == "auto" else engine
    raise EngineError(f"Unknown OCR engine {name!r}; choose one of {', '.join(ENGINES)}.")
