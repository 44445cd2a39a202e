"""Rate limits (DRF throttling). Rates are read from settings at request time; ``None``
turns a limit off. A throttled request gets 429 with ``Retry-After``."""

from django.conf import settings
from rest_framework.permissions import SAFE_METHODS
from rest_framework.throttling import SimpleRateThrottle, UserRateThrottle


class SubmissionThrottle(UserRateThrottle):
    """New documents and conversions per user (per client address when anonymous):
    SUBMIT_RATE. Reads on the same routes are not counted."""

    scope = "submissions"

    def get_rate(self):
        return settings.SUBMIT_RATE

    def allow_request(self, request, view):
        return request.method in SAFE_METHODS or super().allow_request(request, view)


class LoginThrottle(SimpleRateThrottle):
    """Password attempts per client address (LOGIN_RATE), against guessing."""

    scope = "login"

    def get_rate(self):
        return settings.LOGIN_RATE

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def allow_request(self, request, view):
        return request.method != "POST" or super().allow_request(request, view)
