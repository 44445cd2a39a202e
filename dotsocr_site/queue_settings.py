"""The django-q2 cluster that carries job messages to the workers. Read by settings.py."""

from typing import Any


def q_cluster(*, workers: int, job_timeout_seconds: int, page_timeout_seconds: int) -> dict[str, Any]:
    """Q_CLUSTER for ``workers`` worker processes; its timeouts are backstops above the
    job's and page's own (seconds)."""
    # The ORM broker keeps task messages in PostgreSQL, so a conversion row and its message
    # commit in one transaction. django-q2 is only the transport: the Conversion row decides
    # whether a job runs (a claim is a conditional UPDATE), so a re-delivered message is a
    # no-op.
    timeout = job_timeout_seconds + page_timeout_seconds + 60
    return {
        "name": "dotsocr",
        "orm": "default",
        "workers": workers,
        # One conversion is one task. Our own limits end a job cleanly first (a failed job
        # with a reason); django-q2 kills the worker process only if those did not work.
        "timeout": timeout,
        # A message not acknowledged within `retry` seconds is delivered again; it must
        # exceed `timeout` or a running job's message would be handed to a second worker.
        # A re-delivered message is harmless anyway: it only wakes a worker (claim_next).
        "retry": timeout + 300,
        # Our pipeline records failures on the Conversion itself; django-q2 must acknowledge
        # a failed task rather than deliver it again and again.
        "ack_failures": True,
        # When a worker process dies (SIGKILL, OOM) its message is not acknowledged and comes
        # back after `retry`; django-q2 must not re-run it on its own count either: the
        # job's lease expires and our reaper requeues it, counting Conversion.attempts
        # against Conversion.max_attempts. So django-q2 gets one attempt per message.
        "max_attempts": 1,
        # Pickup: an idle cluster's broker waits for PostgreSQL's NOTIFY of a committed
        # message (workers/broker.py), at most `poll` seconds: the poll is only the fallback
        # (a message whose lock expired sends no notification). 0.25 s also bounds how long
        # the pusher takes to see a stop.
        "broker_class": "workers.broker.NotifiedOrmBroker",
        "poll": 0.25,
        "bulk": 1,
        # Successful tasks are not saved: the Conversion row is their record, and pruning
        # django-q2's table to a limit cost 7 statements and ~45 ms per task (bench/).
        # Failed tasks are still saved, for the admin.
        "save_limit": -1,
        # Recycle workers now and then so a leak in a PDF library cannot grow forever
        # (a recycled worker finishes its task first).
        "recycle": 100,
        "catch_up": False,
        "label": "Task queue",
    }
