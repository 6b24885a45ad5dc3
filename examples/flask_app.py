"""waflow inside a Flask app: one view hands Meta's requests to ``App.dispatch_sync``.

Run with ``flask --app examples/flask_app:web run`` (``WAFLOW_*`` variables set). Read the body as
raw bytes (``request.get_data()``): the signature covers them exactly as Meta sent them.
"""

from __future__ import annotations

from flask import Flask, Response, request

from waflow import App, HandlerContext, WebhookRequest
from waflow.events import Event


def create_web(app: App) -> Flask:
    """A Flask application serving ``app`` on ``/webhook`` (GET handshake and POSTs)."""
    web = Flask(__name__)

    @web.route("/webhook", methods=["GET", "POST"])
    def webhook() -> Response:
        answer = app.dispatch_sync(
            WebhookRequest(
                method=request.method,
                body=request.get_data(),
                headers=dict(request.headers),
                query=request.args.to_dict(),
                path=request.path,
            )
        )
        return Response(answer.body, status=answer.status, headers=dict(answer.headers))

    return web


def create_app() -> App:
    """An app that greets everyone (replace with your routers or an Engine)."""
    app = App.from_env()

    @app.message()
    async def greet(event: Event, ctx: HandlerContext) -> None:
        ctx.reply("Hallo aus Flask!")

    return app


def __getattr__(name: str) -> Flask:
    # ``flask_app:web`` is built when a server asks for it (it needs the WAFLOW_* variables).
    if name == "web":
        return create_web(create_app())
    raise AttributeError(name)
