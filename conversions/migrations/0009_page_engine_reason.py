"""Each page records why its engine path was taken (issue 15). Adding a column with a
constant default is a catalogue change in PostgreSQL 11+, not a table rewrite."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("conversions", "0008_intake")]

    operations = [
        migrations.AddField(
            model_name="pageresult",
            name="engine_reason",
            field=models.TextField(blank=True, default="", help_text="Why that engine path, in words."),
        ),
    ]
