"""What every scenario shares: the scratch database, the service processes, and fast ways
to fill and empty the queue.

The bench process itself runs Django against the scratch database (to insert backlogs in
bulk and to read timestamps the workers wrote); daphne and qcluster run as children, in
their own process groups, started and stopped with tests/live.py's helpers.
"""

import os
import re
import resource
import secrets
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from dotsocr_site.launcher import connection_kwargs, ensure_database, prepare_database
from tests.live import ServiceProcess, free_port, python_env, start_cluster, start_web, url_for_database

REPO = Path(__file__).resolve().parent.parent
SAMPLE_PDF = REPO.parent / "shared/corpus/sample-files/001-trivial/minimal-document.pdf"
# BENCH_DATABASE: another name, so two checkouts can bench on one server at once.
DATABASE_NAME = os.environ.get("BENCH_DATABASE", "dotsocr_bench")
# The tables a scenario empties between runs; documents stay (one upload serves all jobs).
JOB_TABLES = (
    "conversions_webhookattempt",
    "conversions_webhookdelivery",
    "conversions_pageresult",
    "conversions_conversion",
    "django_q_ormq",
    "django_q_task",
)
# Settings variants for the web process only: django-q2 forks its pusher, monitor and
# workers from a process that has used the database, and a psycopg pool inherited
# across fork is one set of sockets shared by several processes.
WEB_ONLY_VARIANTS = {"db_pool"}
CLAIM_LINE = re.compile(r"conversion=(\S+) claimed worker=(\S+) attempt=(\d+)")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def latency_summary(milliseconds: list[float]) -> dict:
    return {
        "n": len(milliseconds),
        "p50_ms": round(statistics.median(milliseconds), 2),
        "p99_ms": round(percentile(milliseconds, 0.99), 2),
        "max_ms": round(max(milliseconds), 2),
    }


@dataclass
class Bench:
    """The scratch installation: database URL, data folder, environment for children."""

    database_url: str
    workdir: Path
    env: dict
    dpi: int
    variants: tuple[str, ...] = ()
    started: list[ServiceProcess] = field(default_factory=list)

    def child_env(self, **overrides) -> dict:
        return {**self.env, **{key: str(value) for key, value in overrides.items()}}

    def variants_for(self, *, web: bool) -> str:
        return ",".join(name for name in self.variants if web or name not in WEB_ONLY_VARIANTS)

    def log_dir(self, name: str) -> Path:
        folder = self.workdir / "logs" / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    # --- processes -----------------------------------------------------------------

    def web(self, name: str = "web", **overrides) -> tuple[ServiceProcess, str]:
        port = free_port()
        env = self.child_env(BENCH_VARIANTS=self.variants_for(web=True), **overrides)
        process = start_web(env, port, self.log_dir(name))
        self.started.append(process)
        return process, f"http://127.0.0.1:{port}"

    def cluster(self, name: str, workers: int, **overrides) -> ServiceProcess:
        env = self.child_env(NUM_WORKERS=workers, BENCH_VARIANTS=self.variants_for(web=False), **overrides)
        process = start_cluster(env, self.log_dir(name))
        self.started.append(process)
        return process

    def stop(self, process: ServiceProcess) -> None:
        process.stop()
        if process in self.started:
            self.started.remove(process)

    def stop_all(self) -> None:
        for process in reversed(list(self.started)):
            self.stop(process)


@contextmanager
def scratch_bench(*, dpi: int, keep: bool = False, variants: tuple[str, ...] = ()) -> Iterator[Bench]:
    """Create the scratch database and data folder, set up Django in this process, and
    drop both at the end (with every process started through the Bench stopped first).
    ``variants`` load bench/variant_settings.py's changes instead of the shipped settings."""
    database_url = url_for_database(DATABASE_NAME)
    drop_database(database_url)  # a run that was killed may have left it behind
    ensure_database(database_url)
    workdir = Path(tempfile.mkdtemp(prefix="dotsocr-bench-"))
    env = python_env(
        DATABASE_URL=database_url,
        DATA_DIR=str(workdir / "data"),
        SECRET_KEY=secrets.token_urlsafe(40),  # web, workers and this process sign alike
        OCR_ENGINE="noop",
        DPI=str(dpi),
        LOG_LEVEL="INFO",  # the scale-out check reads the workers' "claimed" lines
        DJANGO_SETTINGS_MODULE="bench.variant_settings" if variants else "dotsocr_site.settings",
    )
    bench = Bench(database_url=database_url, workdir=workdir, env=env, dpi=dpi, variants=variants)
    env["BENCH_VARIANTS"] = bench.variants_for(web=False)  # migrations and this process
    try:
        prepare_database(env)
        setup_django(env)
        yield bench
    finally:
        bench.stop_all()
        from django.db import connections

        connections.close_all()
        if not keep:
            drop_database(database_url)
            shutil.rmtree(workdir, ignore_errors=True)


