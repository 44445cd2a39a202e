"""OCR engines. ``engine_for`` picks the implementation for a job's engine setting."""

from workers.ocr.base import EngineError, OcrEngine
from workers.ocr.textlayer import TextLayerEngine

ENGINES = ("auto", "textlayer")


def engine_for(name: str) -> OcrEngine:
    """The engine for a conversion's ``engine`` field. Raises EngineError for unknown names.

    ``auto`` is the text layer until a vision engine is configured (engines issue).
    """
    if name in ("auto", "textlayer"):
        return TextLayerEngine()
    raise EngineError(f"Unknown OCR engine {name!r}; choose one of {', '.join(ENGINES)}.")
