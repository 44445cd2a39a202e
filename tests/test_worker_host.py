"""WORKER_HOST names the host in worker ids ("<host>:<pid>"): a worker process gives back
at once only the jobs of dead workers of its own WORKER_HOST, so two clusters on one
machine with distinct values act as two hosts (tests/test_several_hosts_live.py runs them)."""

import socket
import subprocess
import sys

import pytest

from conversions import services
from conversions.apps import prepare_worker_process
from conversions.models import Conversion
from dotsocr_site.patches.django_q import give_back_jobs_of_dead_workers
from tests.conftest import FOUR_PAGES, REPO
from tests.live import python_env

NO_SUCH_PID = 2**22 + 1  # above Linux's pid_max: never a running process


def worker_host_setting(**environment) -> subprocess.CompletedProcess:
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='dotsocr_site.settings'; django.setup();"
        "from django.conf import settings; print(settings.WORKER_HOST)"
    )
    env = python_env(**environment)
    if "WORKER_HOST" not in environment:
        env.pop("WORKER_HOST", None)
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True)


def test_the_host_name_is_the_default():
    assert worker_host_setting().stdout.strip() == socket.gethostname()


def test_a_worker_host_is_read_from_the_environment():
    assert worker_host_setting(WORKER_HOST=" gpu-box-2 ").stdout.strip() == "gpu-box-2"


@pytest.mark.parametrize("value", ["box:2", "two words"])
def test_a_worker_host_that_would_garble_worker_ids_is_refused(value):
    result = worker_host_setting(WORKER_HOST=value)
    assert result.returncode != 0 and f"WORKER_HOST={value!r}" in result.stderr


def test_worker_ids_name_the_worker_host(settings):
    settings.WORKER_HOST = "cluster-b"
    assert services.current_worker_id().startswith("cluster-b:")


def running_as(conversion, worker_id: str) -> Conversion:
    Conversion.objects.filter(pk=conversion.pk).update(status="running", worker_id=worker_id, attempts=1)
    return conversion


@pytest.mark.parametrize("give_back", ["new worker process", "sentinel after a kill"])
def test_dead_workers_are_judged_by_the_worker_host(
    give_back, make_conversion, settings, monkeypatch, transactional_db
):
    """The jobs of a dead pid under this WORKER_HOST are given back at once; under another
    host's name the same dead pid means nothing here (that host's lease runs on)."""
    settings.WORKER_HOST = "cluster-a"
    mine = running_as(make_conversion(FOUR_PAGES), f"cluster-a:{NO_SUCH_PID}")
    other = running_as(make_conversion(FOUR_PAGES), f"cluster-b:{NO_SUCH_PID}")
    machine = running_as(make_conversion(FOUR_PAGES), f"{socket.gethostname()}:{NO_SUCH_PID}")
    if give_back == "new worker process":
        monkeypatch.setattr("workers.shutdown.install", lambda: None)  # no SIGTERM handler in pytest
        prepare_worker_process(sender=None, proc_name="Process-1")
    else:
        give_back_jobs_of_dead_workers()

    assert Conversion.objects.get(pk=mine.pk).status == "queued"
    assert Conversion.objects.get(pk=other.pk).status == "running"
    assert Conversion.objects.get(pk=machine.pk).status == "running"
