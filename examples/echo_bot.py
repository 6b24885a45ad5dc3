"""The smallest waflow bot: answers every message with its text, on WhatsApp and Messenger.

Run it against Meta (or a fake) with the ``WAFLOW_*`` variables set::

    WAFLOW_APP_SECRET=… WAFLOW_VERIFY_TOKEN=… WAFLOW_ACCESS_TOKEN=… WAFLOW_PHONE_NUMBER_ID=… \\
    WAFLOW_PAGE_ACCESS_TOKEN=… WAFLOW_PAGE_ID=… \\
        python -m uvicorn --app-dir examples echo_bot:app

Every message is recorded before Meta gets its 200, handled once, and answered through the
durable outbox (SQLite by default, ``WAFLOW_STORE`` to change it).
"""

from __future__ import annotations

import os

from waflow import App, AsyncMessenger, AsyncWhatsApp, HandlerContext
from waflow import filters as F
from waflow.events import Event


def create_app() -> App:
    """An echo bot configured by the environment (WhatsApp and/or Messenger, whichever is set)."""
    whatsapp = AsyncWhatsApp.from_env() if os.environ.get("WAFLOW_PHONE_NUMBER_ID") else None
    messenger = AsyncMessenger.from_env() if os.environ.get("WAFLOW_PAGE_ID") else None
    app = App.from_env(whatsapp=whatsapp, messenger=messenger)

    @app.message(F.when(lambda event: bool(getattr(event, "text", None))))
    async def echo(event: Event, ctx: HandlerContext) -> None:
        ctx.reply(f"Du schreibst: {getattr(event, 'text', '')}")

    return app


app = create_app()
