"""django-q2's `qcluster`, with a graceful stop.

django-q2 stops a cluster (SIGTERM or SIGINT to its main process) by waiting for every
worker to finish its current task, which for a long OCR job can be hours; and when the
whole process group gets SIGTERM (systemd, a terminal), its sentinel dies at once and
leaves the workers orphaned. Here:

- the main process forwards SIGTERM to the worker processes, then stops the cluster the
  way django-q2 does; each worker stops at its next page boundary, checkpoints and
  releases its job back to the queue (workers/shutdown.py);
- the sentinel, pusher and monitor ignore SIGTERM, so a signal to the whole group also
  goes through that orderly stop instead of killing them mid-way;
- the sentinel drops a database connection the server closed (a restart) before it
  saves the cluster's status, which django-q2 otherwise retries on the dead connection
  forever (the pusher and workers already do this before each use).
"""

import os
import signal

import psutil
from django import db
from django_q import cluster as django_q_cluster
from django_q.management.commands.qcluster import Command as QclusterCommand
from django_q.status import Stat


class Command(QclusterCommand):
    help = "Starts a django-q2 cluster whose workers release their jobs on SIGTERM."

    def handle(self, *args, **options):
        original_init, original_start = django_q_cluster.Cluster.__init__, django_q_cluster.Sentinel.start
        original_save = Stat.save

        def cluster_init(cluster, *init_args, **init_kwargs):
            original_init(cluster, *init_args, **init_kwargs)
            stop = graceful_stop(cluster)
            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)

        def sentinel_start(sentinel):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # inherited by pusher and monitor
            original_start(sentinel)

        def save_on_a_live_connection(stat):
            db.close_old_connections()
            original_save(stat)

        django_q_cluster.Cluster.__init__ = cluster_init
        django_q_cluster.Sentinel.start = sentinel_start
        Stat.save = save_on_a_live_connection
        try:
            return super().handle(*args, **options)
        finally:
            django_q_cluster.Cluster.__init__, django_q_cluster.Sentinel.start = original_init, original_start
            Stat.save = original_save


def graceful_stop(cluster: django_q_cluster.Cluster):
    def stop(signum, frame):
        if cluster.stop_event is not None and cluster.sentinel is not None and cluster.sentinel.is_alive():
            cluster.stop_event.set()  # first, so the sentinel spawns no new worker meanwhile
        forward_sigterm_to_workers()
        cluster.sig_handler(signum, frame)

    return stop


def forward_sigterm_to_workers() -> None:
    """SIGTERM to every django-q2 worker under this process, not to the sentinel, pusher
    or monitor: those stop through the cluster's own stop procedure. Workers are told
    apart by the process titles django-q2 sets (with setproctitle installed):
    "qcluster <name> idle" or "qcluster <name> processing <task>"."""
    for process in psutil.Process(os.getpid()).children(recursive=True):
        try:
            title = " ".join(process.cmdline())
            if title.endswith(" idle") or " processing " in title:
                process.send_signal(signal.SIGTERM)
        except psutil.Error:
            continue
