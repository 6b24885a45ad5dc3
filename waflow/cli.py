"""The ``waflow`` command: the demo, a server, sends, templates, webhook signatures, the outbox.

::

    waflow demo                                  # the shop bot against the fake, both journeys
    waflow serve shop_bot.app:app --port 8000    # an App (or any ASGI app) under uvicorn
    waflow send text 4915112345678 "Ihr Rad ist fertig!"
    waflow templates sync templates/ --dry-run
    waflow webhook sign body.json --curl http://127.0.0.1:8000/webhook
    waflow outbox list --state parked
    waflow flow diagram mybot.flows:CheckoutFlow

Commands that talk to Meta read the ``WAFLOW_*`` variables (:class:`~waflow.config.Settings`).
Every error waflow expects — a :class:`~waflow.errors.WaflowError`, an import error of the user's
module, a missing file, Ctrl-C — ends the command with one line on stderr
(``waflow: error: …``) and exit status 1 (2 for usage errors, 130 for Ctrl-C), never with a
traceback unless ``--debug`` is given. Secrets (tokens, the app secret, a store password) are
redacted from every error line.

For tests and embedding, :func:`main` takes the environment and the ``httpx.Client`` every Graph
client is built with (``main([...], env={...}, http_client=fake.client())``): the fakes of
:mod:`waflow.testing` plug in there, and nothing global is patched.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import shlex
import sys
import typing
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from pydantic import SecretStr

from waflow._http import SyncHTTPClient
from waflow._version import __version__
from waflow.app import App
from waflow.config import ENV_PREFIX, Settings
from waflow.errors import APIError, ConfigError, WaflowError, redact
from waflow.flows.flow import Flow
from waflow.outbox import Outbox
from waflow.store import Store, open_store
from waflow.store.base import OutboxItem, OutboxState
from waflow.webhooks import SIGNATURE_HEADER, sign
from waflow.whatsapp.client import WhatsApp
from waflow.whatsapp.templates import (
    CreatedTemplate,
    DefinitionComponent,
    MessageTemplate,
    TemplateDefinition,
    Templates,
    load_template_files,
    sync_templates,
)

__all__ = ["ASGIApp", "CommandError", "load_asgi_app", "main"]

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]

PROG = "waflow"
#: Exit statuses: success, a failed command, a usage error, Ctrl-C (128 + SIGINT, as shells expect).
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
#: Table cells longer than this are cut (``--full`` keeps them whole).
_CELL_MAX = 80
#: The settings that hold secrets, read from the model so a new secret is redacted too.
_SECRET_SETTINGS = tuple(
    name
    for name, info in Settings.model_fields.items()
    if SecretStr in typing.get_args(info.annotation)
)


class CommandError(Exception):
    """A command cannot go on; the message is the one line the user reads, ``code`` the exit."""

    def __init__(self, message: str, *, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


class _MissingModule(CommandError):
    """The module itself (or a package above it) does not exist; ``name`` is the one missing."""

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name


class _MissingAttribute(CommandError):
    """The module imported, but has nothing by the name asked for (commands add suggestions)."""

    def __init__(self, message: str, module: Any, attribute: str) -> None:
        super().__init__(message)
        self.module = module
        self.attribute = attribute


# -- the context every command gets -------------------------------------------------------------


@dataclass
class _Context:
    """What a command needs from outside: the environment, the Graph transport, the streams."""

    env: Mapping[str, str] | None
    http_client: SyncHTTPClient | None
    #: Extra values to redact from error lines (``--secret``, a store URL's password).
    secrets: list[str] = field(default_factory=list)
    _settings: Settings | None = None

    @property
    def out(self) -> TextIO:
        # Looked up at each use, so a redirected sys.stdout (pytest's capsys) is honoured.
        return sys.stdout

    @property
    def err(self) -> TextIO:
        return sys.stderr

    def settings(self) -> Settings:
        """The ``WAFLOW_*`` settings, read once."""
        if self._settings is None:
            self._settings = Settings.from_env(self.env)
        return self._settings

    def whatsapp(self, *required: str) -> WhatsApp:
        """A WhatsApp client from the settings; ``required`` names settings checked first."""
        self.settings().require("access_token", "phone_number_id", *required)
        return WhatsApp.from_env(self.env, http_client=self.http_client)

    def progress(self, message: str) -> None:
        """One line of progress on stderr (stdout keeps only the result)."""
        print(message, file=self.err, flush=True)

    def known_secrets(self) -> list[str]:
        """Every secret this run could know, to redact from what it prints on failure."""
        source = os.environ if self.env is None else self.env
        found = [source.get(f"{ENV_PREFIX}{name.upper()}", "") for name in _SECRET_SETTINGS]
        found.extend(self.secrets)
        store = source.get(f"{ENV_PREFIX}STORE", "")
        found.extend(_url_password(store))
        return [secret.strip() for secret in found if secret and secret.strip()]


def _url_password(url: str) -> list[str]:
    try:
        password = urlsplit(url).password
    except ValueError:
        return []
    return [password] if password else []


# -- shared helpers -------------------------------------------------------------------------------


def _import_object(spec: str, *, what: str, app_dir: str | None) -> Any:
    """Import ``module:attribute`` (the attribute may be dotted) and return the object.

    ``app_dir`` goes first on ``sys.path``, as with uvicorn's ``--app-dir``: a console script does
    not have the current directory there, so ``waflow serve app:app`` would not find ``app.py``.
    """
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise CommandError(
            f"{what} must look like module:attribute (such as shop_bot.app:app), got {spec!r}",
            code=EXIT_USAGE,
        )
    if app_dir is not None:
        directory = str(Path(app_dir).resolve())
        if directory not in sys.path:
            sys.path.insert(0, directory)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (
            module_name == exc.name or module_name.startswith(exc.name + ".")
        ):
            where = f" in {app_dir!r}" if app_dir is not None else ""
            raise _MissingModule(
                f"cannot import {module_name!r}: no module named {exc.name!r}{where} "
                "(run from the project folder or pass --app-dir)",
                exc.name,
            ) from exc
        raise CommandError(f"importing {module_name!r} failed: {exc}") from exc
    except WaflowError:
        raise  # already says what is wrong (a ConfigError, a FlowDefinitionError …)
    except Exception as exc:
        raise CommandError(
            f"importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise _MissingAttribute(
                f"module {module_name!r} has no attribute {attribute!r}", module, attribute
            )
        target = getattr(target, part)
    return target


def _waflow_app(target: object) -> App | None:
    """The :class:`App` behind ``target``: the App itself, or its ``app.asgi`` (a bound method)."""
    if isinstance(target, App):
        return target
    owner = getattr(target, "__self__", None)
    return owner if isinstance(owner, App) else None


def _as_asgi(target: object, spec: str) -> ASGIApp:
    app = _waflow_app(target)
    if app is not None:
        return app.asgi
    if callable(target):
        return typing.cast(ASGIApp, target)
    raise CommandError(f"{spec} is a {type(target).__name__}, not a waflow App or an ASGI app")


def load_asgi_app(spec: str, *, app_dir: str | None = ".") -> ASGIApp:
    """The ASGI application ``spec`` (``module:attribute``) names, as ``waflow serve`` runs it.

    A :class:`~waflow.App` becomes its ``app.asgi``; any other callable is taken as an ASGI
    application as it is. ``app_dir`` is put first on ``sys.path`` (``None``: leave it).
    Raises :class:`CommandError` for a malformed spec, a module that cannot be imported, a missing
    attribute or an object that is not callable.
    """
    return _as_asgi(_import_object(spec, what="APP", app_dir=app_dir), spec)


def _one_line(text: str) -> str:
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def _cut(text: str, limit: int | None) -> str:
    text = " ".join(text.split())
    if limit is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: a header row and left-aligned columns two spaces apart."""
    widths = [len(header) for header in headers]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    ]
    return "\n".join(lines)


# -- demo -----------------------------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace, ctx: _Context) -> int:
    try:
        run_demo = _import_object("shop_bot.demo:run_demo", what="the demo", app_dir=args.app_dir)
    except _MissingModule as exc:
        if exc.name not in ("shop_bot", "shop_bot.demo"):
            raise  # the example is there, but one of its own imports failed: that error says which
        raise CommandError(
            f"the shop bot example (shop_bot) is not in {args.app_dir!r}: run `waflow demo` "
            "from a waflow checkout, or pass --app-dir with the folder that holds shop_bot",
            code=EXIT_USAGE,
        ) from exc
    code = asyncio.run(run_demo(ctx.out, width=args.width))
    return code if isinstance(code, int) else EXIT_OK


# -- serve ----------------------------------------------------------------------------------------


def _cmd_serve(args: argparse.Namespace, ctx: _Context) -> int:
    try:
        import uvicorn
    except ImportError:
        raise CommandError("`waflow serve` needs uvicorn: pip install 'waflow[server]'") from None
    target = _import_object(args.app, what="APP", app_dir=args.app_dir)
    asgi = _as_asgi(target, args.app)
    waflow_app = _waflow_app(target)
    options: dict[str, Any] = {"host": args.host, "port": args.port}
    if waflow_app is not None:
        # uvicorn guesses the interface from the object; it takes a bound method such as
        # `app.asgi` for ASGI 2 and fails every request. A waflow App is ASGI 3: say so. Other
        # apps keep uvicorn's guess.
        options["interface"] = "asgi3"
    _configure_waflow_logging(ctx)
    path = waflow_app.path if waflow_app is not None else ""
    ctx.progress(f"{PROG}: serving {args.app} on http://{args.host}:{args.port}{path}")
    try:
        if args.reload:
            # uvicorn reloads by importing the string again in a fresh process (with app_dir on
            # its path); the import above only checked that it resolves.
            uvicorn.run(args.app, reload=True, app_dir=args.app_dir, **options)
        else:
            uvicorn.run(asgi, **options)
    except SystemExit as exc:  # uvicorn exits when it cannot start (a port in use): it logged why
        if exc.code in (None, 0):
            return EXIT_OK
        raise CommandError(
            f"the server could not start on {args.host}:{args.port} (see uvicorn's message above)"
        ) from None
    return EXIT_OK


