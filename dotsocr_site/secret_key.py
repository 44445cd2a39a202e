"""The SECRET_KEY kept in a file: generated once for a development install, read by
every process (web and workers must share it: django-q2 signs task messages with it)."""

import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


def generate_once(path: Path) -> Path:
    """Write a new random key to ``path`` unless it exists (the first process wins)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "x", encoding="ascii") as handle:
            handle.write(secrets.token_urlsafe(50))
        path.chmod(0o600)
    except FileExistsError:
        pass
    return path


def read(path: Path, variable: str = "SECRET_KEY_FILE") -> str:
    """The key in ``path``. Raises ImproperlyConfigured naming ``variable`` when unusable."""
    try:
        key = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise ImproperlyConfigured(f"{variable}={str(path)!r} cannot be read: {error}") from None
    if not key:
        raise ImproperlyConfigured(f"{variable}={str(path)!r} is empty.")
    return key
