"""Logging: one key=value line per record on stderr. Read by settings.py."""

from typing import Any

from dotsocr_site.env import env_str


def logging_config() -> dict[str, Any]:
    """LOGGING, at LOG_LEVEL (root) and Q_LOG_LEVEL (django-q2), both INFO by default."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "keyvalue": {"format": "time=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"},
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "keyvalue"}},
        "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
        "loggers": {
            "django_q": {"level": env_str("Q_LOG_LEVEL", "INFO"), "propagate": True},
            # It warns on every event sent to a group nobody listens to: the normal case.
            "channels_postgres.core": {"level": "ERROR"},
        },
    }
