"""Fair share's running jobs per owner and "served least recently" (conversions/claiming.py)
as one index probe per owner, not a read of the owner's whole history; built without
locking writes."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models
from django.db.models import Q


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("conversions", "0015_storage_keys"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="conversion",
            index=models.Index(fields=["owner"], condition=Q(status="running"), name="conversion_running_by_owner"),
        ),
        AddIndexConcurrently(
            model_name="conversion",
            index=models.Index(fields=["owner", "started_at"], name="conversion_owner_started"),
        ),
    ]
