"""Django settings, configured from the environment (see deploy/env.example).

With nothing set, the service runs embedded: SQLite and artifacts under ``./var``,
and ``manage.py serve`` starts its own Redis. In production set ``DATABASE_URL``
(PostgreSQL), ``REDIS_URL``, ``ARTIFACT_ROOT``, ``SECRET_KEY`` and ``DEBUG=false``, which
also turns the HTTPS settings on (Secure cookies, HSTS: deploy/README.md).
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def database_from_url(url: str) -> dict:
    """``postgres://user:pass@host:port/name?opt=v`` or ``sqlite:///path`` to a DATABASES entry."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:///relative/path or sqlite:////absolute/path, as dj-database-url reads them
        path = unquote(parts.path[1:]) or ":memory:"
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": path,
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            "TEST": {"NAME": str(Path(path).with_name("test_" + Path(path).name)) if path != ":memory:" else None},
        }
    if parts.scheme in {"postgres", "postgresql", "pgsql"}:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "OPTIONS": dict(parse_qsl(parts.query)),
            "CONN_MAX_AGE": env_int("DB_CONN_MAX_AGE", 60),
            "CONN_HEALTH_CHECKS": True,
        }
    raise ValueError(f"DATABASE_URL must start with postgres:// or sqlite:///, got {parts.scheme!r}")


def _secret_key() -> str:
    key = os.environ.get("SECRET_KEY")
    if key:
        return key
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = [h for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",") if h]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "api.core",
    "api.tenancy",
    "api.datasets",
    "api.jobs",
    "api.modeling",
    "django_celery_beat",
    "api.schedules",
    "api.console",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "api.core.middleware.ContentSecurityPolicyMiddleware",
]

# No inline script or style anywhere, nothing from another origin (api/core/middleware.py).
CONTENT_SECURITY_POLICY = os.environ.get("CONTENT_SECURITY_POLICY") or (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
CONTENT_SECURITY_POLICY_PATHS = {
    # Swagger UI (served from our static files) styles its widgets inline from its own script.
    "/api/docs/": CONTENT_SECURITY_POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'"),
}

ROOT_URLCONF = "api.urls"
WSGI_APPLICATION = "api.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {"default": database_from_url(os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")


def redis_cache(url: str) -> dict:
    """The cache on Redis at ``url``: while Redis is unreachable every call falls back to process
    memory (api/core/cache.py), so an outage degrades rate limits and lockouts instead of failing
    requests; one attempt costs at most the socket timeouts."""
    return {"BACKEND": "api.core.cache.FallbackRedisCache", "LOCATION": url,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2, "FALLBACK_SECONDS": 5}}


