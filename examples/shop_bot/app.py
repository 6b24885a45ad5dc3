"""The shop bot as an ASGI app: ``python -m uvicorn --app-dir examples shop_bot.app:app``.

Configured only by the ``WAFLOW_*`` variables (credentials, ids, ``WAFLOW_STORE``,
``WAFLOW_GRAPH_URL``) and the TOML file named by ``WAFLOW_SHOP_CONFIG``. The endpoint is
``/webhook``: the GET handshake and the POSTs of both channels.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shop_bot.config import ShopConfig
from shop_bot.flow import Shop, ShopFlow
from waflow import App, AsyncMessenger, AsyncWhatsApp
from waflow.clock import Clock
from waflow.config import Settings
from waflow.conversions import AsyncConversions
from waflow.flows.engine import Engine
from waflow.render import Texts
from waflow.store import Store, open_store
from waflow.whatsapp import build
from waflow.whatsapp.catalog import AsyncCatalog
from waflow.whatsapp.messages import TemplateMessage
from waflow.whatsapp.templates import TemplateRegistry

TEXTS = Path(__file__).with_name("texts")


def build_app(
    config: ShopConfig,
    *,
    settings: Settings,
    store: Store,
    whatsapp: AsyncWhatsApp,
    messenger: AsyncMessenger | None,
    conversions: AsyncConversions | None = None,
    registry: TemplateRegistry,
    clock: Clock | None = None,
) -> App:
    """The shop's app from ready clients (the demo and the tests pass fakes here)."""
    settings.require("catalog_id")
    assert settings.catalog_id is not None  # require() raised otherwise
    texts = Texts(TEXTS, default_locale="en", fallbacks={"de": "en", "fr": "en"})
    shop = Shop(
        config=config,
        texts=texts,
        catalog=AsyncCatalog(whatsapp.catalog, clock=clock),
        catalog_id=settings.catalog_id,
        whatsapp=whatsapp,
        messenger=messenger,
        templates=registry,
    )
    template = config.whatsapp.followup_template

    def followup(ctx: Any) -> TemplateMessage | None:
        # Outside the 24-hour window the product can't go free-form: send the follow-up instead.
        to = ctx.customer.whatsapp_id
        if to is None:
            return None
        return build.template(
            to, template.name, template.language, body=[ctx.data.first_name or "", shop.name, ""]
        )

    engine = Engine(
        ShopFlow,
        services=shop,
        store=store,
        clock=clock,
        whatsapp_number=whatsapp.phone_number_id,
        whatsapp_display_number=config.shop.whatsapp_number,
        default_region=None,
        dataset_id=settings.dataset_id if conversions is not None else None,
        fallback_template=followup,
        templates=registry,  # MARKETING templates are then never sent to who opted out
    )
    return App(
        app_secret=settings.app_secret,
        verify_token=settings.verify_token,
        store=store,
        whatsapp=whatsapp,
        messenger=messenger,
        conversions=conversions,
        clock=clock,
        engine=engine,
    )


def create_app(env: Mapping[str, str] | None = None) -> App:
    """The shop's app, configured by the environment."""
    settings = Settings.from_env(env)
    settings.require("app_secret", "verify_token", "access_token", "phone_number_id", "catalog_id")
    # The application, not the library, decides about logging: honour WAFLOW_LOG_LEVEL however
    # the app is served (uvicorn configures only its own loggers).
    logging.getLogger("waflow").setLevel(settings.log_level)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    registry = TemplateRegistry()
    whatsapp = AsyncWhatsApp.from_env(env, templates=registry)
    messenger = AsyncMessenger.from_env(env) if settings.page_id else None
    conversions = None
    if settings.dataset_id:
        conversions = AsyncConversions(
            access_token=settings.access_token,
            dataset_id=settings.dataset_id,
            base_url=settings.graph_url,
            api_version=settings.api_version,
        )
    return build_app(
        ShopConfig.from_env(env),
        settings=settings,
        store=open_store(settings.store),
        whatsapp=whatsapp,
        messenger=messenger,
        conversions=conversions,
        registry=registry,
    )


def __getattr__(name: str) -> Any:
    # ``shop_bot.app:app`` builds the app when a server asks for it, not on every import (the
    # demo and the tests import build_app without any WAFLOW_* variables set).
    if name == "app":
        return create_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
