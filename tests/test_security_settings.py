"""Safe settings: no start without a SECRET_KEY in production, hosts and HTTPS from the
environment, `check --deploy` clean, and the run command's single-user defaults."""

import os
import secrets
import stat
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from dotsocr_site import env
from dotsocr_site.launcher import single_user_defaults
from tests.conftest import REPO

SETTINGS_OF_INTEREST = (
    "DEBUG",
    "SECRET_KEY",
    "SECRET_KEY_FILE",
    "ALLOWED_HOSTS",
    "HTTPS",
    "ALLOW_ANONYMOUS",
    "SUBMIT_RATE",
    "MAX_QUEUED_PER_USER",
    "CSRF_TRUSTED_ORIGINS",
    "DJANGO_SETTINGS_MODULE",
)


def service_environment(tmp_path, **overrides) -> dict:
    """The environment of a freshly started service: none of the test run's own settings."""
    base = {key: value for key, value in os.environ.items() if key not in SETTINGS_OF_INTEREST}
    return {**base, "DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "dotsocr_site.settings", **overrides}


def settings_of(tmp_path, *names, **overrides) -> subprocess.CompletedProcess:
    # The settings module alone (no django.setup()): quick, and what every process imports first.
    code = f"import dotsocr_site.settings as s; print(repr([getattr(s, name, None) for name in {list(names)!r}]))"
    return subprocess.run(
        [sys.executable, "-c", code],
        env=service_environment(tmp_path, **overrides),
        cwd=REPO,
        capture_output=True,
        text=True,
    )


def values(result: subprocess.CompletedProcess) -> list:
    assert result.returncode == 0, result.stderr
    return eval(result.stdout.strip())  # a repr of plain values printed by settings_of


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    result = settings_of(tmp_path, "SECRET_KEY")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "SECRET_KEY is required when DEBUG is off" in result.stderr
    assert not (tmp_path / "secret_key").exists()  # nothing made up on the spot


def test_secret_key_from_the_environment_or_a_file(tmp_path):
    key = secrets.token_urlsafe(50)
    assert values(settings_of(tmp_path, "SECRET_KEY", SECRET_KEY=key)) == [key]
    key_file = tmp_path / "key"
    key_file.write_text(key + "\n")
    assert values(settings_of(tmp_path, "SECRET_KEY", SECRET_KEY_FILE=str(key_file))) == [key]
    missing = settings_of(tmp_path, "SECRET_KEY", SECRET_KEY_FILE=str(tmp_path / "missing"))
    assert missing.returncode != 0 and "SECRET_KEY_FILE" in missing.stderr


def test_security_defaults_are_closed(tmp_path):
    defaults = values(
        settings_of(
            tmp_path,
            "ALLOW_ANONYMOUS",
            "ALLOWED_HOSTS",
            "HTTPS",
            "SECURE_PROXY_SSL_HEADER",
            "SUBMIT_RATE",
            "MAX_QUEUED_PER_USER",
            SECRET_KEY="k" * 50,
        )
    )
    # A shared install keeps limits, set to let a folder of files through (issue 16).
    assert defaults == [False, ["localhost", "127.0.0.1", "[::1]"], False, None, "600/min", 10000]


def test_hosts_and_limits_from_the_environment(tmp_path):
    configured = values(
        settings_of(
            tmp_path,
            "ALLOWED_HOSTS",
            "ALLOW_ANONYMOUS",
            "SUBMIT_RATE",
            "MAX_QUEUED_PER_USER",
            SECRET_KEY="k" * 50,
            ALLOWED_HOSTS="ocr.example.com, ocr",
            ALLOW_ANONYMOUS="yes",
            SUBMIT_RATE="off",
            MAX_QUEUED_PER_USER="0",
        )
    )
    assert configured == [["ocr.example.com", "ocr"], True, None, 0]


def test_https_makes_cookies_secure_and_trusts_the_proxy_header(tmp_path):
    names = (
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SECURE_PROXY_SSL_HEADER",
        "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS",
    )
    assert values(settings_of(tmp_path, *names, SECRET_KEY="k" * 50, HTTPS="true")) == [
        True,
        True,
        ("HTTP_X_FORWARDED_PROTO", "https"),
        True,
        31536000,
    ]


def check_deploy(tmp_path, **overrides) -> subprocess.CompletedProcess:
    production = {"SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "ocr.example.com", **overrides}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=service_environment(tmp_path, **production),
        cwd=REPO,
        capture_output=True,
        text=True,
    )


def test_check_deploy_passes_with_production_settings(tmp_path):
    result = check_deploy(tmp_path, HTTPS="true")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_flags_a_service_without_https(tmp_path):
    result = check_deploy(tmp_path)
    assert result.returncode != 0 and "security.W004" in result.stderr  # no HSTS


@pytest.mark.parametrize("value,rate", [("60/min", "60/min"), ("5/s", "5/s"), ("off", None), ("None", None)])
def test_rate_reader(monkeypatch, value, rate):
    monkeypatch.setenv("X_RATE", value)
    assert env.env_rate("X_RATE", "1/day") == rate


def test_malformed_rate_names_the_variable(monkeypatch):
    monkeypatch.setenv("X_RATE", "lots")
    with pytest.raises(ImproperlyConfigured, match="X_RATE='lots'"):
        env.env_rate("X_RATE", "1/day")


# --- the run command: a development / single-user install ---------------------------------


def test_run_command_defaults_to_a_single_user_install(tmp_path):
    environment = single_user_defaults({"DATA_DIR": str(tmp_path), "SECRET_KEY": ""})
    assert environment["ALLOW_ANONYMOUS"] == "true" and environment["ALLOWED_HOSTS"] == "*"
    key_file = tmp_path / "secret_key"
    assert environment["SECRET_KEY_FILE"] == str(key_file)
    assert len(key_file.read_text()) >= 50 and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = single_user_defaults({"DATA_DIR": str(tmp_path)})
    assert again["SECRET_KEY_FILE"] == str(key_file) and key_file.read_text() == key_file.read_text()


def test_a_single_user_install_has_no_submission_rate_or_queued_cap(tmp_path):
    environment = single_user_defaults({"DATA_DIR": str(tmp_path)})
    assert (environment["SUBMIT_RATE"], environment["MAX_QUEUED_PER_USER"]) == ("off", "0")
    chosen = single_user_defaults({"DATA_DIR": str(tmp_path), "SUBMIT_RATE": "30/min"})
    assert (chosen["SUBMIT_RATE"], chosen["MAX_QUEUED_PER_USER"]) == ("30/min", "0")
    shared = single_user_defaults({"DATA_DIR": str(tmp_path), "ALLOW_ANONYMOUS": "false"})
    assert "SUBMIT_RATE" not in shared and "MAX_QUEUED_PER_USER" not in shared  # the settings' defaults hold
    served = values(
        settings_of(
            tmp_path,
            "SUBMIT_RATE",
            "MAX_QUEUED_PER_USER",
            **{name: environment[name] for name in ("SUBMIT_RATE", "MAX_QUEUED_PER_USER", "SECRET_KEY_FILE")},
        )
    )
    assert served == [None, 0]


def test_run_command_keeps_what_the_environment_sets(tmp_path):
    given = {
        "DATA_DIR": str(tmp_path),
        "ALLOW_ANONYMOUS": "false",
        "ALLOWED_HOSTS": "ocr.example.com",
        "SECRET_KEY": "from-the-operator",
    }
    assert single_user_defaults(given) == given
    assert not (tmp_path / "secret_key").exists()
