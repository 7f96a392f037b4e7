"""Encryption at rest of the secrets the relay keeps in its database (OAuth tokens of application
sources): Fernet (AES-128-CBC + HMAC-SHA256, from the ``cryptography`` package) with the key of
``token_key`` in ``relay.yaml`` (``${RELAY_TOKEN_KEY}``).  A database file or dump without the key
holds no token in clear."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken

from relay.errors import ConfigError


def new_key() -> str:
    """A fresh key for ``RELAY_TOKEN_KEY``."""
    return Fernet.generate_key().decode()


class Vault:
    """Seals and opens short secrets with one key."""

    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode())

    def seal(self, secret: str) -> str:
        """The secret encrypted (URL-safe text)."""
        return self._fernet.encrypt(secret.encode("utf-8")).decode()

    def open(self, sealed: str) -> str:
        """The secret again; ConfigError when it was sealed with another key."""
        try:
            return self._fernet.decrypt(sealed.encode()).decode("utf-8")
        except InvalidToken:
            raise ConfigError("a stored token cannot be decrypted: token_key (RELAY_TOKEN_KEY) is not the key "
                              "it was stored with; restore the key or install the application again") from None
