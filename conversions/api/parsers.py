"""Request body parsers: DRF's, with the one case DRF lets through as a server error."""

from collections.abc import Mapping
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

NESTED_TOO_DEEPLY = "The request body cannot be parsed: it is nested too deeply."


class JSONParser(parsers.JSONParser):
    """DRF's JSONParser; a body nested deeper than Python's recursion limit (json.loads
    recurses once per level: ``[[[[...`` 100,000 deep) is a 400 with ``{"detail": ...}``,
    not a 500 (DRF only turns ValueError into a ParseError)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(NESTED_TOO_DEEPLY) from None
