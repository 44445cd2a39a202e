from django.db import migrations, models


def fill_stems(apps, schema_editor):
    from workers.outputs import safe_stem

    Document = apps.get_model("conversions", "Document")
    for document in Document.objects.only("id", "filename").iterator():
        Document.objects.filter(pk=document.pk).update(stem=safe_stem(document.filename))


class Migration(migrations.Migration):
    dependencies = [("conversions", "0002_event_seq")]

    operations = [
        migrations.AddField(
            model_name="document",
            name="stem",
            field=models.CharField(
                db_index=True, default="document", help_text="File-system-safe stem; names the outputs.", max_length=100
            ),
            preserve_default=False,
        ),
        migrations.RunPython(fill_stems, migrations.RunPython.noop),
        migrations.AddField(
            model_name="conversion",
            name="markdown_edited",
            field=models.TextField(
                blank=True, help_text="A user's edit of the whole document's Markdown; the model's is kept.", null=True
            ),
        ),
        migrations.AddField(
            model_name="pageresult",
            name="markdown_edited",
            field=models.TextField(blank=True, help_text="A user's edit; the model's text is kept.", null=True),
        ),
    ]
