"""The functions django-q2 calls.

A conversion's message wakes a worker, which claims the best queued job
(workers/pipeline.py); the message's argument names the job that sent it, not the job
that will run.
"""

from workers import pipeline


def wake_worker(wake_up: str) -> str:
    """Run the best queued conversion, if any; ``wake_up`` is only logged."""
    return pipeline.run_next_queued(wake_up)


# Messages queued by versions before the rename name this path; they are wake-ups too.
run_conversion = wake_worker


def reap_expired_leases() -> dict:
    """Scheduled every minute (see the conversions migration that creates the schedule)."""
    from django.conf import settings

    from conversions.services import requeue_expired_leases, wake_stranded_jobs
    from conversions.webhooks import requeue_lost

    outcome = requeue_expired_leases(lease_seconds=settings.LEASE_SECONDS)
    requeue_lost()  # webhook deliveries whose message was lost (it logs what it resent)
    return {**outcome, "woken": wake_stranded_jobs()}


def expire_results() -> dict:
    """Scheduled every 15 minutes (conversions migration 0013): removes the files of
    results older than RESULT_TTL_HOURS (0: keeps them; see conversions/retention.py)."""
    from django.conf import settings

    from conversions.retention import expire_results as expire

    return expire(ttl_hours=settings.RESULT_TTL_HOURS)


def deliver_webhook(delivery_id: str) -> str:
    """One attempt of a webhook delivery (conversions/webhook_delivery.py); queued when a
    conversion becomes final and again for each retry."""
    from conversions.webhook_delivery import attempt_delivery

    return attempt_delivery(delivery_id)
