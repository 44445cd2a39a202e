"""Indexes for the admin's Queue page and /metrics: counts per status as an index-only
scan, and throughput over recent pages. Built CONCURRENTLY: workers keep writing to both
tables while a large one is indexed."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("conversions", "0005_idempotency_key")]

    operations = [
        AddIndexConcurrently(
            model_name="conversion",
            index=models.Index(fields=["status"], name="conversion_status"),
        ),
        AddIndexConcurrently(
            model_name="pageresult",
            index=models.Index(fields=["created_at"], name="pageresult_created_at"),
        ),
    ]
