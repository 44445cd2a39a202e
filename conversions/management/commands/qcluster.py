"""django-q2's `qcluster`, stopped in bounded time.

A stop (SIGTERM or SIGINT to the main process, SIGTERM to the whole process group, or
the death of the process that started it) makes each worker stop at its next page
boundary, checkpoint and give its job back (workers/shutdown.py), and ends every process
of the cluster within SHUTDOWN_GRACE_SECONDS + 10 s, whatever the task queue holds.
How, and why django-q2's own stop hangs with our workers: dotsocr_site/patches/django_q.py.
"""

from django_q.management.commands.qcluster import Command as QclusterCommand

from dotsocr_site.patches import django_q as django_q_patches


class Command(QclusterCommand):
    help = "Starts a django-q2 cluster whose workers release their jobs on SIGTERM and that stops in bounded time."

    def handle(self, *args, **options):
        django_q_patches.install()
        return super().handle(*args, **options)
