"""The shop's configuration: the ``WAFLOW_*`` variables plus a TOML file (``WAFLOW_SHOP_CONFIG``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from waflow.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]


class ShopInfo(BaseModel):
    """``[shop]``: who the shop is."""

    name: str = "Lenas Radladen"
    locale: str = "de"
    whatsapp_number: str = Field(description="The shop's WhatsApp number, for wa.me links.")


class TemplateRef(BaseModel):
    """``[whatsapp.followup_template]``: the approved follow-up template."""

    name: str = "order_followup"
    language: str = "de"


class WhatsAppSection(BaseModel):
    """``[whatsapp]``."""

    followup_template: TemplateRef = TemplateRef()


class ShopConfig(BaseModel):
    """The whole TOML file."""

    shop: ShopInfo
    whatsapp: WhatsAppSection = WhatsAppSection()
    ads: dict[str, str] = Field(default_factory=dict, description="Ad id -> product retailer id.")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ShopConfig:
        """Read and validate the TOML file at ``path``; ConfigError names what is wrong."""
        file = Path(path)
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"WAFLOW_SHOP_CONFIG: no such file {file}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"WAFLOW_SHOP_CONFIG: {file} is not valid TOML: {exc}") from None
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigError(f"WAFLOW_SHOP_CONFIG: {file}: {problems}") from None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ShopConfig:
        """The file named by ``WAFLOW_SHOP_CONFIG`` (default: the shop.toml next to this module)."""
        source = os.environ if env is None else env
        path = source.get("WAFLOW_SHOP_CONFIG") or Path(__file__).with_name("shop.toml")
        return cls.load(path)
