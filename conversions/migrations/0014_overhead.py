"""Issue 20: a job's own overhead.

- Two indexes no query needs, each written on every insert: the foreign-key index of
  Conversion.owner ((owner, -created_at) and (owner, idempotency_key) start with it) and
  of PageResult.conversion (the unique (conversion, page_no) starts with it).
- A trigger that NOTIFYs idle worker clusters of each task message committed
  (conversions/notify.py, workers/broker.py).
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from conversions import notify


class Migration(migrations.Migration):
    dependencies = [
        ("conversions", "0013_results"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="conversion",
            name="owner",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="conversions",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AlterField(
            model_name="pageresult",
            name="conversion",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="pages",
                to="conversions.conversion",
            ),
        ),
        migrations.RunSQL(notify.CREATE_TRIGGER, notify.DROP_TRIGGER),
    ]
