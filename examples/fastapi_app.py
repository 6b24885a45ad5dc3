"""waflow inside a FastAPI app: one route hands Meta's requests to ``App.dispatch``.

Run with ``python -m uvicorn --app-dir examples fastapi_app:api`` (``WAFLOW_*`` variables set).
Read the body as raw bytes: the signature covers them exactly as Meta sent them.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, Response

from waflow import App, HandlerContext, WebhookRequest
from waflow.events import Event


def create_api(app: App) -> FastAPI:
    """A FastAPI application serving ``app`` on ``/webhook`` (GET handshake and POSTs)."""
    api = FastAPI(title="waflow webhook")

    @api.api_route("/webhook", methods=["GET", "POST"])
    async def webhook(request: Request) -> Response:
        answer = await app.dispatch(
            WebhookRequest(
                method=request.method,
                body=await request.body(),
                headers=dict(request.headers),
                query=dict(request.query_params),
                path=request.url.path,
            )
        )
        return Response(answer.body, status_code=answer.status, headers=dict(answer.headers))

    return api


def create_app() -> App:
    """An app that greets everyone (replace with your routers or an Engine)."""
    app = App.from_env()

    @app.message()
    async def greet(event: Event, ctx: HandlerContext) -> None:
        ctx.reply("Hallo aus FastAPI!")

    return app


def __getattr__(name: str) -> FastAPI:
    # ``fastapi_app:api`` is built when a server asks for it (it needs the WAFLOW_* variables).
    if name == "api":
        return create_api(create_app())
    raise AttributeError(name)
