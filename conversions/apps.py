import logging

from django.apps import AppConfig

logger = logging.getLogger(__name__)


class ConversionsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "conversions"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        from dotsocr_site import patches

        # Every patch of a library's internals refuses a version it was not written for.
        patches.check_all()

        post_spawn.connect(prepare_worker_process, dispatch_uid="dotsocr-prepare-worker")


def prepare_worker_process(sender, proc_name, **kwargs) -> None:
    """Runs in each new django-q2 worker process: graceful SIGTERM (workers/shutdown.py),
    and, since a new worker is often the replacement of one that was killed (or of a
    whole cluster), give back the jobs that dead workers of this host left `running`
    and wake queued jobs whose messages the dead took with them."""
    from django.conf import settings
    from django.db import connection

    from conversions import services
    from workers import shutdown

    shutdown.install()
    try:
        services.requeue_jobs_of_dead_local_workers(host=settings.WORKER_HOST, is_running=process_is_running)
        services.wake_stranded_jobs()
    except Exception:  # the lease reaper is the fallback; a worker must start regardless
        logger.exception("could not look for jobs of dead workers")
    finally:
        connection.close()  # opened in the worker before its first task; start it clean


def process_is_running(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
