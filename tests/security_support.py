"""Users, signed-in clients and the route tables for the security tests."""

from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from conversions import services

PASSWORD = "correct horse battery staple"
# Security tests create many users; a fast hash keeps them quick (hashing is Django's).
FAST_PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
HTML = {"HTTP_ACCEPT": "text/html,application/xhtml+xml"}


def make_user(username: str, *, staff: bool = False):
    return get_user_model().objects.create_user(username, f"{username}@example.invalid", PASSWORD, is_staff=staff)


def token_client(user) -> APIClient:
    """An API client sending the user's token, as a script would."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {services.issue_api_token(user=user)}")
    return client


def session_client(user) -> Client:
    """A browser signed in with a session cookie."""
    client = Client()
    client.force_login(user)
    return client


def http_routes() -> set[str]:
    """Every route of the URL conf, as written there; the admin's counts as one."""
    from django.urls import URLResolver, get_resolver

    def walk(patterns, prefix):
        for entry in patterns:
            route = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver) and route != "admin/":
                yield from walk(entry.url_patterns, route)
            else:
                yield route

    return set(walk(get_resolver().url_patterns, ""))


def websocket_routes() -> set[str]:
    from conversions.routing import websocket_urlpatterns

    return {str(entry.pattern) for entry in websocket_urlpatterns}