def _configure_waflow_logging(ctx: _Context) -> None:
    # uvicorn configures only its own loggers; without this, the App's INFO lines (retries,
    # parked messages) would vanish. Left alone when the user's module set up logging itself.
    logger = logging.getLogger("waflow")
    logger.setLevel(ctx.settings().log_level)
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)-9s %(name)s: %(message)s"))
        logger.addHandler(handler)


# -- send -----------------------------------------------------------------------------------------


def _cmd_send_text(args: argparse.Namespace, ctx: _Context) -> int:
    with ctx.whatsapp() as wa:
        result = wa.send_text(args.to, args.message)
    print(result.message_id, file=ctx.out)
    return EXIT_OK


def _named_params(pairs: Sequence[str]) -> dict[str, str]:
    named: dict[str, str] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise CommandError(f"--named-param takes KEY=VALUE, got {pair!r}", code=EXIT_USAGE)
        named[key] = value
    return named


def _cmd_send_template(args: argparse.Namespace, ctx: _Context) -> int:
    if args.param and args.named_param:
        raise CommandError(
            "pass either --param (positional) or --named-param (named), not both",
            code=EXIT_USAGE,
        )
    body: list[str] | dict[str, str] | None = None
    if args.param:
        body = list(args.param)
    elif args.named_param:
        body = _named_params(args.named_param)
    with ctx.whatsapp() as wa:
        result = wa.send_template(args.to, args.name, args.language, body=body, header=args.header)
    print(result.message_id, file=ctx.out)
    return EXIT_OK


def _cmd_send_product(args: argparse.Namespace, ctx: _Context) -> int:
    with ctx.whatsapp() as wa:
        catalog_id = args.catalog_id or wa.catalog_id
        if not catalog_id:
            raise ConfigError("missing setting: WAFLOW_CATALOG_ID (or pass --catalog-id)")
        result = wa.send_product(
            args.to, catalog_id, args.retailer_id, body=args.body, footer=args.footer
        )
    print(result.message_id, file=ctx.out)
    return EXIT_OK


# -- templates ------------------------------------------------------------------------------------


def _cmd_templates_list(args: argparse.Namespace, ctx: _Context) -> int:
    with ctx.whatsapp("waba_id") as wa:
        templates = list(
            wa.templates.list(
                name=args.name,
                status=args.status.upper() if args.status else None,
                category=args.category.upper() if args.category else None,
                language=args.language,
            )
        )
    if not templates:
        print("no templates", file=ctx.out)
        return EXIT_OK
    rows = [
        [
            template.name,
            template.language,
            template.status or "",
            template.category or "",
            (template.quality_score.score or "") if template.quality_score else "",
            template.id or "",
        ]
        for template in templates
    ]
    headers = ["NAME", "LANGUAGE", "STATUS", "CATEGORY", "QUALITY", "ID"]
    print(_table(headers, rows), file=ctx.out)
    return EXIT_OK


