"""Settings come from the environment through typed readers that fail loudly."""

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from dotsocr_site import env
from tests.conftest import REPO


@pytest.mark.parametrize(
    "reader,value",
    [
        (lambda: env.env_int("X_TEST", 4), "four"),
        (lambda: env.env_int("X_TEST", 4, minimum=1), "0"),
        (lambda: env.env_bool("X_TEST", False), "maybe"),
        (lambda: env.env_choice("X_TEST", "auto", ("auto", "textlayer")), "gpu-please"),
        (lambda: env.env_port("X_TEST", 8080), "70000"),
        (lambda: env.env_float("X_TEST", 0.1), "warm"),
        (lambda: env.env_float("X_TEST", 0.1, maximum=2), "2.5"),
        (lambda: env.env_float("X_TEST", 1.0, above=0), "0"),
        (lambda: env.env_urls("X_TEST"), "http://gpu-1:8001,gpu-2:8001"),
    ],
)
def test_malformed_value_names_the_variable(monkeypatch, reader, value):
    monkeypatch.setenv("X_TEST", value)
    with pytest.raises(ImproperlyConfigured, match=f"X_TEST={value!r}"):
        reader()


def test_readers_parse_and_default(monkeypatch):
    monkeypatch.setenv("X_INT", " 8 ")
    monkeypatch.setenv("X_BOOL", "yes")
    monkeypatch.setenv("X_LIST", "a, b,,c")
    assert env.env_int("X_INT", 4) == 8
    assert env.env_bool("X_BOOL", False) is True
    assert env.env_list("X_LIST") == ["a", "b", "c"]
    assert env.env_int("X_UNSET_INT", 4) == 4
    assert env.env_bool("X_UNSET_BOOL", False) is False


def settings_import(**overrides):
    environment = {**os.environ, **overrides}
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='dotsocr_site.settings'; django.setup();"
        "from django.conf import settings as s; print(s.NUM_WORKERS, s.API_PORT, s.OCR_ENGINE, s.DEBUG)"
    )
    return subprocess.run([sys.executable, "-c", code], env=environment, cwd=REPO, capture_output=True, text=True)


def test_service_settings_defaults(tmp_path):
    environment = {key: "" for key in ("NUM_WORKERS", "API_PORT", "OCR_ENGINE", "DEBUG")}
    result = settings_import(DATA_DIR=str(tmp_path), **environment)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["4", "8080", "auto", "False"]


@pytest.mark.parametrize(
    "name,value",
    [
        ("NUM_WORKERS", "lots"),
        ("API_PORT", "http"),
        ("DEBUG", "perhaps"),
        ("OCR_ENGINE", "magic"),
        ("MAX_UPLOAD_MB", "-5"),
        ("DATABASE_URL", "mysql://root@localhost/dotsocr"),
    ],
)
def test_service_refuses_to_start_with_a_malformed_setting(tmp_path, name, value):
    result = settings_import(DATA_DIR=str(tmp_path), **{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and name in result.stderr


def test_in_debug_mode_the_secret_key_is_shared_by_processes_through_data_dir(tmp_path):
    code = "import dotsocr_site.settings as s; print(s.SECRET_KEY)"
    environment = {**os.environ, "DATA_DIR": str(tmp_path), "SECRET_KEY": "", "SECRET_KEY_FILE": "", "DEBUG": "true"}
    keys = {
        subprocess.run(
            [sys.executable, "-c", code], env=environment, cwd=REPO, capture_output=True, text=True, check=True
        ).stdout
        for _ in range(2)
    }
    assert len(keys) == 1 and len(keys.pop().strip()) >= 50


def dotsocr_budget(**overrides):
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='dotsocr_site.settings'; django.setup();"
        "from workers.pipeline import dotsocr_config_for; c = dotsocr_config_for('dotsocr');"
        "print(c.in_flight_per_server, c.base_urls)"
    )
    environment = {**os.environ, "OCR_IN_FLIGHT_PER_SERVER": "", "OCR_ENGINE_URLS": "", **overrides}
    return subprocess.run([sys.executable, "-c", code], env=environment, cwd=REPO, capture_output=True, text=True)


def test_the_server_budget_is_shared_by_the_worker_processes(tmp_path):
    result = dotsocr_budget(DATA_DIR=str(tmp_path), NUM_WORKERS="4", OCR_SERVER_BUDGET="64")
    assert result.stdout.startswith("16 "), result.stderr
    explicit = dotsocr_budget(
        DATA_DIR=str(tmp_path),
        NUM_WORKERS="4",
        OCR_IN_FLIGHT_PER_SERVER="5",
        OCR_ENGINE_URLS="http://gpu1:8001,http://gpu2:8001/v1",
    )
    assert explicit.stdout.strip() == "5 ['http://gpu1:8001', 'http://gpu2:8001']", explicit.stderr


def test_malformed_dotsocr_setting_stops_start_up(tmp_path):
    result = dotsocr_budget(DATA_DIR=str(tmp_path), TEMPERATURE="hot")
    assert result.returncode != 0 and "TEMPERATURE" in result.stderr and "ImproperlyConfigured" in result.stderr


def test_settings_do_not_import_the_engine(tmp_path):
    """The engine (workers/ocr/) is plain Python the settings only pass values to."""
    code = (
        "import sys; import dotsocr_site.settings;"
        "print(sorted(name for name in sys.modules if name.startswith('workers')))"
    )
    environment = {**os.environ, "DATA_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", code], env=environment, cwd=REPO, capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr
