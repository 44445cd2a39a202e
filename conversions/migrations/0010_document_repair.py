"""Documents remember a repair: whether one was made, what it recovered, and where the
file as uploaded is kept."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("conversions", "0009_page_engine_reason")]

    operations = [
        migrations.AddField(
            model_name="document",
            name="repaired",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="document",
            name="repair_note",
            field=models.CharField(blank=True, default="", help_text="What the repair recovered.", max_length=300),
        ),
        migrations.AddField(
            model_name="document",
            name="original_path",
            field=models.CharField(
                blank=True,
                default="",
                max_length=500,
                help_text="The file as uploaded, when the stored one is its repair.",
            ),
        ),
    ]
