"""django-q2's cluster, stopped in bounded time. Written against django-q2 1.11.1
(``DJANGO_Q2_VERSION``); ``check()`` (at start-up) and ``install()`` (the `qcluster`
command) refuse any other version, or one without the attributes replaced here:
``Cluster.__init__``; ``Sentinel.start``, ``stop``, ``spawn_pusher``, ``spawn_monitor``;
``Queue.get``; ``Stat.save`` (all wrapped or replaced).

It can go when django-q2's ``Sentinel.stop`` no longer puts "STOP" pills into a task
queue that its workers may not drain (and bounds its waits), and ``Stat.save`` survives
a closed connection: run tests/test_shutdown*.py and bench/chaos_stop.py without it.

Why: django-q2's ``Sentinel.stop`` assumes every worker drains the task queue up to a
"STOP" pill. Ours do not: on SIGTERM a worker releases its job at the next page boundary
and exits (workers/shutdown.py), as an idle one does at once. With a backlog, the
pusher has filled the bounded task queue (``queue_limit``, workers squared) with
prefetched messages nobody reads any more, and the sentinel blocks for ever putting its
first "STOP" into it (a futex wait in ``Queue.put``), the pusher blocks putting the next
message, the monitor waits for a "STOP" that never comes, the main process waits for
the sentinel, and the exited workers stay unreaped (issue 21; seen with py-spy).

Here, in the cluster's processes:

- main process: SIGTERM or SIGINT sets the stop event and waits for the sentinel, at
  most ``stop_bound_seconds()``; past that it kills what is left and gives back the
  jobs of killed workers;
- sentinel: SIGTERM to it (from its process group, or the kernel when the main process
  dies) stops the cluster too; its stop SIGTERMs the workers itself (repeated each
  second, for a worker that was still starting), waits for them up to
  SHUTDOWN_GRACE_SECONDS + ``WORKER_EXIT_MARGIN_SECONDS``, kills stragglers and gives
  back their jobs, then stops pusher and monitor, each with a bounded wait before a
  kill. No "STOP" goes into the task queue; the prefetched messages in it are dropped:
  they are wake-ups, unacknowledged, and ``services.wake_stranded_jobs`` replaces them
  when the next cluster's workers start;
- worker: reading the task queue is the one span where SIGTERM ends it at once, and a
  worker asked to stop reads no further task (``Queue.get`` wrapped in
  ``workers.shutdown.waiting_for_task``);
- pusher and monitor die with the sentinel, workers get SIGTERM when it dies
  (dotsocr_site/orphans.py, armed in workers/shutdown.py for workers);
- ``Stat.save`` drops a database connection the server closed (a restart) first:
  django-q2 otherwise retries it on the dead connection for ever.
"""

import logging
import os
import signal
import threading
import time
from importlib.metadata import version
from multiprocessing import current_process, parent_process

from django import db
from django.conf import settings

from dotsocr_site import orphans
from dotsocr_site.patches import require_attributes, require_version

logger = logging.getLogger(__name__)

DJANGO_Q2_VERSION = "1.11.1"
# After the workers' grace: a worker checkpoints, releases its job and exits (a few
# database writes); one that has not by then is killed and its job given back.
WORKER_EXIT_MARGIN_SECONDS = 4.0
# The pusher ends after its current put; one blocked on a full task queue never does.
PUSHER_EXIT_SECONDS = 1.0
# The monitor saves the results it has, then reads "STOP".
MONITOR_EXIT_SECONDS = 2.0
# How often the sentinel re-sends SIGTERM to workers still alive while it stops.
RESIGNAL_SECONDS = 1.0


def stop_bound_seconds() -> float:
    """The longest the sentinel's stop takes before the main process kills what is left."""
    return settings.SHUTDOWN_GRACE_SECONDS + WORKER_EXIT_MARGIN_SECONDS + PUSHER_EXIT_SECONDS + MONITOR_EXIT_SECONDS + 1


# What install() replaces or wraps, by class (checked before it does).
REPLACED = {
    "Cluster": ["__init__"],
    "Sentinel": ["start", "stop", "spawn_pusher", "spawn_monitor", "spawn_process"],
    "Queue": ["get"],
    "Stat": ["save"],
}


