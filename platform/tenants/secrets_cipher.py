"""Secrets at rest: Fernet (AES-128-CBC + HMAC) with rotatable keys.

ENCRYPTION_KEYS holds one or more Fernet keys, comma-separated: the first
encrypts, all decrypt, so a key can be rotated without losing old secrets.
Shared by every app that keeps a secret it must use again in clear (backend
API keys, webhook signing secrets), so it lives at the bottom of the app order.
"""

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class SecretDecryptError(ValueError):
    """The stored token was encrypted with none of ENCRYPTION_KEYS, or was altered."""


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def _cipher() -> MultiFernet:
    return _fernet(tuple(settings.ENCRYPTION_KEYS))


def secret_encrypt(plain: str) -> str:
    """A Fernet token of plain under the first key ("" stays "")."""
    return _cipher().encrypt(plain.encode()).decode() if plain else ""


def secret_decrypt(token: str) -> str:
    """plain from a token made under any key in ENCRYPTION_KEYS ("" stays "")."""
    if not token:
        return ""
    try:
        return _cipher().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretDecryptError(
            "the stored secret cannot be decrypted with ENCRYPTION_KEYS"
        ) from exc


def secret_reencrypt(token: str) -> str:
    """The same secret under the first key, after a new key was put first."""
    return _cipher().rotate(token.encode()).decode() if token else ""
