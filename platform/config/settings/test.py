"""pytest: real PostgreSQL and Redis when they are reachable, SQLite otherwise.

tests/conftest.py turns the absence of a service into a skip with a reason,
or into a failure when REQUIRE_SERVICES=1.
"""

import socket
from urllib.parse import urlsplit

from .base import *
from .base import database_from_url, env

SECRET_KEY = "test-only-key-not-secret-" + "x" * 40
ENCRYPTION_KEYS = ["dG9rZW53b3Jrcy10ZXN0LWtleS1ub3Qtc2VjcmV0ISE="]  # test-only
DEBUG = False
ALLOWED_HOSTS = ["*"]
REQUIRE_SERVICES = env.bool("REQUIRE_SERVICES", default=False)


def _reachable(url: str, default_port: int) -> str | None:
    """None when something listens at url's host and port, else why not."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return None
    except OSError as exc:
        return f"{host}:{port} not reachable ({exc.strerror or exc})"


TEST_DATABASE_URL = env.str(
    "TEST_DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/tokenworks"
)
TEST_REDIS_URL = env.str("TEST_REDIS_URL", default="redis://127.0.0.1:6379/15")

# Why each real service is missing, or None when it is there.
SERVICES_MISSING = {
    "postgres": _reachable(TEST_DATABASE_URL, 5432),
    "redis": _reachable(TEST_REDIS_URL, 6379),
}

if SERVICES_MISSING["postgres"] is None:
    DATABASES = {"default": database_from_url(TEST_DATABASE_URL)}
    # Django's test runner creates test_<NAME> and drops it afterwards;
    # conftest.py refuses to run against any database not named test_*.
    DATABASES["default"]["TEST"] = {"NAME": "test_" + DATABASES["default"]["NAME"]}
    # Room for the concurrency tests' threads, each holding a connection.
    DATABASES["default"]["OPTIONS"]["pool"]["max_size"] = 24
else:
    DATABASES = {"default": database_from_url("sqlite://:memory:")}

if SERVICES_MISSING["redis"] is None:
    CELERY_BROKER_URL = TEST_REDIS_URL
    CELERY_RESULT_BACKEND = TEST_REDIS_URL

# Tasks run inline in tests unless a test starts a real worker.
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only
WHITENOISE_USE_FINDERS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
LOGGING = {"version": 1, "disable_existing_loggers": False}

# Tests deliver webhooks to a receiver on 127.0.0.1.
WEBHOOK_ALLOW_HTTP = True
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True

# Fault tests must not wait out production backoffs.
COMPUTE_REQUEST_TIMEOUT = 2.0
COMPUTE_MAX_RETRIES = 2
COMPUTE_BACKOFF_BASE = 0.01
COMPUTE_MAX_CALL_SECONDS = 20.0
