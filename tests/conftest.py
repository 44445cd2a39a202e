import os
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from conversions import services
from tests.s3server import s3_server, s3_storage  # noqa: F401 (fixtures)

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
    for name, sub in (
        ("DATA_DIR", ""),
        ("UPLOAD_DIR", "uploads"),
        ("OUTPUT_DIR", "outputs"),
        ("OUTPUT_BY_STEM_DIR", "output"),
        ("STAGING_DIR", "staging"),
    ):
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


def stored(key: str) -> Path:
    """The local file (or folder) of a storage key, on the local backend (DATA_DIR)."""
    from conversions import storage

    return storage.local_path(key)


def published(conversion_or_id) -> Path:
    """The local folder of a completed conversion's published outputs (its output_dir,
    ``outputs/<id>/<attempt>`` under DATA_DIR)."""
    from conversions.models import Conversion

    pk = getattr(conversion_or_id, "pk", conversion_or_id)
    return stored(Conversion.objects.get(pk=pk).output_dir)


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


_shared_cluster = []  # the running qcluster live_cluster hands out, if any


def stop_shared_cluster() -> None:
    while _shared_cluster:
        _shared_cluster.pop().stop()


@pytest.fixture(scope="session")
def shared_cluster_logs(tmp_path_factory):
    yield tmp_path_factory.mktemp("shared-cluster")
    stop_shared_cluster()


@pytest.fixture
def live_cluster(live_env, shared_cluster_logs):
    """A real `manage.py qcluster` with live_env's settings, shared by the tests that use
    it one after another (a start costs seconds): it runs only while such tests run, and
    is stopped before any other test (which may start clusters of its own, or expect jobs
    to stay queued). A test may stop it; the next test then gets a fresh one. Its jobs
    are the test's own: wait for them to end, and assert on the objects the test made."""
    from tests.live import start_cluster

    if _shared_cluster and _shared_cluster[0].process.poll() is not None:
        stop_shared_cluster()  # stopped by the previous test, or crashed
    if not _shared_cluster:
        logs = shared_cluster_logs / f"start-{len(list(shared_cluster_logs.iterdir()))}"
        logs.mkdir()
        _shared_cluster.append(start_cluster(live_env, logs))
    return _shared_cluster[0]


@pytest.fixture(autouse=True)
def shared_cluster_only_for_its_tests(request):
    """Autouse fixtures run first: the shared cluster is gone before this test starts anything."""
    if "live_cluster" not in request.fixturenames:
        stop_shared_cluster()


def pytest_collection_modifyitems(items):
    """Run the tests that use the shared live_cluster one after another, from where the
    first of them runs (after pytest-django's reordering: they all use transactional_db),
    so that one cluster serves them all."""
    users = [item for item in items if {"live_cluster", "transactional_db"} <= set(getattr(item, "fixturenames", ()))]
    if len(users) < 2:
        return
    first, moved = items.index(users[0]), set(map(id, users))
    rest = [item for item in items if id(item) not in moved]
    items[:] = rest[:first] + users + rest[first:]
