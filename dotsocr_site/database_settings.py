"""Where the service keeps its state: the PostgreSQL database (DATABASE_URL) and the
channel layer progress travels through (CHANNEL_LAYER_URL). Read by settings.py.
"""

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from dotsocr_site.env import env_str

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/dotsocr"


def databases(*, base_dir: Path) -> dict[str, dict[str, Any]]:
    """``default`` from DATABASE_URL, its test database named for the checkout at
    ``base_dir``, and the alias channels_postgres uses. Raises ImproperlyConfigured."""
    default: dict[str, Any] = dict(database())
    # Test databases are named per checkout, so test runs of two clones on one server
    # (a developer's and CI's) never drop each other's database.
    default["TEST"] = {
        "NAME": env_str("TEST_DATABASE_NAME", f"test_{default['NAME']}_{hashlib.sha1(bytes(base_dir)).hexdigest()[:8]}")
    }
    # channels_postgres deletes group memberships through the ORM under this alias: the same
    # database, mirrored in tests.
    return {"default": default, "channels_postgres": {**default, "TEST": {"MIRROR": "default"}}}


def database() -> dj_database_url.DBConfig:
    """DATABASE_URL's connection; raises ImproperlyConfigured unless it is PostgreSQL."""
    url = env_str("DATABASE_URL", DEFAULT_DATABASE_URL)
    try:
        config = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    except ValueError as error:
        raise ImproperlyConfigured(f"Environment variable DATABASE_URL is malformed: {error}") from None
    if config["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured(
            f"DATABASE_URL must point at PostgreSQL (got engine {config['ENGINE']}); "
            "the job queue relies on its row locks and transactions."
        )
    return config


def channel_layer(database: Mapping[str, object], *, group_expiry: int) -> dict[str, Any]:
    """CHANNEL_LAYER_URL's layer: Redis pub/sub, PostgreSQL (``database``) or in-memory."""
    url = env_str("CHANNEL_LAYER_URL", "postgres")
    if url.startswith(("redis://", "rediss://", "unix://")):
        return {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer", "CONFIG": {"hosts": [url]}}
    if url == "postgres":
        return {
            "BACKEND": "dotsocr_site.patches.channels_postgres.PostgresChannelLayer",
            "CONFIG": {**database, "TIME_ZONE": None, "group_expiry": group_expiry},
        }
    if url == "memory":
        return {"BACKEND": "channels.layers.InMemoryChannelLayer"}
    raise ImproperlyConfigured(
        f"Environment variable CHANNEL_LAYER_URL={url!r} is not redis://..., 'postgres' or 'memory'."
    )