CACHES = {
    "default": redis_cache(REDIS_URL) if REDIS_URL else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

# --- HTTPS (deploy/README.md): on unless DEBUG -------------------------------------------
# The service is reached over https (TLS ends at the reverse proxy in front of gunicorn):
# cookies are sent only over https, browsers are told to use nothing else (HSTS), and the
# proxy's X-Forwarded-Proto says whether a request came over https. The embedded stack
# (`manage.py serve` / `demo`, plain http) turns this off when it listens on a loopback
# address and HTTPS is not set (api/core/embedded.py); set HTTPS=false to serve plain http
# anywhere else (not advisable beyond a trusted network).
HTTPS = env_bool("HTTPS", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", HTTPS)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", HTTPS)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
# Trust X-Forwarded-Proto only where a proxy sets it (and overwrites a client's): the default
# under HTTPS, since production runs behind one.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("SECURE_PROXY_SSL_HEADER", HTTPS) else None
#: What the embedded stack sets when it serves plain http on a loopback address (HTTPS unset);
#: a setting given explicitly in the environment is kept.
PLAIN_HTTP_OVERRIDES = {"HTTPS": False, "SESSION_COOKIE_SECURE": False, "CSRF_COOKIE_SECURE": False,
                        "SECURE_HSTS_SECONDS": 0, "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
                        "SECURE_PROXY_SSL_HEADER": None}

# --- console (Django login; users reach the tenants they are members of) -------------
LOGIN_URL = "/console/login/"
LOGIN_REDIRECT_URL = "/console/"
LOGOUT_REDIRECT_URL = "/console/login/"
# Every password check (console and admin) counts failures (api/core/lockout.py).
AUTHENTICATION_BACKENDS = ["api.console.login.LockoutModelBackend"]

# --- lockout after failed sign-ins (api/core/lockout.py); 0 switches a limit off --------
# Failures are counted per client address and per account (a username, an API key's
# prefix) in a window opened by the first failure; at the limit, attempts are refused
# with 429 until the window ends.
AUTH_FAILURE_WINDOW_SECONDS = env_int("AUTH_FAILURE_WINDOW_SECONDS", 900)
LOGIN_MAX_FAILURES_PER_ADDRESS = env_int("LOGIN_MAX_FAILURES_PER_ADDRESS", 30)
LOGIN_MAX_FAILURES_PER_ACCOUNT = env_int("LOGIN_MAX_FAILURES_PER_ACCOUNT", 10)
API_KEY_MAX_FAILURES_PER_ADDRESS = env_int("API_KEY_MAX_FAILURES_PER_ADDRESS", 50)
API_KEY_MAX_FAILURES_PER_KEY = env_int("API_KEY_MAX_FAILURES_PER_KEY", 20)
# Reverse proxies in front of the web process that append the client's address to
# X-Forwarded-For (0: use the connection's address, ignore the header, which anyone can write).
TRUSTED_PROXIES = env_int("TRUSTED_PROXIES", 0)

# --- artifact store and ingest limits -------------------------------------------------
# Local disk (one host) unless ARTIFACT_URL names an S3-compatible bucket (s3://bucket/prefix):
# then hosts share only the bucket; endpoint (MinIO, Ceph) and region here, credentials from the
# standard AWS environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or an instance/pod role.
ARTIFACT_ROOT = Path(os.environ.get("ARTIFACT_ROOT", VAR_DIR / "artifacts"))
ARTIFACT_URL = os.environ.get("ARTIFACT_URL", "")
S3_ENDPOINT_URL = os.environ.get("S3_ENDPOINT_URL", "")
S3_REGION = os.environ.get("S3_REGION", "")
# Each host's private cache of objects that libraries need as files (FAISS, fastText), bounded
# in bytes (least recently used evicted); uploads are staged in its scratch/ folder.
ARTIFACT_CACHE_DIR = Path(os.environ.get("ARTIFACT_CACHE_DIR", VAR_DIR / "artifact-cache"))
ARTIFACT_CACHE_BYTES = env_int("ARTIFACT_CACHE_BYTES", 20 * 1024**3)

# --- workers --------------------------------------------------------------------------------
# true where GPU workers consume the gpu queue: embedding, OT and tiny-LM pilot units go there (each
# takes its device from the worker it runs on); false (a CPU-only deployment) puts every unit on
# cpu. Every process of a deployment must agree (the web process plans, workers move stages on).
GPU_WORKERS = env_bool("GPU_WORKERS", False)
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 2 * 1024**3)  # per file, compressed and inflated
# A gzip upload inflates to at most this many times its size (at least 1 MiB): text compresses
# 3-10x, a gzip bomb ~1000x. Past it, the upload is refused (file_too_large) before more is read.
UPLOAD_MAX_COMPRESSION_RATIO = env_int("UPLOAD_MAX_COMPRESSION_RATIO", 100)
# One line of an upload (a CSV record over several lines likewise), its line ending included.
UPLOAD_MAX_LINE_BYTES = env_int("UPLOAD_MAX_LINE_BYTES", 8 * 1024**2)
# Nesting of a JSON request body and of one uploaded JSON line (json recurses once per level).
JSON_MAX_DEPTH = env_int("JSON_MAX_DEPTH", 64)
SHARD_MAX_DOCUMENTS = env_int("SHARD_MAX_DOCUMENTS", 10_000)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024**2  # larger uploads stream to a temp file
FILE_UPLOAD_TEMP_DIR = os.environ.get("FILE_UPLOAD_TEMP_DIR") or None
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024**2  # a request body (files excepted); past it a 413

# Defaults for new tenants; staff change them per tenant.
TENANT_DEFAULT_MAX_STORED_BYTES = env_int("TENANT_DEFAULT_MAX_STORED_BYTES", 50 * 1024**3)
TENANT_DEFAULT_MAX_DOCUMENTS = env_int("TENANT_DEFAULT_MAX_DOCUMENTS", 50_000_000)
TENANT_DEFAULT_MAX_CONCURRENT_JOBS = env_int("TENANT_DEFAULT_MAX_CONCURRENT_JOBS", 4)
TENANT_DEFAULT_MAX_PILOT_TOKENS = env_int("TENANT_DEFAULT_MAX_PILOT_TOKENS", 200_000_000)