class _AnnouncingTemplates(Templates):
    """``wa.templates`` that announces each change on stderr just before making it.

    :func:`sync_templates` returns its report only at the end; a sync of many templates against
    a slow API would otherwise show nothing for a long time.
    """

    def __init__(self, inner: Templates, say: Callable[[str], None]) -> None:
        super().__init__(inner._graph, inner._waba_id)  # the same Graph client and account
        self._say = say
        # Edits name only the template id; the listing tells which translation that is.
        self._names: dict[str, str] = {}

    def list(
        self,
        *,
        name: str | None = None,
        status: str | None = None,
        category: str | None = None,
        language: str | None = None,
        limit: int | None = None,
        fields: Sequence[str] | None = None,
    ) -> Iterator[MessageTemplate]:
        self._say("reading the account's templates …")
        listed = super().list(
            name=name,
            status=status,
            category=category,
            language=language,
            limit=limit,
            fields=fields,
        )
        for template in listed:
            if template.id:
                self._names[template.id] = f"{template.name} ({template.language})"
            yield template

    def create(self, definition: TemplateDefinition) -> CreatedTemplate:
        self._say(f"creating {definition.name} ({definition.language}) …")
        return super().create(definition)

    def edit(
        self,
        template_id: str,
        *,
        components: Sequence[DefinitionComponent] | None = None,
        category: str | None = None,
    ) -> bool:
        self._say(f"updating {self._names.get(template_id, f'template {template_id}')} …")
        return super().edit(template_id, components=components, category=category)

    def delete(self, name: str, *, template_id: str | None = None) -> bool:
        which = self._names.get(template_id or "", name)
        self._say(f"deleting {which} …")
        return super().delete(name, template_id=template_id)


def _cmd_templates_sync(args: argparse.Namespace, ctx: _Context) -> int:
    definitions = load_template_files(args.path)
    count = len(definitions)
    ctx.progress(f"{count} template{'s' if count != 1 else ''} defined in {args.path}")
    with ctx.whatsapp("waba_id") as wa:
        resource = _AnnouncingTemplates(wa.templates, ctx.progress)
        report = sync_templates(resource, definitions, dry_run=args.dry_run, prune=args.prune)
    if report.entries:
        print(report.summary(), file=ctx.out)
    would = "would be " if report.dry_run else ""
    totals = [
        f"{len(report.created)} {would}created",
        f"{len(report.updated)} {would}updated",
        f"{len(report.unchanged)} unchanged",
    ]
    if args.prune:
        totals.append(f"{len(report.deleted)} {would}deleted")
    totals.append(f"{len(report.failed)} failed")
    print(", ".join(totals), file=ctx.out)
    return EXIT_OK if report.ok else EXIT_FAILURE


# -- webhook --------------------------------------------------------------------------------------


def _cmd_webhook_sign(args: argparse.Namespace, ctx: _Context) -> int:
    body = Path(args.file).read_bytes()  # the exact bytes: a re-serialized body would not match
    secret: str | SecretStr | None = args.secret
    if secret:
        ctx.secrets.append(args.secret)
    else:
        secret = ctx.settings().app_secret
    if secret is None:
        raise ConfigError("missing setting: WAFLOW_APP_SECRET (or pass --secret)")
    signature = sign(body, secret)
    if args.curl:
        command = [
            "curl",
            "--silent",
            "--show-error",
            "--request",
            "POST",
            args.curl,
            "--header",
            "Content-Type: application/json",
            "--header",
            f"{SIGNATURE_HEADER}: {signature}",
            "--data-binary",
            f"@{args.file}",
        ]
        print(shlex.join(command), file=ctx.out)
    else:
        print(signature, file=ctx.out)
    return EXIT_OK


# -- outbox ---------------------------------------------------------------------------------------


def _store_url(args: argparse.Namespace, ctx: _Context) -> str:
    url: str = args.store or ctx.settings().store
    ctx.secrets.extend(_url_password(url))
    return url


