"""The CPU OCR models run on the configured number of threads (OCR_CPU_THREADS)."""

import pytest
from django.conf import settings

from workers.ocr import rapidocr


def intra_op_threads() -> set[int]:
    models = rapidocr.reader()
    sessions = (models.text_det.infer, models.text_cls.infer, models.text_rec.session)  # rapidocr 1.4.4's names
    return {session.session.get_session_options().intra_op_num_threads for session in sessions}


@pytest.fixture
def restore_threads():
    threads = rapidocr._threads
    yield
    rapidocr.use_threads(threads)


def test_models_run_on_the_configured_thread_count(restore_threads):
    rapidocr.use_threads(1)
    assert intra_op_threads() == {1}
    rapidocr.use_threads(2)
    assert intra_op_threads() == {2}


def test_zero_threads_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        rapidocr.use_threads(0)


def test_the_default_shares_the_cores_between_the_workers():
    import os

    assert settings.OCR_CPU_THREADS == max(1, (os.cpu_count() or 1) // settings.NUM_WORKERS)