# --- REST API --------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["api.tenancy.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["api.tenancy.authentication.IsTenantMember"],
    "DEFAULT_THROTTLE_CLASSES": ["api.tenancy.authentication.ApiKeyRateThrottle"],
    # Bodies are JSON (a parser that bounds the nesting depth, JSON_MAX_DEPTH); uploads are
    # multipart (their views say so). A form cannot carry the nested objects the bodies hold,
    # so any other content type is a 415, as the schema documents.
    "DEFAULT_PARSER_CLASSES": ["api.core.parsers.JSONParser"],
    "DEFAULT_THROTTLE_RATES": {"api_key": os.environ.get("API_RATE_LIMIT", "1200/min")},
    "NUM_PROXIES": TRUSTED_PROXIES,
    "DEFAULT_PAGINATION_CLASS": "api.core.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "api.core.schema.AutoSchema",
    "EXCEPTION_HANDLER": "api.core.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "URL_FORMAT_OVERRIDE": None,  # ?format= names a file format (mixture manifests), not a renderer
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Curation service API",
    "DESCRIPTION": "Upload corpora and benchmarks, run curation jobs, read mixtures and predictions.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "SWAGGER_UI_DIST": "SIDECAR",  # served by us, no CDN
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"DatasetKindEnum": "api.datasets.models.Dataset.Kind"},
    # Error responses on every operation, from one Error schema (api/core/schema.py).
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "api.core.schema.document_errors"],
}

# --- Celery ----------------------------------------------------------------------------
def celery_broker_url(redis_url: str) -> str:
    """Kombu spells a unix-socket Redis ``redis+socket:///path``; redis-py spells it ``unix:///path``."""
    if redis_url.startswith("unix://"):
        return "redis+socket://" + redis_url.removeprefix("unix://")
    return redis_url or "memory://"


def visibility_timeout(*, unit_time_limit: int, retry_delay_max: int) -> int:
    """Seconds after which a delivered, unacknowledged message goes back to its queue.

    A unit's message stays unacknowledged while it runs (late acks), at most
    ``unit_time_limit`` (then its process is killed), and while a retry waits for its
    countdown in the worker, at most ``retry_delay_max``. Past both, plus a tenth of the
    limit (10 s at least) for queueing and clock skew between hosts, its worker is dead.
    """
    return unit_time_limit + retry_delay_max + max(10, unit_time_limit // 10)


CELERY_BROKER_URL = celery_broker_url(REDIS_URL)
CELERY_TASK_ALWAYS_EAGER = False
# Time limits of one unit (a shard task): past the soft one it is failed with a readable
# reason, past the hard one its process is killed. Set them to the longest unit you run.
JOB_SHARD_SOFT_TIME_LIMIT = env_int("JOB_SHARD_SOFT_TIME_LIMIT", 3000)
JOB_SHARD_TIME_LIMIT = env_int("JOB_SHARD_TIME_LIMIT", 3300)
# A unit that meets a transient error (the database or the broker unreachable) is retried,
# up to JOB_UNIT_RETRIES times, after 1, 2, 4, ... s, at most JOB_UNIT_RETRY_DELAY_MAX s apart.
JOB_UNIT_RETRIES = env_int("JOB_UNIT_RETRIES", 20)
JOB_UNIT_RETRY_DELAY_MAX = env_int("JOB_UNIT_RETRY_DELAY_MAX", 60)
# When a worker dies holding a unit, the unit is delivered again after this many seconds:
# derived from the hard time limit (visibility_timeout above); set it only to override that.
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", visibility_timeout(
    unit_time_limit=JOB_SHARD_TIME_LIMIT, retry_delay_max=JOB_UNIT_RETRY_DELAY_MAX))
CELERY_UNACKED_RESTORE_INTERVAL = env_int("CELERY_UNACKED_RESTORE_INTERVAL", 10)
# Schedules live in the database (django-celery-beat); `celery -A workers beat` fires them.
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
SCHEDULE_MIN_INTERVAL_SECONDS = env_int("SCHEDULE_MIN_INTERVAL_SECONDS", 60)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.server": {"level": "WARNING"}, "faiss.loader": {"level": "WARNING"}},
}

# --- embedders -------------------------------------------------------------------------
# Extra local sentence-transformers models tenants may name: "name=/path,other=/path".
EXTRA_EMBEDDERS = dict(
    item.split("=", 1) for item in os.environ.get("EXTRA_EMBEDDERS", "").split(",") if "=" in item
)