def _open_existing_store(url: str) -> Store:
    # SQLite creates a missing file on connect: an outbox command pointed at the wrong folder
    # would then report an empty outbox (and leave a stray database) instead of the mistake.
    if url.startswith("sqlite://"):
        path = url[len("sqlite://") :]
        path = path[1:] if path.startswith("/") else path
        if path and path != ":memory:" and not Path(path).exists():
            raise ConfigError(
                f"no store at {path}: set WAFLOW_STORE or pass --store (such as sqlite:///waflow.db)"
            )
    try:
        return open_store(url)
    except WaflowError:
        raise
    except Exception as exc:
        raise _store_failed(url, exc) from exc


def _masked(url: str) -> str:
    """``url`` without its password, to name a store in a message."""
    for password in _url_password(url):
        url = url.replace(f":{password}@", ":***@")
    return url


def _store_failed(url: str, exc: Exception) -> CommandError:
    # A store that cannot be reached (redis down, an unreadable file) is the user's setup, not a
    # bug in waflow: say which store, without its password.
    return CommandError(f"store {_masked(url)}: {type(exc).__name__}: {exc}")


async def _outbox_list(url: str, state: OutboxState, limit: int) -> list[OutboxItem]:
    store = _open_existing_store(url)
    try:
        return await store.outbox_list(state, limit)
    except WaflowError:
        raise
    except Exception as exc:
        raise _store_failed(url, exc) from exc
    finally:
        await store.close()


def _cmd_outbox_list(args: argparse.Namespace, ctx: _Context) -> int:
    items = asyncio.run(_outbox_list(_store_url(args, ctx), args.state, args.limit))
    if not items:
        print(f"no {args.state} messages", file=ctx.out)
        return EXIT_OK
    limit = None if args.full else _CELL_MAX
    rows = [
        [
            item.id,
            item.customer,
            item.channel,
            str(item.attempts),
            item.created_at.strftime("%Y-%m-%d %H:%M"),
            _cut(item.last_error or "", limit),
        ]
        for item in items
    ]
    headers = ["ID", "CUSTOMER", "CHANNEL", "ATTEMPTS", "CREATED", "LAST ERROR"]
    print(_table(headers, rows), file=ctx.out)
    return EXIT_OK


async def _parked_ids(store: Store) -> list[str]:
    # The store lists at most `limit` at a time, oldest first; read until nothing new appears.
    ids: list[str] = []
    seen: set[str] = set()
    while True:
        fresh = [i.id for i in await store.outbox_list("parked", 500) if i.id not in seen]
        if not fresh:
            return ids
        ids.extend(fresh)
        seen.update(fresh)
        if len(fresh) < 500:
            return ids


async def _outbox_retry(url: str, ids: Sequence[str], every: bool, ctx: _Context) -> int:
    store = _open_existing_store(url)
    try:
        return await _retry_each(store, ids, every, ctx)
    except WaflowError:
        raise
    except Exception as exc:
        raise _store_failed(url, exc) from exc
    finally:
        await store.close()


async def _retry_each(store: Store, ids: Sequence[str], every: bool, ctx: _Context) -> int:
    """Retry each message, one line per message as it goes (the progress of a long --all)."""
    outbox = Outbox(store)
    wanted = list(ids) if not every else await _parked_ids(store)
    if not wanted:
        print("no parked messages", file=ctx.out)
        return EXIT_OK
    failures = 0
    total = len(wanted)
    for number, item_id in enumerate(wanted, 1):
        counter = f"[{number}/{total}] " if total > 1 else ""
        item = await store.outbox_get(item_id)
        if item is None:
            print(f"{counter}{item_id}: no such message", file=ctx.out, flush=True)
            failures += 1
        elif await outbox.retry(item_id):
            print(f"{counter}{item_id}: back in line", file=ctx.out, flush=True)
        else:
            print(f"{counter}{item_id}: not parked ({item.state})", file=ctx.out, flush=True)
            failures += 1
    return EXIT_FAILURE if failures else EXIT_OK


def _cmd_outbox_retry(args: argparse.Namespace, ctx: _Context) -> int:
    if bool(args.ids) == bool(args.all):
        raise CommandError("pass message ids or --all, not both or neither", code=EXIT_USAGE)
    return asyncio.run(_outbox_retry(_store_url(args, ctx), args.ids, args.all, ctx))


# -- flow -----------------------------------------------------------------------------------------


def _flows_in(module: Any) -> list[str]:
    return sorted(
        name
        for name, value in vars(module).items()
        if isinstance(value, type) and issubclass(value, Flow) and value._definition is not None
    )


