from django.db import migrations

REAPER = "dotsocr-lease-reaper"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.get_or_create(
        name=REAPER,
        defaults={"func": "workers.tasks.reap_expired_leases", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=REAPER).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("conversions", "0003_stem_and_edits"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]
