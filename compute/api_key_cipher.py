"""Backend API keys at rest, encrypted with tenants.secrets_cipher.

ENCRYPTION_KEYS holds one or more Fernet keys, comma-separated: the first
encrypts, all decrypt, so a key can be rotated without losing old secrets.
"""

from tenants.secrets_cipher import SecretDecryptError, secret_decrypt, secret_encrypt


def api_key_encrypt(plain: str) -> str:
    return secret_encrypt(plain)


def api_key_decrypt(token: str) -> str:
    try:
        return secret_decrypt(token)
    except SecretDecryptError as exc:
        raise ValueError("the stored API key cannot be decrypted with ENCRYPTION_KEYS") from exc
