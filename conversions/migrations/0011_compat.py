from django.db import migrations, models


def move_one_page_edits_to_their_page(apps, schema_editor):
    """A whole-document edit of a one-page conversion is an edit of its page: edits are
    per page now (the original viewer's single-file view saved without page_no)."""
    Conversion = apps.get_model("conversions", "Conversion")
    PageResult = apps.get_model("conversions", "PageResult")
    edited = Conversion.objects.filter(markdown_edited__isnull=False, pages_total=1)
    for conversion in edited.only("id", "markdown_edited").iterator():
        moved = PageResult.objects.filter(conversion_id=conversion.pk, markdown_edited__isnull=True).update(
            markdown_edited=conversion.markdown_edited
        )
        if moved:
            Conversion.objects.filter(pk=conversion.pk).update(markdown_edited=None)


class Migration(migrations.Migration):
    dependencies = [("conversions", "0010_document_repair")]

    operations = [
        migrations.RunPython(move_one_page_edits_to_their_page, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="conversion",
            name="markdown_edited",
            field=models.TextField(
                blank=True,
                help_text="Legacy: a whole-document edit from before edits were per page; not shown.",
                null=True,
            ),
        ),
    ]
