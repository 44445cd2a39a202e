"""Typed readers for environment settings.

Every setting the service takes from the environment goes through one of these, so a
malformed value stops the process at start-up with a message naming the variable,
instead of surfacing later as a confusing error deep in a worker.
"""

import os
import re
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
# DRF's rate format: requests per second, minute, hour or day ("60/min").
_RATE = re.compile(r"[0-9]+/(s|sec|second|m|min|minute|h|hour|d|day)")


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None else value.strip()


def _invalid(name: str, value: str, expected: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"Environment variable {name}={value!r} is not {expected}.")


def env_str(name: str, default: str) -> str:
    value = _raw(name)
    return default if value is None or value == "" else value


def _number(name, default, parse, kind: str, minimum=None, maximum=None):
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = parse(value)
    except ValueError:
        raise _invalid(name, value, kind) from None
    if minimum is not None and number < minimum:
        raise _invalid(name, value, f"{kind} >= {minimum}")
    if maximum is not None and number > maximum:
        raise _invalid(name, value, f"{kind} <= {maximum}")
    return number


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    return _number(name, default, int, "an integer", minimum, maximum)


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    return _number(name, default, float, "a number", minimum)


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise _invalid(name, value, "a boolean (true/false, 1/0, yes/no, on/off)")


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env_str(name, default)
    if value not in choices:
        raise _invalid(name, value, f"one of {', '.join(choices)}")
    return value


def env_list(name: str, default: tuple[str, ...] = ()) -> list[str]:
    value = _raw(name)
    if value is None or value == "":
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_path(name: str, default: Path) -> Path:
    value = _raw(name)
    return (Path(value) if value else default).expanduser().resolve()


def env_port(name: str, default: int) -> int:
    return env_int(name, default, minimum=1, maximum=65535)


def env_rate(name: str, default: str | None) -> str | None:
    """A request rate such as ``60/min`` (DRF's format), or None for ``off``/``none``."""
    value = env_str(name, default or "off")
    if value.lower() in ("off", "none"):
        return None
    if not _RATE.fullmatch(value):
        raise _invalid(name, value, "a rate like 60/min (per s, min, hour or day) or off")
    return value


_WEBHOOK_SECRET = re.compile(r"whsec_[A-Za-z0-9+/]+={0,2}")


def env_webhook_secret(name: str) -> str:
    """A Standard Webhooks secret: "whsec_" and the base64 of 24 to 64 random bytes (the
    specification's range), or "" when unset."""
    import base64

    value = env_str(name, "")
    if value and (
        not _WEBHOOK_SECRET.fullmatch(value)
        or not 24 <= len(base64.b64decode(value.removeprefix("whsec_") + "==")) <= 64
    ):
        raise _invalid(name, "whsec_...", '"whsec_" followed by the base64 of 24 to 64 random bytes')
    return value


# An S3 bucket name as AWS, MinIO and Ceph accept it (3-63 characters, lowercase letters,
# digits, dots and hyphens, starting and ending with a letter or digit).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def env_object_storage(name: str) -> tuple[str, str] | None:
    """``s3://bucket/prefix`` as (bucket, prefix without slashes at either end), or None
    when unset (the local filesystem). Anything else (another scheme, no or a malformed
    bucket, a query, a fragment or credentials in the URL) raises ImproperlyConfigured."""
    from urllib.parse import urlsplit

    value = env_str(name, "")
    if not value:
        return None
    expected = "s3://bucket or s3://bucket/prefix (credentials go in AWS_* variables)"
    try:
        parts = urlsplit(value)
    except ValueError:
        raise _invalid(name, value, expected) from None
    if (
        parts.scheme != "s3"
        or not _BUCKET.fullmatch(parts.netloc)
        or ".." in parts.netloc
        or parts.query
        or parts.fragment
        or "//" in parts.path
        or any(segment in (".", "..") for segment in parts.path.split("/"))
    ):
        raise _invalid(name, value, expected)
    return parts.netloc, parts.path.strip("/")


def object_storage_backend(name: str, *, presigned_seconds: int) -> dict:
    """settings.STORAGES["default"] from the environment: DataDirStorage (DATA_DIR) when
    ``name`` is unset, else django-storages' S3Storage on the bucket and prefix of its
    ``s3://bucket/prefix``, with AWS_ENDPOINT_URL and AWS_DEFAULT_REGION (boto3 reads the
    keys, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, itself). Raises ImproperlyConfigured
    for a malformed URL."""
    parsed = env_object_storage(name)
    if parsed is None:
        return {"BACKEND": "conversions.storage.DataDirStorage"}
    bucket, prefix = parsed
    from botocore.config import Config  # type: ignore[import-untyped]

    addressing = env_choice("OBJECT_STORAGE_ADDRESSING", "path", ("path", "virtual", "auto"))
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "location": prefix,
            "endpoint_url": env_str("AWS_ENDPOINT_URL", "") or None,
            "region_name": env_str("AWS_DEFAULT_REGION", "") or None,
            # Path-style requests work with every S3-compatible server and need no DNS
            # name per bucket; AWS still accepts them. Checksums only where S3 requires
            # them (boto3 adds CRC headers to every upload otherwise, which some
            # S3-compatible servers refuse).
            "client_config": Config(
                s3={"addressing_style": addressing},
                signature_version="s3v4",
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
            "addressing_style": addressing,
            "signature_version": "s3v4",
            "file_overwrite": True,
            "default_acl": None,
            "querystring_auth": True,
            "querystring_expire": presigned_seconds,
        },
    }
