"""Settings: every ``WAFLOW_*`` environment variable, validated.

>>> settings = Settings.from_env({"WAFLOW_ACCESS_TOKEN": "EAAG…", "WAFLOW_PHONE_NUMBER_ID": "1065"})
>>> settings.phone_number_id
'1065'

Secrets are :class:`pydantic.SecretStr`, so they never show in a repr, a log line or an error. A
missing or malformed value raises :class:`~waflow.errors.ConfigError` naming the variable.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Mapping
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from waflow.errors import ConfigError

__all__ = ["ENV_PREFIX", "Settings"]

ENV_PREFIX = "WAFLOW_"
logger = logging.getLogger("waflow.config")

# Variables that waflow's own tooling reads outside Settings; not typos.
_KNOWN_ELSEWHERE = frozenset({"WAFLOW_REQUIRE_REDIS"})
_API_VERSION = re.compile(r"v[0-9]+\.[0-9]+")
_GRAPH_ID = re.compile(r"[0-9]+")


class Settings(BaseModel):
    """Every setting waflow reads from the environment (``WAFLOW_<NAME>``, upper case)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    graph_url: str = Field(
        default="https://graph.facebook.com", description="Base URL of the Graph API."
    )
    api_version: str = Field(default="v26.0", description="Graph API version, such as v26.0.")
    access_token: SecretStr | None = Field(
        default=None, description="WhatsApp Cloud API token (system user)."
    )
    page_access_token: SecretStr | None = Field(
        default=None, description="Messenger Page access token."
    )
    app_secret: SecretStr | None = Field(
        default=None, description="App secret, for webhook signatures."
    )
    verify_token: SecretStr | None = Field(
        default=None, description="Token of the webhook GET handshake."
    )
    phone_number_id: str | None = Field(default=None, description="WhatsApp business number id.")
    waba_id: str | None = Field(default=None, description="WhatsApp Business Account id.")
    page_id: str | None = Field(default=None, description="Facebook Page id.")
    catalog_id: str | None = Field(default=None, description="Commerce catalog id.")
    dataset_id: str | None = Field(default=None, description="Conversions API dataset id.")
    store: str = Field(
        default="sqlite:///waflow.db",
        description="Store URL: sqlite:///path, redis://host:port/db or memory://.",
    )
    shop_config: str | None = Field(default=None, description="Path of a shop's TOML file.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO", description="Log level of the waflow loggers."
    )
    throughput: Literal[20, 80, 1000] = Field(
        default=80, description="Messages per second allowed for the business number."
    )

    @field_validator("graph_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        try:
            host = urlsplit(value).hostname
        except ValueError:
            host = None
        if not host or any(ch.isspace() for ch in value):
            raise ValueError("must be a URL with a host, such as https://graph.facebook.com")
        try:
            urlsplit(value).port  # noqa: B018  # raises for a port that is not a number in range
        except ValueError:
            raise ValueError(
                "has a port that is not a number from 0 to 65535 (e.g. http://127.0.0.1:8080)"
            ) from None
        return value.rstrip("/")

    @field_validator("api_version")
    @classmethod
    def _check_version(cls, value: str) -> str:
        if not _API_VERSION.fullmatch(value):
            raise ValueError("must look like v26.0")
        return value

    @field_validator("phone_number_id", "waba_id", "page_id", "catalog_id", "dataset_id")
    @classmethod
    def _check_id(cls, value: str | None) -> str | None:
        if value is not None and not _GRAPH_ID.fullmatch(value):
            raise ValueError("must be a numeric Graph id")
        return value

    @field_validator("store")
    @classmethod
    def _check_store(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "redis://", "rediss://", "memory://")):
            raise ValueError("must start with sqlite://, redis://, rediss:// or memory://")
        if value in ("sqlite://", "sqlite:///"):
            raise ValueError("names no file: use sqlite:///waflow.db (or sqlite://:memory:)")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("throughput", mode="before")
    @classmethod
    def _number(cls, value: object) -> object:
        # Environment values are text; a Literal of ints accepts no text, so "80" must become 80.
        if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
            return int(value)
        return value

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``env`` (default ``os.environ``).

        Empty variables count as unset. Raises :class:`ConfigError` naming the variable at fault.
        An unknown ``WAFLOW_*`` variable is logged as a warning with the closest known name.
        """
        source = os.environ if env is None else env
        names = {f"{ENV_PREFIX}{name.upper()}": name for name in cls.model_fields}
        values: dict[str, str] = {}
        for key, value in source.items():
            if not key.startswith(ENV_PREFIX) or value == "":
                continue
            if key in names:
                values[names[key]] = value.strip()
            elif key not in _KNOWN_ELSEWHERE:
                close = difflib.get_close_matches(key, list(names), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                logger.warning("%s is not a waflow setting%s; ignored", key, hint)
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                field = str(error["loc"][0]) if error["loc"] else "?"
                problems.append(f"{ENV_PREFIX}{field.upper()}: {error['msg']}")
            raise ConfigError("invalid settings: " + "; ".join(problems)) from None

    def require(self, *names: str) -> None:
        """Raise :class:`ConfigError` unless every named setting is set."""
        missing = [f"{ENV_PREFIX}{name.upper()}" for name in names if getattr(self, name) is None]
        if missing:
            raise ConfigError(
                f"missing setting{'s' if len(missing) > 1 else ''}: {', '.join(missing)}"
            )
