"""`make run`'s launcher stopped under load (issue 21): its own stop returns only once
every process it started (daphne, and qcluster with its sentinel, workers, pusher and
monitor) has ended; and a launcher killed with SIGKILL leaves nothing running: its
children notice their parent is gone and stop (dotsocr_site/orphans.py). Real launcher,
real processes, the test database, a backlog of `noop` jobs."""

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from conversions.models import Conversion
from tests.live import REPO, free_port
from tests.test_run_command import OutputWatcher
from tests.test_shutdown_backlog import alive, queue_backlog, wait_until

pytestmark = pytest.mark.acceptance
GRACE_SECONDS = 5


@pytest.fixture
def running_launcher(request, live_env, transactional_db, tmp_path, settings):
    """`python -m dotsocr_site.launcher run` with two workers busy on a backlog; yields
    (launcher, its descendants' pids). Parametrized indirectly: WEB_CONCURRENCY (default:
    the launcher's own, one per core)."""
    settings.DATA_DIR = tmp_path  # the backlog's uploads, stored where the launcher's workers read them
    port = free_port()
    env = {
        **live_env,
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "NUM_WORKERS": "2",
        "SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS),
        "DATA_DIR": str(tmp_path),
    }
    web_processes = getattr(request, "param", None)
    if web_processes is not None:
        env["WEB_CONCURRENCY"] = web_processes
    launcher = subprocess.Popen(
        [sys.executable, "-m", "dotsocr_site.launcher", "run"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = OutputWatcher(launcher)
    descendants: set[int] = set()
    try:
        output.wait_for(f"dotsocr is running at http://127.0.0.1:{port}/", timeout=120)
        queue_backlog(60)
        wait_until(
            lambda: Conversion.objects.filter(status="completed").count() >= 2,
            90,
            lambda: "\n".join(output.lines[-40:]),
        )
        descendants = {child.pid for child in psutil.Process(launcher.pid).children(recursive=True)}
        assert len(descendants) >= 6  # daphne; qcluster, its sentinel, pusher, monitor, 2 workers
        yield launcher, descendants, output
    finally:
        if launcher.poll() is None:
            launcher.kill()
        for pid in alive(descendants):
            os.kill(int(pid.split()[0]), signal.SIGKILL)


def test_launcher_stop_returns_after_every_child_process_has_ended(running_launcher):
    launcher, descendants, output = running_launcher
    launcher.send_signal(signal.SIGTERM)
    assert launcher.wait(timeout=GRACE_SECONDS + 10 + 5) == 0, "\n".join(output.lines[-40:])
    assert not alive(descendants)
    assert not [line for line in output.lines if line.startswith("[dotsocr] process group")]  # none killed
    assert not Conversion.objects.filter(status="running").exists()


def test_a_killed_launcher_leaves_nothing_running(running_launcher):
    launcher, descendants, output = running_launcher
    launcher.kill()
    launcher.wait()
    killed_at = time.monotonic()
    wait_until(lambda: not alive(descendants), GRACE_SECONDS + 10, lambda: f"left running: {alive(descendants)}")
    print(f"every child gone {time.monotonic() - killed_at:.1f} s after the launcher's SIGKILL")
    assert not Conversion.objects.filter(status="running").exists()


def daphnes(pids) -> list[psutil.Process]:
    found = []
    for pid in pids:
        try:
            process = psutil.Process(pid)
            if "daphne" in process.cmdline():
                found.append(process)
        except psutil.NoSuchProcess:
            continue
    return found


@pytest.mark.parametrize("running_launcher", ["3"], indirect=True)
def test_launcher_stops_every_one_of_several_web_processes(running_launcher):
    """WEB_CONCURRENCY=3: three daphne processes on one inherited socket, all stopped
    cleanly on SIGINT (a Ctrl-C), and their shared metrics folder removed."""
    launcher, descendants, output = running_launcher
    webs = daphnes(descendants)
    assert len(webs) == 3 and all("--fd" in web.cmdline() for web in webs)
    metrics_dirs = {web.environ()["PROMETHEUS_MULTIPROC_DIR"] for web in webs}
    assert len(metrics_dirs) == 1
    launcher.send_signal(signal.SIGINT)
    assert launcher.wait(timeout=GRACE_SECONDS + 10 + 5) == 0, "\n".join(output.lines[-40:])
    assert not alive(descendants)
    assert not [line for line in output.lines if line.startswith("[dotsocr] process group")]  # none killed
    assert not os.path.exists(metrics_dirs.pop())


@pytest.mark.parametrize("running_launcher", ["3"], indirect=True)
def test_a_killed_launcher_leaves_none_of_several_web_processes_running(running_launcher):
    launcher, descendants, output = running_launcher
    assert len(daphnes(descendants)) == 3
    launcher.kill()
    launcher.wait()
    wait_until(lambda: not alive(descendants), GRACE_SECONDS + 10, lambda: f"left running: {alive(descendants)}")
