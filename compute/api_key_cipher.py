"""Backend API keys at rest: Fernet (AES-128-CBC + HMAC) with rotatable keys.

ENCRYPTION_KEYS holds one or more Fernet keys, comma-separated: the first
encrypts, all decrypt, so a key can be rotated without losing old secrets.
"""

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def _cipher() -> MultiFernet:
    return _fernet(tuple(settings.ENCRYPTION_KEYS))


def api_key_encrypt(plain: str) -> str:
    return _cipher().encrypt(plain.encode()).decode() if plain else ""


def api_key_decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return _cipher().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("the stored API key cannot be decrypted with ENCRYPTION_KEYS") from exc
