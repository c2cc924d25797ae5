"""Production: every secret and service address comes from the environment.

A missing required variable stops start-up with django-environ's
"Set the X environment variable"; an insecure value stops it naming the
variable. `python manage.py check --deploy --fail-level WARNING` passes.
"""

import environ

from .base import *
from .base import LOG_LEVEL, PRODUCTION_REQUIRED, database_from_url, env, logging_config


def _require(name: str) -> str:
    value = env.str(name, default="").strip()
    if not value:
        raise environ.ImproperlyConfigured(
            f"Set the {name} environment variable (required in production)."
        )
    return value


for _name in PRODUCTION_REQUIRED:
    _require(_name)

DEBUG = env.bool("DEBUG", default=False)
if DEBUG:
    raise environ.ImproperlyConfigured("DEBUG must be false in production (unset DEBUG).")

SECRET_KEY = _require("SECRET_KEY")
if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or SECRET_KEY.startswith("django-insecure"):
    raise environ.ImproperlyConfigured(
        "SECRET_KEY is insecure: use at least 50 random characters, e.g. "
        '`python -c "import secrets; print(secrets.token_urlsafe(50))"`.'
    )

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
ENCRYPTION_KEYS = env.list("ENCRYPTION_KEYS")
try:
    from cryptography.fernet import Fernet

    for _key in ENCRYPTION_KEYS:
        Fernet(_key.encode())
except ValueError as _error:
    raise environ.ImproperlyConfigured(
        "ENCRYPTION_KEYS must be comma-separated Fernet keys: 32 random bytes, URL-safe "
        "base64 (cryptography.fernet.Fernet.generate_key())."
    ) from _error
METRICS_TOKEN = _require("METRICS_TOKEN")
if len(METRICS_TOKEN) < 32:
    raise environ.ImproperlyConfigured(
        "METRICS_TOKEN is too short to be a secret: use at least 32 random characters, e.g. "
        '`python -c "import secrets; print(secrets.token_urlsafe(32))"`.'
    )
DATABASES = {"default": database_from_url(_require("DATABASE_URL"))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3" and not env.bool(
    "ALLOW_SQLITE_IN_PRODUCTION", default=False
):
    raise environ.ImproperlyConfigured(
        "DATABASE_URL points at SQLite: production runs on PostgreSQL "
        "(postgres://user:password@host:5432/name)."
    )
CELERY_BROKER_URL = _require("CELERY_BROKER_URL")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=CELERY_BROKER_URL)

# Behind a TLS-terminating proxy that sets X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # probes speak plain HTTP inside the cluster
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True

LOG_FORMAT = env.str("LOG_FORMAT", default="json")
LOGGING = logging_config(LOG_FORMAT, LOG_LEVEL)
