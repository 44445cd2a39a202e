"""The functions django-q2 calls. Each takes a conversion id and nothing else."""

from workers import pipeline


def run_conversion(conversion_id: str) -> str:
    return pipeline.run_conversion(conversion_id)


def reap_expired_leases() -> dict:
    """Scheduled every minute (see the conversions migration that creates the schedule)."""
    from django.conf import settings

    from conversions.services import requeue_expired_leases, wake_stranded_jobs

    outcome = requeue_expired_leases(lease_seconds=settings.LEASE_SECONDS)
    return {**outcome, "woken": wake_stranded_jobs()}