def _cmd_flow_diagram(args: argparse.Namespace, ctx: _Context) -> int:
    try:
        target = _import_object(args.flow, what="FLOW", app_dir=args.app_dir)
    except _MissingAttribute as exc:
        flows = _flows_in(exc.module)
        there = f"flows there: {', '.join(flows)}" if flows else "it defines no flows"
        raise CommandError(
            f"no flow {exc.attribute!r} in {exc.module.__name__!r}; {there}"
        ) from exc
    if not (isinstance(target, type) and issubclass(target, Flow)):
        raise CommandError(f"{args.flow} is a {type(target).__name__}, not a Flow class")
    if target._definition is None:  # declared with abstract=True: nothing to draw
        raise CommandError(f"{target.__name__} is an abstract flow: name one of its subclasses")
    print(target.mermaid(), end="", file=ctx.out)
    return EXIT_OK


# -- the parser -----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    # --debug is accepted before and after the command; SUPPRESS keeps a sub-parser from
    # overwriting the value the main parser read.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the full traceback of an error",
    )

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="waflow: customer support on WhatsApp and Messenger.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        group: argparse._SubParsersAction[argparse.ArgumentParser],
        name: str,
        help_text: str,
        handler: Callable[[argparse.Namespace, _Context], int] | None = None,
    ) -> argparse.ArgumentParser:
        sub = group.add_parser(name, help=help_text, description=help_text, parents=[common])
        if handler is not None:
            sub.set_defaults(handler=handler)
        return sub

    demo = command(
        commands, "demo", "play the shop bot's two journeys against the fake API", _cmd_demo
    )
    demo.add_argument(
        "--app-dir",
        default="examples",
        help="folder that holds the shop_bot example (default: examples)",
    )
    demo.add_argument(
        "--width",
        type=_int_in(40, 1000),
        default=None,
        help="width of the transcript, 40 or more (default: terminal)",
    )

    serve = command(commands, "serve", "run an App (or any ASGI app) with uvicorn", _cmd_serve)
    serve.add_argument("app", metavar="APP", help="module:attribute, such as shop_bot.app:app")
    serve.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1)")
    serve.add_argument("--port", type=_int_in(1, 65535), default=8000, help="port (default: 8000)")
    serve.add_argument(
        "--app-dir", default=".", help="folder to import APP from (default: the current one)"
    )
    serve.add_argument("--reload", action="store_true", help="restart when the code changes")

    send = command(commands, "send", "send a WhatsApp message (real API, WAFLOW_* credentials)")
    sends = send.add_subparsers(dest="kind", required=True, metavar="KIND")
    text = command(sends, "text", "a text message", _cmd_send_text)
    text.add_argument("to", metavar="TO", help="the customer's number or wa_id")
    text.add_argument("message", metavar="MESSAGE")
    template = command(sends, "template", "an approved template", _cmd_send_template)
    template.add_argument("to", metavar="TO")
    template.add_argument("name", metavar="NAME")
    template.add_argument("--language", default="en_US", help="language code (default: en_US)")
    template.add_argument(
        "--param", action="append", default=[], metavar="VALUE", help="next body parameter"
    )
    template.add_argument(
        "--named-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a named body parameter",
    )
    template.add_argument("--header", default=None, metavar="TEXT", help="header parameter")
    product = command(sends, "product", "one product of the catalog", _cmd_send_product)
    product.add_argument("to", metavar="TO")
    product.add_argument("retailer_id", metavar="RETAILER_ID")
    product.add_argument("--catalog-id", default=None, help="default: WAFLOW_CATALOG_ID")
    product.add_argument("--body", default=None, help="text above the product")
    product.add_argument("--footer", default=None, help="text below the product")

    templates = command(commands, "templates", "list or sync the account's message templates")
    template_commands = templates.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = command(template_commands, "list", "a table of the templates", _cmd_templates_list)
    listing.add_argument("--status", default=None, help="APPROVED, PENDING, REJECTED, PAUSED …")
    listing.add_argument("--name", default=None, help="names containing this text")
    listing.add_argument("--category", default=None, help="MARKETING, UTILITY, AUTHENTICATION")
    listing.add_argument("--language", default=None, help="a language code, such as de")
    sync = command(
        template_commands, "sync", "make the account match template files", _cmd_templates_sync
    )
    sync.add_argument("path", metavar="PATH", help="a JSON/YAML file or a folder of them")
    sync.add_argument("--dry-run", action="store_true", help="only report what would change")
    sync.add_argument("--prune", action="store_true", help="delete translations no file defines")

    webhook = command(commands, "webhook", "webhook helpers")
    webhook_commands = webhook.add_subparsers(dest="action", required=True, metavar="ACTION")
    signing = command(
        webhook_commands,
        "sign",
        f"print the {SIGNATURE_HEADER} of a body file",
        _cmd_webhook_sign,
    )
    signing.add_argument("file", metavar="FILE")
    signing.add_argument(
        "--secret", default=None, help="the app secret (default: WAFLOW_APP_SECRET)"
    )
    signing.add_argument(
        "--curl", default=None, metavar="URL", help="print a curl command posting FILE to URL"
    )

    outbox = command(commands, "outbox", "inspect and retry queued messages")
    outbox_commands = outbox.add_subparsers(dest="action", required=True, metavar="ACTION")
    outbox_list = command(outbox_commands, "list", "a table of messages", _cmd_outbox_list)
    outbox_list.add_argument(
        "--state", choices=typing.get_args(OutboxState), default="parked", help="default: parked"
    )
    outbox_list.add_argument(
        "--limit", type=_int_in(1, 100_000), default=100, help="at most this many"
    )
    outbox_list.add_argument("--full", action="store_true", help="do not shorten long errors")
    outbox_list.add_argument("--store", default=None, metavar="URL", help="default: WAFLOW_STORE")
    retry = command(outbox_commands, "retry", "put parked messages back in line", _cmd_outbox_retry)
    retry.add_argument("ids", nargs="*", metavar="ID")
    retry.add_argument("--all", action="store_true", help="every parked message")
    retry.add_argument("--store", default=None, metavar="URL", help="default: WAFLOW_STORE")

    flow = command(commands, "flow", "conversation flows")
    flow_commands = flow.add_subparsers(dest="action", required=True, metavar="ACTION")
    diagram = command(
        flow_commands, "diagram", "print a flow as a Mermaid state diagram", _cmd_flow_diagram
    )
    diagram.add_argument("flow", metavar="FLOW", help="module:FlowClass")
    diagram.add_argument(
        "--app-dir", default=".", help="folder to import FLOW from (default: the current one)"
    )
    return parser