def setup_django(env: dict) -> None:
    for name in (
        "DATABASE_URL",
        "DATA_DIR",
        "SECRET_KEY",
        "OCR_ENGINE",
        "DPI",
        "DJANGO_SETTINGS_MODULE",
        "BENCH_VARIANTS",
    ):
        os.environ[name] = env[name]
    os.environ["LOG_LEVEL"] = "WARNING"  # this process's own logging stays quiet
    # The list-query scenario calls the views in this process, anonymously, as Django's
    # test client ("testserver"): a single-user install's settings.
    os.environ.update(ALLOW_ANONYMOUS="true", ALLOWED_HOSTS="*")
    import django

    django.setup()


def drop_database(url: str) -> None:
    name = connection_kwargs(url)["dbname"]
    with psycopg.connect(**connection_kwargs(url, dbname="postgres"), autocommit=True) as db:
        db.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def raw_connection(bench: Bench, **options) -> psycopg.Connection:
    return psycopg.connect(**connection_kwargs(bench.database_url), **options)


# --- the queue's contents --------------------------------------------------------------


def sample_document():
    """One stored one-page PDF that every bulk-inserted job converts."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from conversions import services
    from conversions.models import Document

    existing = Document.objects.filter(filename="bench-sample.pdf").first()
    if existing is not None:
        return existing
    upload = SimpleUploadedFile("bench-sample.pdf", SAMPLE_PDF.read_bytes(), content_type="application/pdf")
    return services.create_document(owner=services.default_owner(), upload=upload, max_pages=10)


def empty_queue() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(JOB_TABLES)}")


def enqueue_messages(rows) -> None:
    """The django-q2 message of each of ``rows`` (queued Conversions), in bulk: the package
    django_q.tasks.async_task builds for services._enqueue."""
    from django.utils import timezone
    from django_q.brokers import get_broker
    from django_q.humanhash import uuid as task_uuid
    from django_q.models import OrmQ
    from django_q.signing import SignedPackage

    from conversions.services import TASK_FUNCTION

    list_key, now = get_broker().list_key, timezone.now()
    OrmQ.objects.bulk_create(
        OrmQ(
            key=list_key,
            lock=now,
            payload=SignedPackage.dumps(
                {
                    "id": task_uuid()[1],
                    "name": f"conversion-{row.pk}",
                    "func": TASK_FUNCTION,
                    "args": (str(row.pk),),
                    "ack_failure": True,
                    "kwargs": {},
                    "started": now,
                }
            ),
        )
        for row in rows
    )


def enqueue_bulk(count: int, *, with_messages: bool = True, batch: int = 2000) -> float:
    """Insert ``count`` queued noop jobs of the sample document, as create_conversion
    would leave them (a Conversion row and its django-q2 message), in bulk. Returns the
    seconds it took. Workers should be stopped, or they start on the first batch."""
    from django.db import transaction

    from conversions.models import Conversion

    document = sample_document()
    started = time.perf_counter()
    for offset in range(0, count, batch):
        size = min(batch, count - offset)
        with transaction.atomic():
            rows = Conversion.objects.bulk_create(
                Conversion(
                    document=document, owner_id=document.owner_id, engine="noop", pages_total=1, message="Queued"
                )
                for _ in range(size)
            )
            if with_messages:
                enqueue_messages(rows)
    return time.perf_counter() - started


def job_counts() -> dict[str, int]:
    from django.db.models import Count

    from conversions.models import Conversion

    counts = {row["status"]: row["n"] for row in Conversion.objects.values("status").annotate(n=Count("pk"))}
    return {status: counts.get(status, 0) for status in ("queued", "running", "completed", "failed", "cancelled")}


def wait_drained(total: int, deadline: float, poll: float = 0.25) -> bool:
    """Wait until ``total`` jobs have finished or the monotonic ``deadline`` passes."""
    while time.monotonic() < deadline:
        counts = job_counts()
        if counts["completed"] + counts["failed"] + counts["cancelled"] >= total:
            return True
        time.sleep(poll)
    return False


def finished_timeline() -> tuple[list, list]:
    """started_at of every claimed job and finished_at of every completed one."""
    from conversions.models import Conversion

    starts = list(Conversion.objects.exclude(started_at=None).values_list("started_at", flat=True))
    ends = list(Conversion.objects.filter(status="completed").values_list("finished_at", flat=True))
    return starts, ends


def integrity() -> dict[str, int]:
    """Evidence that no job ran twice: claims per job and result rows per job."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE attempts > 1), coalesce(max(attempts), 0) FROM conversions_conversion"
        )
        claimed_twice, most_attempts = cursor.fetchone()
        cursor.execute(
            "SELECT count(*) FROM (SELECT conversion_id FROM conversions_pageresult "
            "GROUP BY conversion_id HAVING count(*) > 1) AS doubled"
        )
        (doubled_results,) = cursor.fetchone()
        cursor.execute(
            "SELECT count(*) FROM conversions_conversion c WHERE status = 'completed' AND "
            "NOT EXISTS (SELECT 1 FROM conversions_pageresult p WHERE p.conversion_id = c.id)"
        )
        (completed_without_result,) = cursor.fetchone()
    return {
        "jobs_claimed_twice": claimed_twice,
        "most_attempts": most_attempts,
        "jobs_with_two_results": doubled_results,
        "completed_without_result": completed_without_result,
    }


