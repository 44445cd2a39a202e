"""Settings for dotsocr.

Everything configurable comes from the environment through the typed readers in
``dotsocr_site.env``; a malformed value fails at start-up with the variable's name.
"""

import os
import socket
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from dotsocr_site import database_settings, logging_settings, queue_settings, secret_key
from dotsocr_site.engine_settings import dotsocr_configured, dotsocr_settings, original_app_config
from dotsocr_site.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_path,
    env_port,
    env_rate,
    env_str,
    env_webhook_secret,
    object_storage_backend,
)

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)

# --- files -----------------------------------------------------------------------------
DATA_DIR = env_path("DATA_DIR", BASE_DIR / "data")
UPLOAD_DIR = DATA_DIR / "uploads"
OUTPUT_DIR = DATA_DIR / "outputs"  # one folder per conversion: outputs/<conversion id>/
OUTPUT_BY_STEM_DIR = DATA_DIR / "output"  # the original app's layout, links to the latest
STAGING_DIR = DATA_DIR / "staging"
for _directory in (DATA_DIR, UPLOAD_DIR, OUTPUT_DIR, STAGING_DIR, DATA_DIR / "tmp", DATA_DIR / "static"):
    _directory.mkdir(parents=True, exist_ok=True)

MAX_UPLOAD_MB = env_int("MAX_UPLOAD_MB", 200, minimum=1)
MAX_PAGES = env_int("MAX_PAGES", 5000, minimum=1)
# A page whose drawing instructions (content streams, forms, fonts) inflate past this
# fails its job as a likely decompression bomb, before any engine sees it.
MAX_PAGE_CONTENT_MB = env_int("MAX_PAGE_CONTENT_MB", 128, minimum=1)
# Images: a frame with more pixels is refused at upload as a likely decompression bomb.
# Pillow's own warning threshold (PIL.Image.MAX_IMAGE_PIXELS, ~0.25 GB of RGB pixels).
MAX_IMAGE_PIXELS = env_int("MAX_IMAGE_PIXELS", 89_478_485, minimum=1)
# Office and text documents: converted to PDF by LibreOffice in the worker.
SOFFICE_BINARY = env_str("SOFFICE_BINARY", "soffice")
OFFICE_TIMEOUT_SECONDS = env_int("OFFICE_TIMEOUT_SECONDS", 180, minimum=1)
OFFICE_MAX_MB = env_int("OFFICE_MAX_MB", 50, minimum=1)
FILE_UPLOAD_TEMP_DIR = str(DATA_DIR / "tmp")
FILE_UPLOAD_PERMISSIONS = 0o640
# POST /api/v1/batches: files (and source URLs) in one batch, and its whole body in MB
# (each file still within MAX_UPLOAD_MB). Django's own cap on file parts follows.
MAX_BATCH_FILES = env_int("MAX_BATCH_FILES", 1000, minimum=1)
MAX_BATCH_UPLOAD_MB = env_int("MAX_BATCH_UPLOAD_MB", 2048, minimum=1)
DATA_UPLOAD_MAX_NUMBER_FILES = MAX_BATCH_FILES
DATA_UPLOAD_MAX_NUMBER_FIELDS = max(1000, MAX_BATCH_FILES + 100)  # one source_url field per document
# source_url downloads (conversions/sources.py): hosts (or networks, 10.0.0.0/8) that may
# resolve to loopback, private, link-local or reserved addresses, and the time limits of
# one download (connect, each read, the whole download), in seconds.
SOURCE_URL_ALLOW_HOSTS = env_list("SOURCE_URL_ALLOW_HOSTS")
SOURCE_URL_CONNECT_TIMEOUT = env_int("SOURCE_URL_CONNECT_TIMEOUT", 10, minimum=1)
SOURCE_URL_READ_TIMEOUT = env_int("SOURCE_URL_READ_TIMEOUT", 30, minimum=1)
SOURCE_URL_TOTAL_TIMEOUT = env_int("SOURCE_URL_TOTAL_TIMEOUT", 300, minimum=1)
# Webhooks (conversions/webhooks.py): the Standard Webhooks signing secret ("whsec_" +
# base64), hosts that may be non-public (as SOURCE_URL_ALLOW_HOSTS), one attempt's time
# limit, and the retry schedule (first delay, longest delay, attempts in all).
WEBHOOK_SECRET = env_webhook_secret("WEBHOOK_SECRET")
WEBHOOK_ALLOW_HOSTS = env_list("WEBHOOK_ALLOW_HOSTS")
WEBHOOK_TIMEOUT_SECONDS = env_float("WEBHOOK_TIMEOUT_SECONDS", 10, minimum=0.1)
WEBHOOK_RETRY_BASE_SECONDS = env_float("WEBHOOK_RETRY_BASE_SECONDS", 5, minimum=0.01)
WEBHOOK_RETRY_MAX_DELAY_SECONDS = env_float("WEBHOOK_RETRY_MAX_DELAY_SECONDS", 6 * 3600, minimum=0.01)
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 11, minimum=1)
# Prefer: wait=N on the API (conversions/waiting.py) waits at most this long.
SYNC_WAIT_MAX_SECONDS = env_int("SYNC_WAIT_MAX_SECONDS", 120, minimum=0)


