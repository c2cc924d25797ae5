"""Settings shared by every mode, read from the environment.

Each mode module (development, production, test) imports this one and then
tightens or loosens what it must. Every variable is listed in README.md.
"""

from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab
from django.utils.translation import gettext_lazy as _

# platform/config/settings/base.py -> repository root
BASE_DIR = Path(__file__).resolve().parents[3]
PLATFORM_DIR = BASE_DIR / "platform"

env = environ.Env()

# Variables production refuses to start without (production.py checks them).
PRODUCTION_REQUIRED = (
    "SECRET_KEY",
    "ENCRYPTION_KEYS",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "ALLOWED_HOSTS",
    # /metrics counts every organization's backend calls: never open in production.
    "METRICS_TOKEN",
)

VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "drf_standardized_errors",
    "axes",
    "csp",
    # Tokenworks, platform-wide (platform/)
    "tenants",
    "sitehealth",
    "eventhooks",
    "valuechain",
    "kpireports",
    # Tokenworks, product apps (repository root)
    "annotation",
    "compute",
]

MIDDLEWARE = [
    # First: it times the whole response and names it by route.
    "config.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "config.request_guards.RequestGuardMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tenants.request_context.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: turns a locked-out login into its page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def database_from_url(url: str) -> dict:
    """A DATABASES entry for url, tuned for how Tokenworks uses each engine."""
    config = environ.Env.db_url_config(url)
    engine = config["ENGINE"]
    if engine == "django.db.backends.sqlite3":
        # web, worker and beat share one file in `make run`: WAL lets readers
        # go on while one writes, and IMMEDIATE transactions take the write
        # lock up front instead of failing with "database is locked" mid-way.
        config["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    elif engine == "django.db.backends.postgresql":
        config["ENGINE"] = "django.db.backends.postgresql"
        config["CONN_MAX_AGE"] = 0  # the pool owns connection lifetime
        config.setdefault("OPTIONS", {})
        config["OPTIONS"]["pool"] = {
            "min_size": env.int("DATABASE_POOL_MIN_SIZE", default=1),
            "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=10),
            "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0),
        }
    return config


DATABASES = {
    "default": database_from_url(
        env.str("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'tokenworks.sqlite3'}")
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://tokenworks")}
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    # The same backend, keeping its Redis client objects (see tenants/cache.py).
    CACHES["default"]["BACKEND"] = "tenants.cache.RedisCache"

AUTH_USER_MODEL = "tenants.User"
AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out username and address before the password is checked.
    "axes.backends.AxesStandaloneBackend",
    # Django's, with the session's user read by one hand-written statement.
    "tenants.backends.ModelBackend",
    # Sessions opened before tenants.backends existed name this one; it can go
    # once they have expired (SESSION_COOKIE_AGE after the release).
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="Asia/Shanghai")
USE_I18N = True
USE_TZ = True
# Chinese figures keep a comma every three digits (config/formats/zh_Hans).
FORMAT_MODULE_PATH = ["config.formats"]

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns about a missing root
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
MEDIA_ROOT = VAR_DIR / "media"

# Sessions read from the cache first: every workspace request is authenticated
# by session, and the database read it saves is a tenth of a request's cost.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # the annotator workspace reads it for fetch() writes
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# --- login throttling (django-axes) ----------------------------------------------
# A username is locked from one address after LOGIN_FAILURE_LIMIT wrong passwords
# in a row, for LOGIN_COOLOFF_MINUTES. Locking the pair, not the username alone,
# means an attacker cannot lock everyone out from one address; not the address
# alone, so colleagues behind one office NAT are not locked out together.
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Failed attempts are what throttling needs; a row per successful login is not.
AXES_DISABLE_ACCESS_LOG = True
AXES_LOCKOUT_CALLABLE = "tenants.views.login_locked_out"
AXES_CLIENT_IP_CALLABLE = "config.client_address.client_address"
# Proxies in front that append to X-Forwarded-For (0: REMOTE_ADDR is the client).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

# --- Content-Security-Policy (django-csp 4) ---------------------------------------
# Pages load scripts and styles only from /static/: no inline script, no inline
# style, no style attributes. The API docs' views widen it for themselves only
# (config.api_docs).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# --- request limits -------------------------------------------------------
# Larger bodies are refused with 413 before they are read (config.request_guards).
# A JSON or form body: an answer, a project, a query.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_BYTES", default=2_621_440)
# A multipart upload: an import file.
UPLOAD_MAX_BYTES = env.int("UPLOAD_MAX_BYTES", default=512 * 1024 * 1024)
# JSON deeper than this is refused; real answers are 3 levels deep.
API_JSON_MAX_DEPTH = env.int("API_JSON_MAX_DEPTH", default=64)

# --- REST API -------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Bearer tokens first, so an unauthenticated request gets 401 with a
        # WWW-Authenticate header rather than 403.
        "tenants.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON only: a form cannot say null or a nested object, so offering forms
    # made the schema promise bodies the API could not read. Uploads declare
    # their multipart parser on the one action that takes a file.
    "DEFAULT_PARSER_CLASSES": ["tenants.parsers.SafeJSONParser"],
    "DEFAULT_PAGINATION_CLASS": "tenants.pagination.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "tenants.filtering.ApiFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        # One pipelined cache call per request (DRF's makes two).
        "tenants.throttling.WindowedUserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("API_THROTTLE_ANON", default="60/minute"),
        "user": env.str("API_THROTTLE_USER", default="1200/minute"),
    },
    "DEFAULT_SCHEMA_CLASS": "config.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "drf_standardized_errors.handler.exception_handler",
    "DEFAULT_VERSIONING_CLASS": None,
    # ?format= names an export format here, not a DRF renderer.
    "URL_FORMAT_OVERRIDE": None,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
DRF_STANDARDIZED_ERRORS = {
    "ENABLE_IN_DEBUG_FOR_UNHANDLED_EXCEPTIONS": False,
    "EXCEPTION_HANDLER_CLASS": "config.api_errors.TokenworksExceptionHandler",
    # The schema documents 413 too (the request guard's body limits).
    "ALLOWED_ERROR_STATUS_CODES": [
        "400",
        "401",
        "403",
        "404",
        "405",
        "406",
        "413",
        "415",
        "429",
        "500",
    ],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Tokenworks API",
    "DESCRIPTION": (
        "Annotation and fine-tuning data jobs for enterprise clients, regional KPI "
        "reports for officials. Authenticate with `Authorization: Bearer <token>` "
        "using an API token created for your organization."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Separate request and response components: what a client sends (no
    # read-only fields, blank strings refused) differs from what it gets back.
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # Offline docs: Swagger UI and ReDoc are served from drf-spectacular-sidecar's
    # static files, never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "ErrorTypeEnum": ["validation_error", "client_error", "server_error"],
        # A membership's role and an API token's roles are one choice set: one name.
        "RoleEnum": "tenants.models.Membership.Role",
        "ProjectStatusEnum": "annotation.models.Project.Status",
        "WebhookDeliveryStatusEnum": "eventhooks.models.WebhookDelivery.Status",
        "ProjectKindEnum": "annotation.models.Project.Kind",
        "JobStatusEnum": "annotation.models.ImportJob.Status",
        "ItemStatusEnum": "annotation.models.Item.Status",
        "AssignmentStatusEnum": "annotation.models.Assignment.Status",
        "ExportFormatEnum": "annotation.models.ExportFormat",
        "OrganizationKindEnum": "tenants.models.Organization.Kind",
        "WebhookEventEnum": "eventhooks.models.Event",
        "ResultMethodEnum": "annotation.models.ItemResult.Method",
        "FineTuneMethodEnum": "compute.models.FineTuneRun.Method",
        "FineTuneStatusEnum": "compute.models.FineTuneRun.Status",
        "BackendKindEnum": "compute.models.Backend.Kind",
        "RoutingPolicyEnum": "compute.models.RoutingPolicy",
        "LedgerEntryKindEnum": "valuechain.models.LedgerEntry.Kind",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_standardized_errors.openapi_hooks.postprocess_schema_enums",
    ],
}

# Fernet keys for secrets at rest (backend API keys); the first one encrypts.
ENCRYPTION_KEYS = env.list("ENCRYPTION_KEYS", default=[])

# --- Compute: calls to inference backends ---------------------------------------
# Where `make run`'s built-in model process listens (the Procfile's `model`).
BUILTIN_MODEL_URL = env.str("BUILTIN_MODEL_URL", default="http://127.0.0.1:8100/v1")
COMPUTE_REQUEST_TIMEOUT = env.float("COMPUTE_REQUEST_TIMEOUT", default=60.0)
COMPUTE_MAX_RETRIES = env.int("COMPUTE_MAX_RETRIES", default=4)
COMPUTE_BACKOFF_BASE = env.float("COMPUTE_BACKOFF_BASE", default=0.5)
# Seconds from a call's first attempt after which no retry starts.
COMPUTE_MAX_CALL_SECONDS = env.float("COMPUTE_MAX_CALL_SECONDS", default=120.0)
# Calls are metered as they return, in batches of up to 50 or this many seconds.
COMPUTE_METER_FLUSH_SECONDS = env.float("COMPUTE_METER_FLUSH_SECONDS", default=1.0)

# Bearer token Prometheus sends to /metrics; empty leaves it open, which only
# development and tests allow (production requires it).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Where every process counts its metrics (one folder per process kind, files
# per process), so a scrape adds up all gunicorn workers and Celery pool
# processes; empty keeps them in memory (one process: runserver, tests).
# config/__init__.py and config/gunicorn_conf.py read it before prometheus_client loads.
METRICS_DIR = env.str("METRICS_DIR", default="")

# --- Regional KPI reports -------------------------------------------------------
# The low-end trap: a region's value-chain index (share of tiered revenue at
# T3+) under this threshold for this many consecutive months raises a warning.
KPI_TRAP_THRESHOLD = env.str("KPI_TRAP_THRESHOLD", default="0.30")
KPI_TRAP_MONTHS = env.int("KPI_TRAP_MONTHS", default=6)

# --- Webhooks -----------------------------------------------------------------
# Client-supplied URLs: https only and public addresses only (no SSRF into the
# cluster), except where a developer runs a receiver on localhost.
WEBHOOK_ALLOW_HTTP = env.bool("WEBHOOK_ALLOW_HTTP", default=False)
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env.bool("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", default=False)

# --- Celery -----------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_RESULT_BACKEND = env.str(
    "CELERY_RESULT_BACKEND", default=f"file://{VAR_DIR / 'celery-results'}"
)
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's filesystem transport: a broker that needs no server, for `make run`.
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        # Broadcast (pidbox) exchanges; kombu's default is ./control.
        "control_folder": str(_broker_dir / "control"),
    }
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # A task whose worker died is redelivered after this many seconds (acks are
    # late). Recovery does not wait for it: jobs and pre-labeling chunks are claimed
    # under leases in the database and beat re-dispatches those whose worker died
    # (JOB_* below); a message re-delivered while its job's lease is live does
    # nothing, so a long timeout is safe and a short one runs nothing twice.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
    }
