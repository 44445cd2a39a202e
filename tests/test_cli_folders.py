"""`manage.py convert` with folders, --batch and --pages."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from conversions.models import Batch, Conversion, Document
from tests.conftest import truncated_pdf
from tests.live import pdf_of


def run(*args):
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def folder(tmp_path):
    papers = tmp_path / "papers"
    papers.mkdir()
    for name, pages in (("b.pdf", 2), ("a.pdf", 3), ("c.pdf", 1)):
        (papers / name).write_bytes(pdf_of(pages, name))
    (papers / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")  # hidden: left out
    (papers / "nested").mkdir()  # subfolders: left out
    (papers / "nested" / "d.pdf").write_bytes(pdf_of(1, "d"))
    return papers


def test_a_folder_queues_each_file_in_it_in_name_order(db, folder):
    out, _ = run("convert", str(folder), "--sync", "--engine", "textlayer")
    assert [line.split(":")[0] for line in out.splitlines() if "queued as" in line] == [
        str(folder / "a.pdf"),
        str(folder / "b.pdf"),
        str(folder / "c.pdf"),
    ]
    assert Conversion.objects.filter(status="completed").count() == 3 and Batch.objects.count() == 0


def test_batch_queues_a_folder_as_one_batch_with_the_pages_asked(db, folder):
    out, _ = run("convert", str(folder), "--batch", "--pages", "1")
    batch = Batch.objects.get()
    assert f"batch {batch.pk}: 3 conversions queued" in out
    conversions = Conversion.objects.filter(batch=batch).order_by("created_at")
    assert [(c.document.filename, c.page_selection, c.pages_total) for c in conversions] == [
        ("a.pdf", "1", 1),
        ("b.pdf", "1", 1),
        ("c.pdf", "1", 1),
    ]


def test_batch_with_a_bad_file_queues_nothing_and_names_it(db, folder):
    (folder / "broken.pdf").write_bytes(truncated_pdf())
    with pytest.raises(CommandError, match=r"^nothing queued: broken\.pdf: .*truncated"):
        run("convert", str(folder), "--batch")
    assert (Batch.objects.count(), Conversion.objects.count(), Document.objects.count()) == (0, 0, 0)


def test_pages_out_of_range_is_refused_naming_the_file(db, folder):
    with pytest.raises(CommandError, match=r"a\.pdf: pages: '4' is out of range: the document has 3 pages\."):
        run("convert", str(folder / "a.pdf"), "--pages", "4")
    assert Document.objects.count() == 0


def test_an_empty_folder_is_an_error(db, tmp_path):
    with pytest.raises(CommandError, match="no files to convert"):
        run("convert", str(tmp_path))
