"""tenants.secrets_cipher: secrets at rest under rotatable Fernet keys."""

import pytest
from cryptography.fernet import Fernet

from tenants.secrets_cipher import (
    SecretDecryptError,
    secret_decrypt,
    secret_encrypt,
    secret_reencrypt,
)


def test_a_secret_round_trips_and_is_not_stored_in_clear():
    token = secret_encrypt("whsec_abc")
    assert "whsec_abc" not in token
    assert secret_decrypt(token) == "whsec_abc"
    assert secret_encrypt("") == "" and secret_decrypt("") == ""


def test_rotation_decrypts_with_any_key_and_encrypts_with_the_first(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = [old]
    under_old = secret_encrypt("s3cret")
    settings.ENCRYPTION_KEYS = [new, old]
    assert secret_decrypt(under_old) == "s3cret"
    under_new = secret_encrypt("s3cret")
    rotated = secret_reencrypt(under_old)
    settings.ENCRYPTION_KEYS = [new]
    assert secret_decrypt(under_new) == secret_decrypt(rotated) == "s3cret"
    with pytest.raises(SecretDecryptError):
        secret_decrypt(under_old)


def test_backend_api_keys_still_decrypt_through_compute(settings):
    from compute.api_key_cipher import api_key_decrypt, api_key_encrypt

    token = api_key_encrypt("sk-1")
    assert secret_decrypt(token) == api_key_decrypt(token) == "sk-1"
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(ValueError, match="API key"):
        api_key_decrypt(token)
