"""Priorities: a worker always takes the highest-priority queued job, then the oldest."""

import random

from conversions import services
from conversions.models import Conversion
from tests.conftest import ONE_PAGE
from workers import pipeline


def test_one_worker_runs_twenty_mixed_jobs_in_priority_order(make_document, owner):
    document = make_document(ONE_PAGE)
    randomizer = random.Random(11)
    priorities = [randomizer.choice([-5, 0, 3, 10]) for _ in range(20)]
    # The order of claims is the behaviour: the `noop` engine keeps each job's work small.
    jobs = [
        services.create_conversion(document=document, owner=owner, priority=priority, engine="noop")
        for priority in priorities
    ]

    for job in reversed(jobs):  # messages arrive in any order; each only wakes the worker
        assert pipeline.run_conversion(str(job.pk)) == "completed"

    ran = Conversion.objects.order_by("started_at")
    expected = sorted(jobs, key=lambda job: (-job.priority, job.created_at))
    assert [job.pk for job in ran] == [job.pk for job in expected]
    assert len({job.priority for job in jobs}) > 1


def test_claim_next_skips_jobs_that_are_not_queued(make_conversion):
    first, second = make_conversion(ONE_PAGE), make_conversion(ONE_PAGE, priority=5)
    services.cancel_conversion(conversion=second)
    claimed = services.claim_next(worker_id="w")
    assert claimed.pk == first.pk
    assert services.claim_next(worker_id="w") is None