def _secret_key() -> str:
    """SECRET_KEY from the environment, or from the file SECRET_KEY_FILE names.

    Without either, a production process (DEBUG off) refuses to start: a key made up on
    the spot would differ between the web and worker processes (django-q2 signs task
    messages with it) and between replicas. The run command (dotsocr_site/launcher.py)
    keeps one in DATA_DIR/secret_key and names it in SECRET_KEY_FILE; with DEBUG on,
    settings do the same themselves.
    """
    key = env_str("SECRET_KEY", "")
    if key:
        return key
    key_file = env_str("SECRET_KEY_FILE", "")
    if key_file:
        return secret_key.read(Path(key_file).expanduser())
    if DEBUG:
        return secret_key.read(secret_key.generate_once(DATA_DIR / "secret_key"))
    raise ImproperlyConfigured(
        "SECRET_KEY is required when DEBUG is off: set SECRET_KEY, or SECRET_KEY_FILE to a file that holds it "
        "(`make run` keeps one in DATA_DIR/secret_key)."
    )


SECRET_KEY = _secret_key()

# --- security --------------------------------------------------------------------------
# Off: the API, the original app's routes, the pages and the WebSockets need a signed-in
# user (session or token). On (single-user installs; the run command's default): anonymous
# requests act as one built-in user.
ALLOW_ANONYMOUS = env_bool("ALLOW_ANONYMOUS", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ("localhost", "127.0.0.1", "[::1]"))
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"
# HTTPS=true: served through a TLS-terminating proxy that sets X-Forwarded-Proto.
HTTPS = env_bool("HTTPS", False)
if HTTPS:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^health$"]  # load balancers probe it over plain HTTP
    SECURE_HSTS_SECONDS = env_int("HSTS_SECONDS", 365 * 24 * 3600, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("HSTS_PRELOAD", True)
# Client addresses (login throttling) come from X-Forwarded-For past this many proxies.
NUM_PROXIES = env_int("NUM_PROXIES", 1 if HTTPS else 0, minimum=0)
# Per user: submissions per period ("off" for none; a batch counts once), and conversions
# waiting in the queue at once (0 for no cap). Fair share (services.claim_next) already
# keeps a long queue from starving others; these only bound what one user may pile up,
# set to let a folder of a few thousand files through. A single-user install (`make run`
# with ALLOW_ANONYMOUS) turns both off (dotsocr_site/launcher.py).
SUBMIT_RATE = env_rate("SUBMIT_RATE", "600/min")
MAX_QUEUED_PER_USER = env_int("MAX_QUEUED_PER_USER", 10000, minimum=0)
# Per client address: attempts at POST /api/v1/auth/token.
LOGIN_RATE = env_rate("LOGIN_RATE", "10/min")

# --- service ---------------------------------------------------------------------------
API_HOST = env_str("API_HOST", "0.0.0.0")
API_PORT = env_port("API_PORT", 8080)
NUM_WORKERS = env_int("NUM_WORKERS", 4, minimum=1, maximum=256)
# Threads of the CPU OCR models (rapidocr) in each worker: the host's cores shared by the workers.
OCR_CPU_THREADS = env_int("OCR_CPU_THREADS", max(1, (os.cpu_count() or 1) // NUM_WORKERS), minimum=1)
OCR_ENGINE = env_choice("OCR_ENGINE", "auto", ("auto", "textlayer", "rapidocr", "dotsocr", "noop"))
# Page images (JPEG outputs, and what a vision engine sees) are rendered at this DPI.
RENDER_DPI = env_int("DPI", 200, minimum=36, maximum=600)
# dots.ocr through vLLM, read under the original app's variable names (VLLM_IP, VLLM_PORT,
# VLLM_MODEL_NAME, TEMPERATURE, TOP_P, MAX_COMPLETION_TOKENS, MIN_PIXELS, MAX_PIXELS) or
# OCR_ENGINE_URLS for several servers. A server counts as configured when one is named.
# The worker pool shares one in-flight budget per server (OCR_SERVER_BUDGET, 64 by
# default: the dots.ocr authors suggest 32-128 concurrent requests per GPU), split evenly
# between the NUM_WORKERS processes, so a server sees enough requests to batch and no
# process holds an unbounded number of page images. DOTSOCR holds the keyword arguments
# of the engine's DotsOcrConfig (dotsocr_site/engine_settings.py).
OCR_SERVER_BUDGET = env_int("OCR_SERVER_BUDGET", 64, minimum=1)
DOTSOCR = dotsocr_settings(in_flight_per_server=max(1, OCR_SERVER_BUDGET // NUM_WORKERS))
DOTSOCR_CONFIGURED = dotsocr_configured()
NUM_THREAD = env_int("NUM_THREAD", 16, minimum=1)  # pages of one job in flight at once
OCR_CONFIG = original_app_config(DOTSOCR, num_thread=NUM_THREAD, dpi=RENDER_DPI, output_dir=OUTPUT_DIR)
# What the original React frontend reads from GET /config; apiDomain is where it sends
# API calls and opens WebSockets, so it must be this service's public URL.
FRONTEND_CONFIG = {
    "basePath": env_str("BASE_PATH", ""),
    "appDomain": env_str("APP_DOMAIN", f"http://localhost:{API_PORT}"),
    "apiDomain": env_str("API_DOMAIN", f"http://localhost:{API_PORT}"),
    "iamDomain": env_str("IAM_DOMAIN", ""),
    "clientId": env_str("CLIENT_ID", ""),
    "iamScope": env_str("IAM_SCOPE", ""),
}
# /metrics answers staff, or a scraper sending `Authorization: Bearer <METRICS_TOKEN>`.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
# Hours a finished conversion's files (upload, outputs) are kept; then a scheduled job
# removes them and marks the rows expired (their file routes answer 410). 0, the default,
# keeps them: deleting users' results is a policy decision an operator makes, not one the
# software should make silently on upgrade.
RESULT_TTL_HOURS = env_int("RESULT_TTL_HOURS", 0, minimum=0)
# A running job renews its lease every LEASE_SECONDS / 4 (a heartbeat thread); a job
# whose lease is older than LEASE_SECONDS is given back to the queue by the reaper.
LEASE_SECONDS = env_int("LEASE_SECONDS", 120, minimum=1)
# The host part of worker ids ("<WORKER_HOST>:<pid>", in Conversion.worker_id). A new
# worker process gives back at once the jobs of dead workers with its own WORKER_HOST
# (their pids are gone), so every machine, and every cluster that runs beside another
# on one machine as a host of its own, needs a distinct value. Default: the host name.
WORKER_HOST = env_str("WORKER_HOST", socket.gethostname())
if ":" in WORKER_HOST or any(character.isspace() for character in WORKER_HOST):
    raise ImproperlyConfigured(f"Environment variable WORKER_HOST={WORKER_HOST!r} is not a name without ':' or spaces.")
# Time limits. A job past JOB_TIMEOUT_SECONDS fails at its next page boundary; a page
# past PAGE_TIMEOUT_SECONDS fails the job naming the page (and its worker process is
# replaced, since a stuck thread cannot be stopped). django-q2's own timeout (below) is
# only a backstop above both.
JOB_TIMEOUT_SECONDS = env_int("JOB_TIMEOUT_SECONDS", 4 * 3600, minimum=1)
PAGE_TIMEOUT_SECONDS = env_int("PAGE_TIMEOUT_SECONDS", 15 * 60, minimum=1)
# On SIGTERM a worker stops taking pages, waits this long for the pages in flight,
# checkpoints them and gives its job back to the queue.
SHUTDOWN_GRACE_SECONDS = env_int("SHUTDOWN_GRACE_SECONDS", 20, minimum=0)
# A worker that loses its database connection mid-job waits this long for it to come
# back, then releases the job (else the lease reaper requeues it later).
DB_RECONNECT_SECONDS = env_int("DB_RECONNECT_SECONDS", 60, minimum=1)

# --- Django ----------------------------------------------------------------------------
INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "channels",
    "channels_postgres",
    # Before django_q: its `qcluster` command is replaced by ours (graceful shutdown).
    "conversions",
    "django_q",
]

MIDDLEWARE = [
    "dotsocr_site.web_process.web_process_header",  # X-Web-Process: which of WEB_CONCURRENCY answered
    "django.middleware.security.SecurityMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "dotsocr_site.urls"
ASGI_APPLICATION = "dotsocr_site.asgi.application"
WSGI_APPLICATION = "dotsocr_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = database_settings.databases(base_dir=BASE_DIR)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Django's database sessions, loaded by a written-out SELECT (every signed-in request loads one).
SESSION_ENGINE = "dotsocr_site.sessions"

# The database cache is shared by every process; django-q2 keeps its cluster stats there,
# so the web process can report live workers.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "dotsocr_cache",
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"  # created above; WhiteNoise serves from the app folders
# --- storage: every file the service keeps (conversions/storage.py) ----------------------
# Unset: the local filesystem under DATA_DIR (also a volume shared by several hosts).
# s3://bucket/prefix: S3-compatible object storage (AWS, MinIO, Ceph, R2) through
# django-storages; boto3 takes AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
# and AWS_DEFAULT_REGION from the environment as usual.
# Downloads redirect (302) to a presigned URL of the object store instead of passing
# through the web process; the URL is valid this many seconds.
OBJECT_STORAGE_PRESIGNED_DOWNLOADS = env_bool("OBJECT_STORAGE_PRESIGNED_DOWNLOADS", False)
OBJECT_STORAGE_PRESIGNED_SECONDS = env_int("OBJECT_STORAGE_PRESIGNED_SECONDS", 300, minimum=1, maximum=7 * 86400)
STORAGES = {
    "default": object_storage_backend("OBJECT_STORAGE_URL", presigned_seconds=OBJECT_STORAGE_PRESIGNED_SECONDS),
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# --- end of storage ------------------------------------------------------------------------
# Tests and `make run` serve admin assets straight from the app folders.
WHITENOISE_USE_FINDERS = True

# --- CORS: the original frontend runs on its own origin ---------------------------------
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS")
CORS_ALLOW_ALL_ORIGINS = env_bool("CORS_ALLOW_ALL_ORIGINS", not CORS_ALLOWED_ORIGINS)
CORS_ALLOW_HEADERS = ("accept", "authorization", "content-type", "currentlanguage", "x-csrftoken", "x-requested-with")

# --- API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: its WWW-Authenticate header makes a missing login a 401, not a 403.
    # Session logins are CSRF-checked on writes by SessionAuthentication.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["conversions.api.permissions.SignedInOrAnonymousAllowed"],
    "NUM_PROXIES": NUM_PROXIES,
    "DEFAULT_PAGINATION_CLASS": "conversions.api.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # DRF's defaults, with a JSON parser that also refuses bodies nested too deeply.
    "DEFAULT_PARSER_CLASSES": [
        "conversions.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "conversions.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "dotsocr API",
    "DESCRIPTION": "Persistent PDF to Markdown conversion queue (dots.ocr).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
}

# --- Channels --------------------------------------------------------------------------
# Progress travels from worker processes to the web process(es) through a channel layer
# that crosses processes: Redis when CHANNEL_LAYER_URL is redis://... (channels_redis'
# pub/sub layer: a web process subscribes once per group and fans out to its sockets,
# conversions/progress/fanout.py), else PostgreSQL (LISTEN/NOTIFY, no extra server). "memory" is
# for single-process unit tests only.
#
# A group membership left by a web process that died lapses after this long; live ones
# are renewed at a quarter of it (conversions/progress/fanout.py). Redis pub/sub needs neither:
# its subscriptions end with the connection.
CHANNEL_GROUP_EXPIRY_SECONDS = 600


CHANNEL_LAYERS = {
    "default": database_settings.channel_layer(DATABASES["default"], group_expiry=CHANNEL_GROUP_EXPIRY_SECONDS)
}

# Set by the launcher for its web processes (dotsocr_site/web_tier.py): how many share the
# listening socket (elsewhere 1), and for several, where they keep their open-WebSocket
# gauge in prometheus-client's files, which /metrics sums.
WEB_CONCURRENCY = env_int("WEB_CONCURRENCY", 1, minimum=1)
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR", "")

# The web process serves each request on a thread of its own, and with persistent
# connections every thread keeps one (bench/: 174 for one daphne under load). So
# dotsocr_site/asgi.py sets DB_POOL_MAX and the web process draws from a pool instead.
# Not the workers: django-q2 forks its processes after using the database, which a pool
# does not survive. Only the default alias: the channel layer has a pool of its own.
DB_POOL_MAX = env_int("DB_POOL_MAX", 0, minimum=0)
if DB_POOL_MAX:
    DATABASES["default"] = {
        **DATABASES["default"],
        "CONN_MAX_AGE": 0,
        "OPTIONS": {
            **DATABASES["default"].get("OPTIONS", {}),
            "pool": {"min_size": 2, "max_size": DB_POOL_MAX, "timeout": 10},
        },
    }

# --- django-q2 -------------------------------------------------------------------------
Q_CLUSTER = queue_settings.q_cluster(
    workers=NUM_WORKERS, job_timeout_seconds=JOB_TIMEOUT_SECONDS, page_timeout_seconds=PAGE_TIMEOUT_SECONDS
)

# --- logging ---------------------------------------------------------------------------
LOGGING = logging_settings.logging_config()
