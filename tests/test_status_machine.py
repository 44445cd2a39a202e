"""The conversion status machine: every transition is a conditional UPDATE in services."""

import pytest

from conversions import services
from conversions.exceptions import IllegalTransition, LostClaim
from conversions.models import Conversion

Status = Conversion.Status


def refreshed(conversion):
    conversion.refresh_from_db()
    return conversion


def test_new_conversion_is_queued(make_conversion):
    conversion = make_conversion()
    assert conversion.status == Status.QUEUED
    assert conversion.progress == 0 and conversion.attempts == 0


def test_claim_moves_queued_to_running_and_records_the_worker(make_conversion):
    conversion = make_conversion()
    claimed = services.claim_conversion(conversion_id=conversion.pk, worker_id="host:1")
    assert claimed.status == Status.RUNNING
    assert claimed.worker_id == "host:1"
    assert claimed.attempts == 1
    assert claimed.started_at is not None and claimed.heartbeat_at is not None


def test_double_claim_is_refused(make_conversion):
    conversion = make_conversion()
    assert services.claim_conversion(conversion_id=conversion.pk, worker_id="host:1") is not None
    assert services.claim_conversion(conversion_id=conversion.pk, worker_id="host:2") is None
    assert refreshed(conversion).worker_id == "host:1"


def test_claim_of_unknown_conversion_is_none(db):
    assert services.claim_conversion(conversion_id="00000000-0000-0000-0000-000000000000", worker_id="w") is None


def test_completing_a_queued_conversion_is_refused(make_conversion):
    conversion = make_conversion()
    conversion.worker_id = ""
    with pytest.raises(LostClaim):
        services.complete_conversion(conversion=conversion, output_dir="/nowhere")
    assert refreshed(conversion).status == Status.QUEUED


def test_another_worker_cannot_complete_a_claimed_job(make_conversion):
    conversion = make_conversion()
    services.claim_conversion(conversion_id=conversion.pk, worker_id="host:1")
    impostor = refreshed(conversion)
    impostor.worker_id = "host:2"
    with pytest.raises(LostClaim):
        services.complete_conversion(conversion=impostor, output_dir="/nowhere")
    assert refreshed(conversion).status == Status.RUNNING


def test_finished_conversion_cannot_fail_or_complete_again(make_conversion):
    conversion = make_conversion()
    running = services.claim_conversion(conversion_id=conversion.pk, worker_id="w")
    services.complete_conversion(conversion=running, output_dir="/out")
    assert services.fail_conversion(conversion=running, error="late") is False
    with pytest.raises(LostClaim):
        services.complete_conversion(conversion=running, output_dir="/out")
    done = refreshed(conversion)
    assert done.status == Status.COMPLETED and done.progress == 100 and done.error == ""


@pytest.mark.parametrize(
    "source,target",
    [
        (Status.COMPLETED, Status.RUNNING),
        (Status.COMPLETED, Status.QUEUED),
        (Status.QUEUED, Status.COMPLETED),
        (Status.QUEUED, Status.FAILED),
        (Status.FAILED, Status.RUNNING),
    ],
)
def test_transitions_outside_the_machine_are_illegal(make_conversion, source, target):
    conversion = make_conversion()
    with pytest.raises(IllegalTransition):
        services._transition(conversion.pk, sources={source}, target=target)
    assert refreshed(conversion).status == Status.QUEUED


def test_failing_records_a_readable_reason(make_conversion):
    conversion = make_conversion()
    running = services.claim_conversion(conversion_id=conversion.pk, worker_id="w")
    assert services.fail_conversion(conversion=running, error="Page 2: engine exploded") is True
    failed = refreshed(conversion)
    assert failed.status == Status.FAILED
    assert failed.error == "Page 2: engine exploded"
    assert failed.message == "Conversion failed: Page 2: engine exploded"
    assert failed.finished_at is not None


def test_cancelling_a_queued_job_means_it_never_runs(make_conversion):
    conversion = make_conversion()
    services.cancel_conversion(conversion=conversion)
    assert refreshed(conversion).status == Status.CANCELLED
    assert services.claim_conversion(conversion_id=conversion.pk, worker_id="w") is None


def test_cancelling_a_running_job_asks_the_worker_to_stop(make_conversion):
    conversion = make_conversion()
    services.claim_conversion(conversion_id=conversion.pk, worker_id="w")
    services.cancel_conversion(conversion=conversion)
    cancelling = refreshed(conversion)
    assert cancelling.status == Status.RUNNING and cancelling.cancel_requested


def test_cancelling_a_finished_job_is_refused(make_conversion):
    conversion = make_conversion()
    running = services.claim_conversion(conversion_id=conversion.pk, worker_id="w")
    services.complete_conversion(conversion=running, output_dir="/out")
    with pytest.raises(IllegalTransition):
        services.cancel_conversion(conversion=conversion)


def test_progress_never_goes_backwards(make_conversion):
    conversion = make_conversion()
    running = services.claim_conversion(conversion_id=conversion.pk, worker_id="w")
    services.record_finalizing(conversion=running)
    services.record_pdf_loaded(conversion=running, pages_total=4)
    assert refreshed(conversion).progress == 95


def test_release_returns_a_running_job_to_the_queue_for_a_later_attempt(make_conversion):
    conversion = make_conversion()
    running = services.claim_conversion(conversion_id=conversion.pk, worker_id="w")
    assert services.release_conversion(conversion=running) is True
    released = refreshed(conversion)
    assert released.status == Status.QUEUED and released.worker_id == ""
    again = services.claim_conversion(conversion_id=conversion.pk, worker_id="w2")
    assert again.attempts == 2


def test_status_column_rejects_values_outside_the_machine(make_conversion):
    from django.db import IntegrityError, transaction

    conversion = make_conversion()
    with pytest.raises(IntegrityError), transaction.atomic():
        Conversion.objects.filter(pk=conversion.pk).update(status="exploded")
