"""Bootstrap for `make run` and `make test`: find or start PostgreSQL, create and migrate
the database, then run the service (daphne + qcluster) or the test suite.

Database: ``DATABASE_URL`` when set; else PostgreSQL on 127.0.0.1:5432 when one answers;
else an embedded PostgreSQL (the ``pgserver`` wheel) kept in ``DATA_DIR/postgres`` and
stopped on exit. ``EMBEDDED_DB=always`` forces the embedded server, ``never`` forbids it.

`run` starts a development / single-user install (see ``single_user_defaults``).
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dj_database_url
import psycopg
from psycopg import sql

from dotsocr_site import orphans, secret_key, web_tier
from dotsocr_site.env import env_choice, env_int, env_path, env_port, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/dotsocr"
# A stopped cluster ends within SHUTDOWN_GRACE_SECONDS + 10 s (dotsocr_site/patches/django_q.py).
STOP_MARGIN_SECONDS = 10


def log(message: str) -> None:
    print(f"[dotsocr] {message}", flush=True)


# --- database -----------------------------------------------------------------------


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@contextmanager
def database_url() -> Iterator[str]:
    """The URL of a reachable PostgreSQL database, starting an embedded server if needed."""
    mode = env_choice("EMBEDDED_DB", "auto", ("auto", "always", "never"))
    configured = env_str("DATABASE_URL", "")
    if mode != "always" and configured:
        yield configured
        return
    if mode != "always" and port_open("127.0.0.1", 5432):
        yield DEFAULT_DATABASE_URL
        return
    if mode == "never":
        raise SystemExit("No PostgreSQL answers on 127.0.0.1:5432 and EMBEDDED_DB=never; set DATABASE_URL.")
    with embedded_postgres() as url:
        yield url


@contextmanager
def embedded_postgres() -> Iterator[str]:
    import pgserver  # imported here: only needed without a PostgreSQL server

    data_dir = env_path("DATA_DIR", BASE_DIR / "data") / "postgres"
    data_dir.mkdir(parents=True, exist_ok=True)
    log(f"no PostgreSQL configured or answering on 127.0.0.1:5432; starting an embedded one in {data_dir}")
    server = pgserver.get_server(data_dir, cleanup_mode="stop")  # stop, never delete: jobs persist
    try:
        yield server.get_uri("dotsocr")
    finally:
        log("stopping the embedded PostgreSQL")
        server.cleanup()


def connection_kwargs(url: str, dbname: str | None = None) -> dict:
    config = dj_database_url.parse(url)
    kwargs = {
        "host": config.get("HOST") or config.get("OPTIONS", {}).get("host") or None,
        "port": config.get("PORT") or None,
        "user": config.get("USER") or None,
        "password": config.get("PASSWORD") or None,
        "dbname": dbname or config["NAME"],
    }
    return {key: value for key, value in kwargs.items() if value is not None}


def ensure_database(url: str, timeout: float = 30.0) -> None:
    """Create the database named in ``url`` if it does not exist (waits for the server)."""
    name = connection_kwargs(url)["dbname"]
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(**connection_kwargs(url, dbname="postgres"), autocommit=True, connect_timeout=5) as db:
                if db.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
                    log(f"creating database {name}")
                    try:
                        db.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                    except psycopg.errors.DuplicateDatabase:
                        pass  # created by a concurrent start
            return
        except psycopg.OperationalError as error:
            if time.monotonic() > deadline:
                raise SystemExit(f"PostgreSQL is not reachable at {url}: {error}") from None
            time.sleep(0.5)


# --- processes ------------------------------------------------------------------------


def manage(*args: str) -> list[str]:
    return [sys.executable, str(BASE_DIR / "manage.py"), *args]


def web_command(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "daphne", "-b", host, "-p", str(port), "dotsocr_site.asgi:application"]


def cluster_command() -> list[str]:
    return manage("qcluster")


def prepare_database(env: dict) -> None:
    subprocess.run(manage("migrate", "--noinput"), env=env, check=True, cwd=BASE_DIR)
    subprocess.run(manage("createcachetable"), env=env, check=True, cwd=BASE_DIR)


def wait_until_healthy(url: str, process: subprocess.Popen | list[subprocess.Popen], timeout: float = 60.0) -> bool:
    """True once ``url`` answers 200; False at the timeout or when a process exits."""
    processes = process if isinstance(process, list) else [process]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and all(child.poll() is None for child in processes):
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def stop_grace_seconds() -> int:
    """How long children get to stop before they are killed: the workers' grace (its
    default is settings.py's) plus the cluster's own stop."""
    return env_int("SHUTDOWN_GRACE_SECONDS", 20, minimum=0) + STOP_MARGIN_SECONDS


def stop(processes: list[subprocess.Popen]) -> None:
    """Stop children gracefully and wait until every process of theirs has ended; kill
    what is left after ``stop_grace_seconds()``.

    SIGTERM goes to each child itself, not its group: qcluster's main process stops its
    sentinel, which stops the workers, pusher and monitor in order.
    """
    for process in processes:
        if process.poll() is None:
            process.terminate()
    grace = stop_grace_seconds()
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        if not wait_for_group(process.pid, deadline):
            log(f"process group {process.pid} did not stop in {grace}s; killing it")
        kill_group(process.pid)
        process.wait()


def wait_for_group(pgid: int, deadline: float) -> bool:
    """Wait until no live process is left in a child's process group; False at the deadline."""
    while group_members(pgid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of a process group."""
    import psutil

    members = []
    for process in psutil.process_iter(["status"]):
        try:
            if os.getpgid(process.pid) == pgid and process.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(process.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def kill_group(pgid: int) -> None:
    """SIGKILL whatever is left in a child's process group (no orphans)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def start_child(command: list[str], env: dict, pass_fds: tuple[int, ...] = ()) -> subprocess.Popen:
    """A child in its own process group (a Ctrl-C reaches only us, and we stop the
    children in order) that gets SIGTERM when we die, even by SIGKILL."""
    launcher_pid = os.getpid()
    return subprocess.Popen(
        command,
        env=env,
        cwd=BASE_DIR,
        start_new_session=True,
        pass_fds=pass_fds,
        preexec_fn=lambda: orphans.die_with_parent(signal.SIGTERM, parent_pid=launcher_pid),
    )


@contextmanager
def web_tier_processes(host: str, port: int, env: dict, count: int) -> Iterator[list[subprocess.Popen]]:
    """``count`` daphne processes serving ``host:port`` (dotsocr_site/web_tier.py). One is
    started as before (daphne binds the address itself); several share a socket bound
    here, and keep their /metrics files in a fresh PROMETHEUS_MULTIPROC_DIR, removed when
    the block ends (stop the processes inside it)."""
    if count == 1:
        yield [start_child(web_command(host, port), env)]
        return
    metrics_dir, made_here = web_tier.fresh_metrics_dir()
    try:
        with web_tier.bind_listener(host, port) as listener:
            fd = listener.fileno()
            web_env = {**env, "WEB_CONCURRENCY": str(count), web_tier.METRICS_DIR_VARIABLE: str(metrics_dir)}
            processes = [start_child(web_tier.web_fd_command(fd), web_env, pass_fds=(fd,)) for _ in range(count)]
        # Our copy is closed: the socket lives as long as a daphne holds it.
        yield processes
    finally:
        if made_here:
            web_tier.remove_metrics_dir(metrics_dir)


def serve(env: dict) -> int:
    host, port = env_str("API_HOST", "0.0.0.0"), env_port("API_PORT", 8080)
    workers = env_int("NUM_WORKERS", 4, minimum=1)
    web_processes = web_tier.web_concurrency()
    prepare_database(env)
    with web_tier_processes(host, port, env, web_processes) as webs:
        cluster = start_child(cluster_command(), env)
        return supervise(host, port, [cluster, *webs], webs, workers)


def supervise(
    host: str, port: int, children: list[subprocess.Popen], webs: list[subprocess.Popen], workers: int
) -> int:
    """Wait for a signal or for a child to exit, then stop every child."""
    stopping = []

    def request_stop(signum, frame):
        stopping.append(signum)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        local = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        if not wait_until_healthy(f"http://{local}:{port}/health", webs):
            log("the web server did not become healthy; stopping")
            return 1
        log(
            f"dotsocr is running at http://{local}:{port}/  (API /api/v1/, admin /admin/, {workers} workers, "
            f"{len(webs)} web processes)"
        )
        log("press Ctrl-C to stop")
        while not stopping:
            if any(child.poll() is not None for child in children):
                log("a service process exited unexpectedly; stopping")
                return 1
            time.sleep(0.2)
        return 0
    finally:
        log("stopping workers and web server")
        stop(children)
        log("stopped")


def single_user_defaults(env: dict) -> dict:
    """The environment of a development / single-user install, for what ``env`` leaves
    unset: anonymous requests act as the built-in user, any Host name is answered (it
    listens on 0.0.0.0), no submission rate or queued cap while anonymous requests are
    let in (one user), and the SECRET_KEY is kept in DATA_DIR/secret_key, shared by
    the web and worker processes. Production sets these itself (README, Security)."""
    defaults = {"ALLOW_ANONYMOUS": "true", "ALLOWED_HOSTS": "*"}
    result = {**env, **{name: value for name, value in defaults.items() if not env.get(name, "").strip()}}
    if result["ALLOW_ANONYMOUS"].strip().lower() in ("1", "true", "yes", "on"):
        # One user: nobody to share the workers with, so no cap on a folder of files.
        limits = {"SUBMIT_RATE": "off", "MAX_QUEUED_PER_USER": "0"}
        result.update({name: value for name, value in limits.items() if not env.get(name, "").strip()})
    if not (env.get("SECRET_KEY", "").strip() or env.get("SECRET_KEY_FILE", "").strip()):
        data_dir = Path(env.get("DATA_DIR") or BASE_DIR / "data").expanduser().resolve()
        result["SECRET_KEY_FILE"] = str(secret_key.generate_once(data_dir / "secret_key"))
    return result


def run_tests(env: dict, pytest_args: list[str]) -> int:
    return subprocess.call([sys.executable, "-m", "pytest", *pytest_args], env=env, cwd=BASE_DIR)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="launcher", description=__doc__)
    parser.add_argument("command", choices=["run", "test"])
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    with database_url() as url:
        ensure_database(url)
        env = {**os.environ, "DATABASE_URL": url}
        if args.command == "test":
            return run_tests(env, args.pytest_args)
        return serve(single_user_defaults(env))


if __name__ == "__main__":
    sys.exit(main())