def check() -> None:
    """The installed django-q2 is the version this was written for, with what it replaces."""
    check_version()
    from django_q.cluster import Cluster, Sentinel
    from django_q.queues import Queue
    from django_q.status import Stat

    for owner in (Cluster, Sentinel, Queue, Stat):
        require_attributes(__name__, owner, REPLACED[owner.__name__])


def check_version() -> None:
    require_version(__name__, "django-q2", DJANGO_Q2_VERSION, installed=version("django-q2"))


def install() -> None:
    """Patch django-q2's cluster classes in this process (the `qcluster` command); idempotent."""
    check()
    from django_q.cluster import Cluster, Sentinel
    from django_q.queues import Queue
    from django_q.status import Stat

    from workers import shutdown

    if getattr(Sentinel, "_dotsocr_patched", False):
        return
    original_init, original_start, original_save = Cluster.__init__, Sentinel.start, Stat.save
    original_get = Queue.get

    def cluster_init(cluster, *args, **kwargs):
        original_init(cluster, *args, **kwargs)
        stop = MainProcessStop(cluster)
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def sentinel_start(sentinel):
        arm_sentinel(sentinel)
        original_start(sentinel)

    def save_on_a_live_connection(stat):
        db.close_old_connections()
        original_save(stat)

    def get_task(queue, *args, **kwargs):
        with shutdown.waiting_for_task():
            return original_get(queue, *args, **kwargs)

    Cluster.__init__ = cluster_init
    Queue.get = get_task
    Sentinel.start = sentinel_start
    Sentinel.stop = sentinel_stop
    Sentinel.spawn_pusher = spawn_pusher
    Sentinel.spawn_monitor = spawn_monitor
    Stat.save = save_on_a_live_connection
    Sentinel._dotsocr_patched = True


# --- main process ------------------------------------------------------------------------


