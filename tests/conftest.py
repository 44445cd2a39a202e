import os
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from conversions import services

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("DOTSOCR_CORPUS", REPO.parent / "shared" / "corpus" / "sample-files"))
FOUR_PAGES = CORPUS / "004-pdflatex-4-pages" / "pdflatex-4-pages.pdf"
ONE_PAGE = CORPUS / "001-trivial" / "minimal-document.pdf"
WITH_IMAGE = CORPUS / "003-pdflatex-image" / "pdflatex-image.pdf"
ENCRYPTED = CORPUS / "005-libreoffice-writer-password" / "libreoffice-writer-password.pdf"
FOUR_PAGES_TEXT = "Hello, here is some text without a meaning"


def truncated_pdf() -> bytes:
    data = FOUR_PAGES.read_bytes()
    return data[: len(data) // 2]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures can act on failures."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(autouse=True)
def isolated_data_dir(settings, tmp_path):
    """Each test writes uploads and outputs into its own folder."""
    data = tmp_path / "data"
    for name, sub in (("DATA_DIR", ""), ("UPLOAD_DIR", "uploads"), ("OUTPUT_DIR", "outputs"),
                      ("OUTPUT_BY_STEM_DIR", "output"), ("STAGING_DIR", "staging")):
        (data / sub).mkdir(parents=True, exist_ok=True)
        setattr(settings, name, data / sub)
    (data / "tmp").mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(data / "tmp")
    return data


@pytest.fixture(autouse=True)
def single_user_install(settings):
    """The suite describes the single-user install `make run` starts: anonymous requests
    act as the built-in user. Security tests turn this off (tests/test_security*.py)."""
    settings.ALLOW_ANONYMOUS = True


def upload_of(path: Path, name: str | None = None) -> SimpleUploadedFile:
    return SimpleUploadedFile(name or path.name, path.read_bytes(), content_type="application/pdf")


@pytest.fixture
def owner(db):
    return services.default_owner()


@pytest.fixture
def make_document(owner, settings):
    def make(path: Path = FOUR_PAGES, name: str | None = None):
        return services.create_document(owner=owner, upload=upload_of(path, name), max_pages=settings.MAX_PAGES)

    return make


@pytest.fixture
def make_conversion(owner, make_document):
    def make(path: Path = FOUR_PAGES, **options):
        return services.create_conversion(document=make_document(path), owner=owner, **options)

    return make


# --- real processes (acceptance tests) -----------------------------------------------


@pytest.fixture(scope="session")
def live_env(django_db_setup, tmp_path_factory):
    """Environment for daphne/qcluster children: the test database and a scratch DATA_DIR."""
    from django.conf import settings
    from django.db import connection

    from tests.live import python_env, url_for_database

    data_dir = tmp_path_factory.mktemp("live-data")
    return python_env(
        DATABASE_URL=url_for_database(connection.settings_dict["NAME"]),
        DATA_DIR=str(data_dir),
        SECRET_KEY=settings.SECRET_KEY,
        NUM_WORKERS="2",
        LOG_LEVEL="INFO",
    )


@pytest.fixture(scope="session")
def live_web(live_env, tmp_path_factory):
    """A real daphne serving the app on a free port; yields its base URL."""
    from tests.live import free_port, start_web

    port = free_port()
    web = start_web(live_env, port, tmp_path_factory.mktemp("web-logs"))
    yield f"http://127.0.0.1:{port}"
    web.stop()


@pytest.fixture
def live_client(live_web, transactional_db):
    import httpx

    with httpx.Client(base_url=live_web, timeout=30) as client:
        yield client


@pytest.fixture
def live_cluster(live_env, tmp_path):
    """A real `manage.py qcluster` for one test; the test may stop and restart it."""
    from tests.live import start_cluster

    cluster = start_cluster(live_env, tmp_path)
    yield cluster
    cluster.stop()
