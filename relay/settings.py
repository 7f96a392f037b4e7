"""Process settings from ``RELAY_*`` environment variables and ``.env`` (loaded once, passed down).

This is the only module that reads the environment; everything else receives :class:`Settings`
or the mapping returned by :func:`environment`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_CONFIG = Path("config/relay.yaml")


class Settings(BaseSettings):
    """Where the relay finds its configuration and database, and how it logs."""

    model_config = SettingsConfigDict(env_prefix="RELAY_", env_file=".env", extra="ignore")

    config: Path = Field(DEFAULT_CONFIG, description="relay.yaml path (RELAY_CONFIG)")
    database_url: str = Field("sqlite:///relay.db", description="SQLAlchemy URL (RELAY_DATABASE_URL)")
    log_level: str = Field("INFO", description="RELAY_LOG_LEVEL")
    log_format: str = Field("text", description="text | json (RELAY_LOG_FORMAT)")
    host: str = Field("127.0.0.1", description="relay serve bind address (RELAY_HOST)")
    port: int = Field(8000, description="relay serve port (RELAY_PORT)")
    admin_token: SecretStr | None = Field(None, description="token for the admin API (RELAY_ADMIN_TOKEN)")

    @property
    def config_is_default(self) -> bool:
        """True when RELAY_CONFIG was not set, so a missing file may start the demo instead."""
        return self.config == DEFAULT_CONFIG


def environment(env_file: Path = Path(".env")) -> Mapping[str, str]:
    """Variables for ``${VAR}`` placeholders: the process environment over ``.env``."""
    merged = {k: v for k, v in dotenv_values(env_file).items() if v is not None} if env_file.is_file() else {}
    merged.update(os.environ)
    return merged