class MainProcessStop:
    """The main process's SIGTERM/SIGINT handler: stop the sentinel, bounded."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.started = False

    def __call__(self, signum, frame) -> None:
        cluster = self.cluster
        if self.started:
            return  # the group's SIGTERM and a Ctrl-C's SIGINT: one stop
        self.started = True
        if cluster.sentinel is None or cluster.stop_event is None:
            raise SystemExit(0)  # not started yet: nothing to stop
        logger.info("Q Cluster %s stopping.", cluster.name)
        cluster.stop_event.set()
        cluster.sentinel.join(timeout=stop_bound_seconds())
        if cluster.sentinel.is_alive():
            logger.error("the sentinel did not stop in %.0f s; killing the cluster's processes", stop_bound_seconds())
            kill_descendants()
            cluster.sentinel.join(timeout=1)
            give_back_jobs_of_dead_workers()
        logger.info("Q Cluster %s has stopped.", cluster.name)
        cluster.start_event = None  # ends Cluster.start's wait when stopped while starting
        cluster.stop_event = None


def kill_descendants() -> None:
    import psutil

    for process in psutil.Process(os.getpid()).children(recursive=True):
        try:
            process.kill()
        except psutil.Error:
            continue


# --- sentinel ------------------------------------------------------------------------------


def arm_sentinel(sentinel) -> None:
    """In the sentinel process: SIGTERM (its group's, or the kernel's when the main
    process dies) stops the cluster. Its children inherit the handler, which does
    nothing outside the sentinel: pusher and monitor stop through the sentinel, workers
    install their own (workers/shutdown.py)."""
    sentinel_pid = os.getpid()

    def stop_cluster(signum, frame):
        if os.getpid() == sentinel_pid:
            # Not set here: the interrupted guard loop may be inside stop_event.wait().
            threading.Thread(target=sentinel.stop_event.set, daemon=True).start()

    signal.signal(signal.SIGTERM, stop_cluster)
    sentinel_parent = parent_process()  # the cluster's main process
    assert sentinel_parent is not None and sentinel_parent.pid is not None
    orphans.die_with_parent(signal.SIGTERM, parent_pid=sentinel_parent.pid)


def sentinel_stop(sentinel) -> None:
    """Replaces ``Sentinel.stop``: every step bounded, no "STOP" pills (see the module)."""
    from django_q.status import Stat

    Stat(sentinel).save()
    logger.info("%s stopping cluster processes", current_process().name)
    sentinel.event_out.set()
    stop_workers(sentinel, deadline=time.monotonic() + settings.SHUTDOWN_GRACE_SECONDS + WORKER_EXIT_MARGIN_SECONDS)
    stop_process(sentinel.pusher, PUSHER_EXIT_SECONDS)
    sentinel.task_queue.cancel_join_thread()
    sentinel.result_queue.put("STOP")
    # A worker that died writing a result may hold the queue's write lock: never wait
    # on this process's feeder thread at exit.
    sentinel.result_queue.cancel_join_thread()
    stop_process(sentinel.monitor, MONITOR_EXIT_SECONDS)
    Stat(sentinel).save()
    logger.info("%s stopped the cluster", current_process().name)


def stop_workers(sentinel, *, deadline: float) -> None:
    """SIGTERM each worker (again each second) until all have exited or the deadline;
    then kill the rest and give their jobs back."""
    from django_q.status import Stat

    next_signal = 0.0
    while True:
        sentinel.pool[:] = [process for process in sentinel.pool if process.is_alive()]  # also reaps
        now = time.monotonic()
        if not sentinel.pool or now >= deadline:
            break
        if now >= next_signal:
            for process in sentinel.pool:
                signal_process(process.pid, signal.SIGTERM)
            next_signal = now + RESIGNAL_SECONDS
            Stat(sentinel).save()
        time.sleep(0.1)
    if sentinel.pool:
        logger.error("workers %s did not stop in time; killing them", [process.pid for process in sentinel.pool])
        for process in sentinel.pool:
            process.kill()
            process.join(timeout=1)
        sentinel.pool.clear()
    # Also after a clean stop: a worker that died some other way while it held a job
    # (a crash between its claim and its first page) must not leave the job `running`.
    give_back_jobs_of_dead_workers()


def stop_process(process, timeout: float) -> None:
    if process is None:
        return
    process.join(timeout=timeout)
    if process.is_alive():
        logger.warning("%s did not stop in %.0f s; killing it", process.name, timeout)
        process.kill()
        process.join(timeout=1)


def signal_process(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def give_back_jobs_of_dead_workers() -> None:
    from conversions.apps import process_is_running
    from conversions.services import requeue_jobs_of_dead_local_workers

    try:
        requeue_jobs_of_dead_local_workers(host=settings.WORKER_HOST, is_running=process_is_running)
    except Exception:  # the database may be down: the lease reaper gives them back later
        logger.exception("could not give back the jobs of killed workers")
    finally:
        db.connections.close_all()


# --- pusher and monitor: they die with the sentinel ------------------------------------------


def spawn_pusher(sentinel):
    from django_q.pusher import pusher

    return sentinel.spawn_process(dies_with_sentinel(pusher), sentinel.task_queue, sentinel.event_out, sentinel.broker)


def spawn_monitor(sentinel):
    from django_q.monitor import monitor

    return sentinel.spawn_process(dies_with_sentinel(monitor), sentinel.result_queue, sentinel.broker)


def dies_with_sentinel(target):
    """``target`` run in a process that is killed when the sentinel dies: it holds no job,
    and an orphaned pusher would go on taking messages nobody runs."""

    def run(*args):
        orphans.die_with_parent(signal.SIGKILL, parent_pid=parent_process().pid)
        return target(*args)

    run.__name__ = target.__name__
    return run


# --- delayed messages (webhook retries) --------------------------------------------------


def enqueue_at(run_at, func: str, *args, task_name: str) -> None:
    """``async_task(func, *args)`` whose message no cluster takes before ``run_at`` (an
    aware datetime): the ORM broker hands out only messages whose ``lock`` has passed
    (``ORM.dequeue`` filters ``lock__lt=now``) and ``enqueue`` stamps ``lock=now``, so a
    message written with a later ``lock`` waits until then. A delay to the scheduling
    tick of django-q2's own ``Schedule`` (30 s) without its table. Written against the
    ORM broker of django-q2 1.11.1; refuses another version."""
    from django_q.brokers.orm import ORM
    from django_q.conf import Conf
    from django_q.tasks import async_task

    check_version()

    class DelayedORM(ORM):
        def enqueue(self, task):
            return self.get_connection().create(key=self.list_key, payload=task, lock=run_at).pk

    async_task(func, *args, task_name=task_name, broker=DelayedORM(list_key=Conf.CLUSTER_NAME))
