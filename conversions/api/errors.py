"""The one place where errors become HTTP answers: always ``{"detail": ...}``."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from conversions.exceptions import (
    DocumentTooLarge,
    DomainError,
    Gone,
    IdempotencyConflict,
    IllegalTransition,
    InvalidPageSelection,
    InvalidParameter,
    InvalidRequest,
    NotFound,
    QueueFull,
    ResultNotReady,
    UnsupportedDocumentType,
)

STATUS_FOR = (
    (DocumentTooLarge, status.HTTP_413_REQUEST_ENTITY_TOO_LARGE),
    (UnsupportedDocumentType, status.HTTP_415_UNSUPPORTED_MEDIA_TYPE),
    (InvalidPageSelection, status.HTTP_422_UNPROCESSABLE_ENTITY),
    (InvalidRequest, status.HTTP_400_BAD_REQUEST),
    (NotFound, status.HTTP_404_NOT_FOUND),
    (IllegalTransition, status.HTTP_409_CONFLICT),
    (IdempotencyConflict, status.HTTP_422_UNPROCESSABLE_ENTITY),
    (InvalidParameter, status.HTTP_422_UNPROCESSABLE_ENTITY),
    (ResultNotReady, status.HTTP_409_CONFLICT),
    (Gone, status.HTTP_410_GONE),
    # Like a rate limit, it lifts by itself as the user's jobs start: retry later.
    (QueueFull, status.HTTP_429_TOO_MANY_REQUESTS),
)


def exception_handler(error, context):
    if isinstance(error, RequestDataTooBig):
        limit_mb = settings.DATA_UPLOAD_MAX_MEMORY_SIZE / (1024 * 1024)
        return Response(
            {"detail": f"The request body is larger than the {limit_mb:g} MB limit for non-file data."},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(error, (TooManyFieldsSent, TooManyFilesSent)):
        return Response({"detail": str(error)}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(error, DomainError):
        code = next(code for kind, code in STATUS_FOR if isinstance(error, kind))
        return Response({"detail": error.detail}, status=code)
    if isinstance(error, ValidationError):
        return Response(
            {"detail": validation_summary(error.detail), "errors": error.detail},
            status=status.HTTP_400_BAD_REQUEST,
        )
    return drf_exception_handler(error, context)


def validation_summary(detail) -> str:
    """One readable line from DRF's nested validation errors."""
    if isinstance(detail, dict):
        parts = []
        for field, messages in detail.items():
            text = validation_summary(messages)
            parts.append(text if field == "non_field_errors" else f"{field}: {text}")
        return "; ".join(parts)
    if isinstance(detail, list):
        return " ".join(validation_summary(item) for item in detail)
    return str(detail)