def claims_in_log(process: ServiceProcess) -> list[str]:
    """Conversion ids this cluster's workers claimed, from their log lines."""
    return [match.group(1) for match in CLAIM_LINE.finditer(process.log_path.read_text(errors="replace"))]


def explain(sql_text: str, params=()) -> dict:
    """PostgreSQL's plan of a statement, run for real (EXPLAIN ANALYZE) in a transaction
    that is rolled back, and its execution time."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql_text}", params)
        (plan,) = cursor.fetchone()
        transaction.set_rollback(True)
    plan = plan[0] if isinstance(plan, list) else plan
    return {"execution_ms": round(plan["Execution Time"], 3), "nodes": plan_nodes(plan["Plan"])}


def plan_nodes(node: dict, depth: int = 0) -> list[str]:
    index = f" using {node['Index Name']}" if "Index Name" in node else ""
    lines = [f"{'  ' * depth}{node['Node Type']}{index} (rows={node.get('Actual Rows')})"]
    for child in node.get("Plans", []):
        lines += plan_nodes(child, depth + 1)
    return lines


HISTORY_MESSAGE = "bench history"


def add_history(count: int) -> None:
    """``count`` finished jobs, as a service that has run for a while has: inserted by the
    server in one statement (bulk_create would take a minute on a busy machine)."""
    from django.db import connection

    document = sample_document()
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO conversions_conversion
                   (id, document_id, owner_id, status, priority, engine, prompt_mode, progress, message, pages_total,
                    pages_done, attempts, max_attempts, error, worker_id, cancel_requested, output_dir, event_seq,
                    request_fingerprint, created_at, started_at, finished_at, updated_at, page_selection,
                    callback_url, on_page_error, pages_failed, output_bytes)
               SELECT gen_random_uuid(), %s, %s, 'completed', 0, 'noop', 'prompt_layout_all_en', 100, %s, 1, 1, 1, 3,
                      '', '', false, '', 0, '', now() - interval '1 day', now() - interval '1 day',
                      now() - interval '1 day', now(), '', '', 'fail', '[]'::jsonb, 0
                 FROM generate_series(1, %s)""",
            [document.pk, document.owner_id, HISTORY_MESSAGE, count],
        )
        cursor.execute("ANALYZE conversions_conversion")


def remove_history() -> None:
    from django.db import connection

    with connection.cursor() as cursor:  # no results hang off these rows: no cascade needed
        cursor.execute("DELETE FROM conversions_conversion WHERE message = %s", [HISTORY_MESSAGE])


def queue_plans(history: int) -> dict:
    """How the claim query and the queue counts run against the queue as it is now plus
    ``history`` finished jobs: the statements services.claim_next and
    selectors.queue_counts really send (captured in a transaction that is rolled back),
    explained."""
    add_history(history)
    try:
        return explain_queue_queries()
    finally:
        remove_history()


def explain_queue_queries() -> dict:
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from conversions import selectors, services

    with transaction.atomic(), CaptureQueriesContext(connection) as captured:
        services.claim_next(worker_id="bench-explain")
        selectors.queue_counts()
        transaction.set_rollback(True)
    statements = [query["sql"] for query in captured.captured_queries]
    claim = next(text for text in statements if "SKIP LOCKED" in text)
    counts = next(text for text in statements if "FILTER" in text and "COUNT" in text)
    return {
        "claim_next candidate": explain(claim),
        "queue_counts": explain(counts),
        "queue_counts over queued/running rows only (proposed)": explain(
            "SELECT status, count(*) FROM conversions_conversion WHERE status IN ('queued', 'running') GROUP BY status"
        ),
    }


def saved_task_results(count: int | None = None) -> int:
    """Fill django-q2's task table with ``count`` saved successes (default: its
    save_limit), as it is on a service that has run a while: its monitor prunes that
    table on every finished task, so an empty one would flatter the first thousand
    jobs. Returns how many rows were inserted."""
    import uuid

    from django.utils import timezone
    from django_q.conf import Conf
    from django_q.models import Task

    from conversions.services import TASK_FUNCTION

    count = max(Conf.SAVE_LIMIT, 0) if count is None else count
    now = timezone.now()
    Task.objects.bulk_create(
        Task(
            id=uuid.uuid4().hex,
            name=f"conversion-saved-{index}",
            func=TASK_FUNCTION,
            args=(str(uuid.uuid4()),),
            kwargs={},
            result="completed",
            started=now,
            stopped=now,
            success=True,
        )
        for index in range(count)
    )
    return count


# --- CPU accounting: on a busy machine wall-clock rates mostly measure the neighbours ---


def children_cpu_seconds() -> float:
    """CPU time of this process's finished children and everything they waited for (a
    stopped qcluster includes its pusher, monitor and every worker, recycled or not)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def backend_cpu_seconds() -> float:
    """CPU time of the PostgreSQL backends connected to the scratch database now, except
    this process's own (PostgreSQL runs on this machine: its /proc is readable)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [DATABASE_NAME]
        )
        pids = [pid for (pid,) in cursor.fetchall()]
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone, or PostgreSQL on another host
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")