if CELERY_RESULT_BACKEND.startswith("file://"):
    Path(CELERY_RESULT_BACKEND.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
# The queue tasks are sent to, by the web and by workers (a task enqueuing another).
# Tests give each real worker a queue of its own.
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
# A task is acknowledged only after it finishes and re-queued if its worker
# dies, so every task must be idempotent (they are: they take ids and look
# before they write).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 30 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 25 * 60
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Background jobs (imports, exports, fine-tuning submit and evaluation) run under
# a lease in the database, renewed every JOB_HEARTBEAT_SECONDS by the running
# worker. Beat re-dispatches a job whose lease lapsed for JOB_LEASE_SECONDS (its
# worker died), or that was queued JOB_PENDING_SECONDS ago and never started (its
# message was lost), whatever the broker's visibility timeout; after
# JOB_MAX_ATTEMPTS runs that stopped, it fails the job saying so.
JOB_HEARTBEAT_SECONDS = env.int("JOB_HEARTBEAT_SECONDS", default=10)
JOB_LEASE_SECONDS = env.int("JOB_LEASE_SECONDS", default=60)
JOB_PENDING_SECONDS = env.int("JOB_PENDING_SECONDS", default=120)
JOB_MAX_ATTEMPTS = env.int("JOB_MAX_ATTEMPTS", default=3)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "sitehealth-heartbeat": {
        "task": "sitehealth.tasks.heartbeat_record",
        "schedule": 30.0,
        "kwargs": {"source": "beat"},
    },
    "annotation-expire-stale-leases": {
        "task": "annotation.assignment_expire_stale",
        "schedule": 30.0,
    },
    # Re-dispatches (or fails) jobs whose worker died or whose message was lost.
    "annotation-sweep-jobs": {
        "task": "annotation.jobs_sweep",
        "schedule": 15.0,
    },
    "compute-backend-health": {
        "task": "compute.backends_health_check",
        "schedule": 30.0,
    },
    "compute-finetune-poll": {
        "task": "compute.finetune_runs_poll",
        "schedule": 30.0,
    },
    "compute-finetune-sweep": {
        "task": "compute.finetune_runs_sweep",
        "schedule": 15.0,
    },
    # Pre-labeling chunks whose worker died, and runs whose dispatch was lost.
    "compute-prelabel-sweep": {
        "task": "compute.prelabel_runs_sweep",
        "schedule": 15.0,
    },
    # Retrains a project's model as decided labels accumulate (Project.retrain_every).
    "compute-model-retrains": {
        "task": "compute.model_retrains_run",
        "schedule": 60.0,
    },
    # The ledger's rollups follow posting within seconds (reports show how fresh).
    "valuechain-rollups-catch-up": {
        "task": "valuechain.rollups_catch_up",
        "schedule": env.float("ROLLUPS_CATCH_UP_SECONDS", default=5.0),
    },
    # Next months' ledger partitions exist before their first entry (PostgreSQL).
    "valuechain-ledger-partitions": {
        "task": "valuechain.ledger_partitions_ensure",
        "schedule": 3600.0,
    },
    "valuechain-tiers-review": {
        "task": "valuechain.tiers_review",
        "schedule": crontab(hour=2, minute=30),  # daily, after the day's work
    },
    # Re-sends webhook deliveries whose queued message was lost.
    "eventhooks-sweep-deliveries": {
        "task": "eventhooks.webhook_deliveries_sweep",
        "schedule": 60.0,
    },
    "annotation-infer-results": {
        "task": "annotation.results_infer_active",
        "schedule": 15 * 60.0,
    },
    # The quality engine: worker estimates, quarantine and adaptive decisions
    # follow the answers within a minute.
    "annotation-quality-refresh": {
        "task": "annotation.quality_refresh_active",
        "schedule": 60.0,
    },
}

# --- Logging ----------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="text")  # production defaults to json


def logging_config(log_format: str, level: str) -> dict:
    formatters = {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(process)d",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    }
    if log_format not in formatters:
        raise environ.ImproperlyConfigured(
            f"LOG_FORMAT must be one of {sorted(formatters)}, not {log_format!r}"
        )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": formatters,
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": log_format},
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django": {"handlers": ["console"], "level": level, "propagate": False},
            "celery": {"handlers": ["console"], "level": level, "propagate": False},
        },
    }


LOGGING = logging_config(LOG_FORMAT, LOG_LEVEL)
# Celery would otherwise replace the root logger's handlers with its own
# plain-text ones, and worker logs would stop being JSON in production.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
