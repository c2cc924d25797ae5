"""`make run` on a laptop: embedded defaults, nothing to install but Python."""

import secrets

from .base import *
from .base import VAR_DIR, env


def _development_secret_key() -> str:
    # Generated once and kept under var/ (git-ignored), so sessions survive a
    # restart without anyone having to invent a key.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


def _development_encryption_key() -> str:
    path = VAR_DIR / "encryption_key"
    if not path.exists():
        from cryptography.fernet import Fernet

        path.write_text(Fernet.generate_key().decode())
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = env.bool("DEBUG", default=True)
ENCRYPTION_KEYS = env.list("ENCRYPTION_KEYS", default=[]) or [_development_encryption_key()]
SECRET_KEY = env.str("SECRET_KEY", default="") or _development_secret_key()
# Static files straight from the apps in development, no collectstatic needed.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

WEBHOOK_ALLOW_HTTP = env.bool("WEBHOOK_ALLOW_HTTP", default=True)
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env.bool("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", default=True)
