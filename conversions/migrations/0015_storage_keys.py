"""Issue 18: files are named by storage keys (conversions/storage.py), not absolute paths.

Rows written before hold absolute paths under DATA_DIR: ``<DATA_DIR>/uploads/x.pdf``
becomes ``uploads/x.pdf`` and ``<DATA_DIR>/outputs/12`` becomes ``outputs/12`` (its files
lie directly under that prefix; later attempts upload under ``outputs/<id>/<attempt>``).
A path outside DATA_DIR is left as it is (and is then not found in storage). Reversible:
keys go back to absolute paths under the DATA_DIR of the process that reverses.
"""

from pathlib import Path, PurePosixPath

from django.conf import settings
from django.db import migrations, models

FIELDS = {"Document": ("stored_path", "original_path"), "Conversion": ("output_dir",)}


def to_key(value: str, data_dir: Path) -> str:
    if not value or not PurePosixPath(value).is_absolute():
        return value
    try:
        return PurePosixPath(value).relative_to(PurePosixPath(data_dir)).as_posix()
    except ValueError:
        return value


def to_path(value: str, data_dir: Path) -> str:
    if not value or PurePosixPath(value).is_absolute():
        return value
    return str(data_dir / value)


def convert(apps, convert_one) -> None:
    data_dir = Path(settings.DATA_DIR).resolve()
    for model_name, fields in FIELDS.items():
        model = apps.get_model("conversions", model_name)
        for row in model.objects.only("pk", *fields).iterator(chunk_size=2000):
            changed = {field: convert_one(getattr(row, field), data_dir) for field in fields}
            if any(changed[field] != getattr(row, field) for field in fields):
                model.objects.filter(pk=row.pk).update(**changed)


def forwards(apps, schema_editor) -> None:
    convert(apps, to_key)


def backwards(apps, schema_editor) -> None:
    convert(apps, to_path)


class Migration(migrations.Migration):
    dependencies = [
        ("conversions", "0014_overhead"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards, elidable=False),
        migrations.AlterField(
            model_name="conversion",
            name="output_dir",
            field=models.CharField(
                blank=True,
                default="",
                help_text="Storage prefix of the published outputs, outputs/<id>/<attempt>; set on completion only.",
                max_length=500,
            ),
        ),
        migrations.AlterField(
            model_name="document",
            name="original_path",
            field=models.CharField(
                blank=True,
                default="",
                help_text="Storage key of the file as uploaded, when the stored one is its repair.",
                max_length=500,
            ),
        ),
        migrations.AlterField(
            model_name="document",
            name="stored_path",
            field=models.CharField(
                help_text="Storage key of the file: uploads/<uuid><suffix>.",
                max_length=500,
                unique=True,
            ),
        ),
    ]
