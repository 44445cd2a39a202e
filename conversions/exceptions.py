"""Domain errors raised by services and selectors; translated to HTTP in one place
(``conversions.api.errors``)."""


class DomainError(Exception):
    """Base class: ``detail`` is the message a client sees."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


class InvalidRequest(DomainError):
    """A request names a value the service does not accept."""


class InvalidParameter(DomainError):
    """A parameter has a value of the wrong kind, or one that cannot apply here (the
    original app's validation answered 422)."""


class InvalidDocument(InvalidRequest):
    """The upload is not a file we can convert (empty, damaged, encrypted...)."""


class UnsupportedDocumentType(InvalidDocument):
    """The upload's bytes are of a type the service does not convert (HTTP 415)."""


class DocumentTooLarge(InvalidDocument):
    """The upload exceeds MAX_UPLOAD_MB or MAX_PAGES."""


class IllegalTransition(DomainError):
    """The conversion is not in a state that allows the requested change."""


class IdempotencyConflict(DomainError):
    """An Idempotency-Key already named a different request."""


class QueueFull(DomainError):
    """The user already has as many conversions waiting as MAX_QUEUED_PER_USER allows."""


class NotFound(DomainError):
    """No such object for this caller (also used for objects the caller may not see)."""


class ResultNotReady(DomainError):
    """The conversion has no result yet (or never will)."""


class Gone(DomainError):
    """The result existed and was removed: RESULT_TTL_HOURS expired it (HTTP 410)."""


class LostClaim(DomainError):
    """A worker tried to write to a conversion it no longer owns."""


class InvalidPageSelection(InvalidRequest):
    """``pages`` is malformed, empty, reversed or past the document's last page."""
