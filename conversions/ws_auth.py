"""WebSocket authentication, inside Channels' session AuthMiddlewareStack.

A script sends its API token as ``?token=<key>`` or as the subprotocol pair
``token, <key>`` (``new WebSocket(url, ["token", key])``; the server then accepts with
subprotocol ``token``). A token, when given, decides who the caller is. Otherwise the
session cookie does, but only from a page of this site: a browser sends cookies along
with a WebSocket opened by any site, so another Origin gets no session (cross-site
WebSocket hijacking).
"""

from urllib.parse import parse_qs, urlsplit

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from rest_framework.authtoken.models import Token

TOKEN_SUBPROTOCOL = "token"
# Scope keys this middleware sets for the consumers.
AUTH_ERROR = "auth_error"
ACCEPT_SUBPROTOCOL = "accept_subprotocol"


class TokenAuthMiddleware(BaseMiddleware):
    async def __call__(self, scope, receive, send):
        scope = dict(scope)
        key, subprotocol = token_of(scope)
        if key is not None:
            user = await user_for_token(key)
            scope["user"] = user or AnonymousUser()
            scope[AUTH_ERROR] = None if user else "Invalid token."
            scope[ACCEPT_SUBPROTOCOL] = subprotocol
        elif not from_this_site(scope):
            scope["user"] = AnonymousUser()
        return await super().__call__(scope, receive, send)


def token_of(scope) -> tuple[str | None, str | None]:
    """The token key and the subprotocol to accept with (None: it came in the query)."""
    protocols = scope.get("subprotocols") or []
    if TOKEN_SUBPROTOCOL in protocols[:-1]:
        return protocols[protocols.index(TOKEN_SUBPROTOCOL) + 1], TOKEN_SUBPROTOCOL
    keys = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return (keys[0], None) if keys else (None, None)


@database_sync_to_async
def user_for_token(key: str):
    token = Token.objects.select_related("user").filter(key=key).first()
    return token.user if token is not None and token.user.is_active else None


def from_this_site(scope) -> bool:
    """No Origin (not a browser), the page's own host, or a CSRF-trusted origin."""
    headers = dict(scope.get("headers") or [])
    origin = headers.get(b"origin", b"").decode("latin-1")
    if not origin:
        return True
    host = headers.get(b"host", b"").decode("latin-1")
    return urlsplit(origin).netloc == host or origin in settings.CSRF_TRUSTED_ORIGINS


def refusal(scope) -> str | None:
    """Why this connection may not go on (the consumer closes with 4401), or None."""
    if scope.get(AUTH_ERROR):
        return scope[AUTH_ERROR]
    user = scope.get("user")
    if settings.ALLOW_ANONYMOUS or (user is not None and user.is_authenticated):
        return None
    return "Authentication required."