# -- entry point ----------------------------------------------------------------------------------


def _describe(exc: BaseException) -> str:
    if isinstance(exc, CommandError):
        return str(exc)
    if isinstance(exc, APIError):
        # The class says what kind of refusal it was (AuthenticationError, RateLimitError …).
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, WaflowError):
        return str(exc)
    if isinstance(exc, FileNotFoundError):
        return f"no such file: {exc.filename}"
    if isinstance(exc, IsADirectoryError):
        return f"is a folder, not a file: {exc.filename}"
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.strerror}: {exc.filename}"
    return f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)"


def _int_in(lowest: int, highest: int) -> Callable[[str], int]:
    """An argparse type: a whole number from ``lowest`` to ``highest`` (a usage error else)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not lowest <= value <= highest:
            raise argparse.ArgumentTypeError(f"must be from {lowest} to {highest}, not {value}")
        return value

    return parse


def main(
    argv: Sequence[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    http_client: SyncHTTPClient | None = None,
) -> int:
    """Run the ``waflow`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit status.

    ``env`` replaces ``os.environ`` as the source of the ``WAFLOW_*`` settings, and
    ``http_client`` is the ``httpx.Client`` every Graph client is built with (default: its own);
    tests pass ``FakeGraphAPI().client()`` there.
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors: argparse already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    debug = bool(getattr(args, "debug", False))
    if debug:
        logging.basicConfig(level=logging.WARNING)
        logging.getLogger("waflow").setLevel(logging.DEBUG)
    ctx = _Context(env=env, http_client=http_client)
    try:
        code: int = args.handler(args, ctx)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{PROG}: error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # `waflow outbox list | head`: the reader left; nothing more to say to it.
        _silence_stdout()
        return EXIT_FAILURE
    except Exception as exc:
        if debug:
            raise
        message = redact(_one_line(_describe(exc)), ctx.known_secrets())
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return exc.code if isinstance(exc, CommandError) else EXIT_FAILURE
    return code


def _silence_stdout() -> None:
    # Python flushes stdout at exit and would report the broken pipe again; point it at devnull.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
