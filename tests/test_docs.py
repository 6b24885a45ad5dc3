"""The documentation runs: every ```python block of README.md and docs/**/*.md is executed.

One test per block, with the id ``file:line`` of its opening fence. No block reaches the network.

- **A page is one program.** The blocks of a page share one namespace, in page order: a block's
  test first runs the blocks above it on the same page (a failure there fails this test, naming
  that block), then the block itself.
- **The page's prelude.** Every page starts in a namespace prepared for it: a ``FakeGraphAPI``
  ``fake`` on a ``FrozenClock`` ``clock``, clients ``wa`` / ``awa`` / ``fb`` / ``afb`` and an
  ``app`` wired to it, a customer ``to`` / ``psid``, ``media_id``, ``customer_wamid``,
  ``catalog_id`` (:func:`_common`), and what a page needs besides (:data:`_PAGES`, and
  :data:`_REDIS_PAGES` for pages that run against a real ``redis-server``). The ``WAFLOW_*``
  variables are set to the fake's accounts, so ``WhatsApp.from_env()`` and
  ``os.environ["WAFLOW_ACCESS_TOKEN"]`` work as written, and every waflow client built without
  ``http_client=`` talks to the fake (the Graph core's default httpx clients get the fake's
  transport). Each test runs in a fresh temporary working directory, restored afterwards along
  with the environment.
- **Files.** A block whose first line names a Python file (``# mybot.py``) is also written to the
  working directory, so later blocks of the page can import it.
- **Top-level ``await``** is allowed (compiled with ``ast.PyCF_ALLOW_TOP_LEVEL_AWAIT``); the
  blocks of one page share one event loop, and sync blocks run outside it.
- **Optional packages.** ``<!-- needs: fastapi -->`` on the line right before a fence: the block
  runs where those modules are installed and is skipped, naming them, where they are not.
- **Not run.** ``<!-- not-run: <reason> -->`` on the line right before a fence marks a block that
  cannot run here at all (a real Meta account, …): its test is skipped with that reason, which must
  be given. Use it sparingly.

Blocks in other languages (``console``, ``yaml``, ``jinja``, plain fences) are not executed.
"""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import inspect
import os
import re
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

import waflow.graph
from waflow import App
from waflow.store import MemoryStore
from waflow.testing import FakeGraphAPI, FrozenClock
from waflow.webhooks import parse

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)[^`]*$")
_NOT_RUN = re.compile(r"^\s*<!--\s*not-run:\s*(?P<reason>.*?)\s*-->\s*$")
_NEEDS = re.compile(r"^\s*<!--\s*needs:\s*(?P<modules>[\w., ]+?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown page."""

    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    not_run: str | None  # the reason, when the block is marked not to run
    needs: tuple[str, ...] = ()  # modules the block imports that waflow does not depend on

    @property
    def page(self) -> str:
        return self.path.relative_to(ROOT).as_posix()

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def blocks_of(path: Path) -> list[Block]:
    """Every fenced block of ``path`` (any language), with its indentation removed."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        indent, fence = match["indent"], match["fence"]
        start = index
        body: list[str] = []
        index += 1
        while index < len(lines):
            closing = lines[index].strip()
            if closing.startswith(fence[0] * len(fence)) and not closing.strip(fence[0]):
                break
            text = lines[index]
            body.append(text[len(indent) :] if text.startswith(indent) else text.lstrip())
            index += 1
        index += 1
        previous = next((lines[i] for i in range(start - 1, -1, -1) if lines[i].strip()), "")
        marker = _NOT_RUN.match(previous)
        needs = _NEEDS.match(previous)
        found.append(
            Block(
                path=path,
                line=start + 1,
                language=match["info"].lower(),
                code="\n".join(body) + "\n",
                not_run=marker["reason"] if marker else None,
                needs=tuple(m.strip() for m in needs["modules"].split(",")) if needs else (),
            )
        )
    return found


def _pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def python_blocks(path: Path) -> list[Block]:
    return [block for block in blocks_of(path) if block.language in ("python", "py")]


ALL_BLOCKS = [block for page in _pages() for block in python_blocks(page)]


# -- the prelude ---------------------------------------------------------------------------------

CUSTOMER = "4915112345678"
PSID = "6945398272183744"


def _common(fake: FakeGraphAPI, clock: FrozenClock) -> dict[str, Any]:
    """What every page may use: the fake, clients and an app wired to it, a customer per channel."""
    media_id = fake.add_media(b"\xff\xd8\xff\xe0 a customer's photo", "image/jpeg", "photo.jpg")
    awa, afb = fake.async_whatsapp(), fake.async_messenger()
    return {
        "fake": fake,
        "clock": clock,
        "wa": fake.whatsapp(),
        "awa": awa,
        "fb": fake.messenger(),
        "afb": afb,
        "app": App(
            app_secret=fake.app_secret,
            store=MemoryStore(),
            whatsapp=awa,
            messenger=afb,
            clock=clock,
        ),
        "to": CUSTOMER,
        "psid": PSID,
        "media_id": media_id,
        "customer_wamid": "wamid.HBgNNDkxNTExMjM0NTY3OBUCABIYFjNFQjBDMEQ3RTg2RjM3MjQ5QUY2AA==",
        "catalog_id": fake.catalog_id,
    }


def _event(fake: FakeGraphAPI, body: dict[str, Any]) -> Any:
    (event,) = parse(body)
    return event


def _whatsapp_page(ns: dict[str, Any]) -> None:
    Path("invoice.pdf").write_bytes(b"%PDF-1.4\n% an invoice\n%%EOF\n")


def _webhooks_page(ns: dict[str, Any]) -> None:
    # A delivery as a web framework hands it over: the raw bytes and the headers.
    fake: FakeGraphAPI = ns["fake"]
    body, headers = fake.sign(fake.inbound.whatsapp_text(CUSTOMER, "Hallo", name="Lena"))
    ns.update(raw_body=body, request_headers=headers)


def _ads_page(ns: dict[str, Any]) -> None:
    fake: FakeGraphAPI = ns["fake"]
    referral = fake.inbound.whatsapp_referral(source_id="120226305854810726")
    body = fake.inbound.whatsapp_ad_referral(CUSTOMER, "Ist die Box noch da?", referral)
    ns["event"] = _event(fake, body)


def _errors_page(ns: dict[str, Any]) -> None:
    # The customer has not written for days: free-form text is refused with 131047.
    ns["fake"].enforce_window()


def _catalog_page(ns: dict[str, Any]) -> None:
    catalog = ns["fake"].catalog
    shop = "https://shop.example"
    for sku, name, price, category in [
        ("sku-7", "Stadtrad", "499.00", "Räder"),
        ("city-8", "Stadtrad Comfort", "649.00", "Räder"),
        ("helm-1", "Fahrradhelm", "59.90", "Zubehör"),
    ]:
        catalog.add(
            sku,
            name,
            price=Decimal(price),
            description=f"{name} von Lenas Radladen",
            brand="Velo",
            category=category,
            url=f"{shop}/p/{sku}",
            image_url=f"{shop}/img/{sku}.jpg",
        )


def _templates_page(ns: dict[str, Any]) -> None:
    # The page's YAML example is the file its Python examples load.
    for block in blocks_of(ROOT / "docs" / "templates.md"):
        first = block.code.splitlines()[0]
        if block.language == "yaml" and first.startswith("# templates/"):
            target = Path(first[2:].strip())
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.code, encoding="utf-8")


def _texts_page(ns: dict[str, Any]) -> None:
    # The folder the page's tree shows.
    for locale, text in [
        ("de", "Hallo {{ name }}! Wie können wir helfen?"),
        ("en", "Hello {{ name }}! How can we help?"),
        ("fr", "Bonjour {{ name }} ! Comment pouvons-nous vous aider ?"),
    ]:
        folder = Path("texts", locale)
        folder.mkdir(parents=True)
        (folder / "welcome.j2").write_text(text + "\n", encoding="utf-8")
    fake: FakeGraphAPI = ns["fake"]
    order = fake.inbound.whatsapp_order(CUSTOMER, fake.catalog_id, [("grinder", 2, 499.0, "EUR")])
    ns["event"] = _event(fake, order)


def _redis_page(ns: dict[str, Any], request: pytest.FixtureRequest) -> None:
    # A real redis-server (tests/redis_server.py), flushed: skipped without one unless required.
    url = request.getfixturevalue("clean_redis_url")
    request.getfixturevalue("monkeypatch").setenv("WAFLOW_STORE", url)


#: Page-specific additions to the prelude, by page path relative to the repository.
_PAGES: dict[str, Callable[[dict[str, Any]], None]] = {
    "docs/ads.md": _ads_page,
    "docs/catalog.md": _catalog_page,
    "docs/errors.md": _errors_page,
    "docs/templates.md": _templates_page,
    "docs/texts.md": _texts_page,
    "docs/webhooks.md": _webhooks_page,
    "docs/whatsapp.md": _whatsapp_page,
}
#: Pages that need a real redis-server, prepared with the request for its fixture.
_REDIS_PAGES: dict[str, Callable[[dict[str, Any], pytest.FixtureRequest], None]] = {
    "docs/howto/redis.md": _redis_page,
}


def _environment(fake: FakeGraphAPI) -> dict[str, str]:
    return {
        "WAFLOW_ACCESS_TOKEN": fake.access_token,
        "WAFLOW_PAGE_ACCESS_TOKEN": fake.access_token,
        "WAFLOW_APP_SECRET": fake.app_secret,
        "WAFLOW_VERIFY_TOKEN": "a-verify-token-of-your-choice",
        "WAFLOW_PHONE_NUMBER_ID": fake.phone_number_id,
        "WAFLOW_WABA_ID": fake.waba_id,
        "WAFLOW_PAGE_ID": fake.page_id,
        "WAFLOW_CATALOG_ID": fake.catalog_id,
        "WAFLOW_DATASET_ID": fake.dataset_id,
        "WAFLOW_STORE": "sqlite:///waflow.db",
    }


#: Variables of the test-suite itself, left alone.
_KEEP = ("WAFLOW_REQUIRE_REDIS", "WAFLOW_SHARED_DIR")


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A fresh working directory (importable), the ``WAFLOW_*`` variables of the fake's accounts,
    every client on the fake, and the page's namespace as a module ``__docs__``."""
    saved_environ = dict(os.environ)
    saved_modules = set(sys.modules)
    clock = FrozenClock("2026-03-02T09:00:00Z")
    fake = FakeGraphAPI(clock=clock, seed=7)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [name for name in os.environ if name.startswith("WAFLOW_")]:
        if name not in _KEEP:
            monkeypatch.delenv(name)
    for name, value in _environment(fake).items():
        monkeypatch.setenv(name, value)

    def sync_client(timeout: Any = None) -> httpx.Client:
        return fake.client()

    def async_client(timeout: Any = None) -> httpx.AsyncClient:
        return fake.async_client()

    monkeypatch.setattr(waflow.graph, "new_sync_client", sync_client)
    monkeypatch.setattr(waflow.graph, "new_async_client", async_client)
    module = types.ModuleType("__docs__")
    module.__dict__.update(_common(fake, clock))
    monkeypatch.setitem(sys.modules, "__docs__", module)
    yield module.__dict__
    # Modules the blocks wrote and imported (mybot.py …) must not outlive the test.
    for name in set(sys.modules) - saved_modules:
        if getattr(sys.modules[name], "__file__", "") and str(tmp_path) in str(
            sys.modules[name].__file__
        ):
            del sys.modules[name]
    os.environ.clear()
    os.environ.update(saved_environ)


# -- running -------------------------------------------------------------------------------------

_FLAGS = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
#: A block whose first line names a Python file (``# mybot.py``) is that file: it is also written
#: to the working directory, so later blocks can import it.
_FILE = re.compile(r"^#\s*(?P<path>[\w./-]+\.py)\s*$")


def _run(block: Block, ns: dict[str, Any], loop: asyncio.AbstractEventLoop) -> None:
    first = block.code.splitlines()[0] if block.code.strip() else ""
    named = _FILE.match(first)
    if named is not None:
        target = Path(named["path"])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block.code, encoding="utf-8")
    # Line numbers of the page itself, so a traceback shows the failing line of the .md file.
    tree = ast.parse(block.code, str(block.path), "exec")
    ast.increment_lineno(tree, block.line)
    code = compile(tree, str(block.path), "exec", flags=_FLAGS, dont_inherit=True)
    if code.co_flags & inspect.CO_COROUTINE:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(eval(code, ns))  # noqa: S307 - the documentation's own code
    else:
        exec(code, ns)  # noqa: S102 - the documentation's own code


def _closables(values: list[Any]) -> Iterator[Any]:
    """waflow's and httpx's objects among ``values``, and the stores of apps and engines."""
    for value in values:
        if isinstance(value, (type, types.ModuleType)):
            continue
        module = type(value).__module__
        if module.startswith(("waflow", "httpx")):
            yield value
            store = getattr(value, "store", None)
            if store is not None:
                yield store


async def _close(values: list[Any]) -> None:
    """Close what the blocks opened (clients, stores), so nothing leaks into other tests."""
    seen: set[int] = set()
    for value in _closables(values):
        if id(value) in seen:
            continue
        seen.add(id(value))
        for name in ("aclose", "close"):
            method = getattr(value, name, None)
            if callable(method):
                result = method()
                if inspect.isawaitable(result):
                    await result
                break


def _importable(block: Block) -> bool:
    return all(importlib.util.find_spec(module) is not None for module in block.needs)


def _page_of(block: Block) -> list[Block]:
    """The blocks of ``block``'s page that run here, in order."""
    return [b for b in python_blocks(block.path) if b.not_run is None and _importable(b)]


def _params() -> list[Any]:
    return [
        pytest.param(
            block, id=block.id, marks=[pytest.mark.redis] if block.page in _REDIS_PAGES else []
        )
        for block in ALL_BLOCKS
    ]


@pytest.mark.parametrize("block", _params())
def test_block_runs(block: Block, sandbox: dict[str, Any], request: pytest.FixtureRequest) -> None:
    if block.not_run is not None:
        if not block.not_run:
            pytest.fail(f"{block.id}: <!-- not-run: … --> needs a reason", pytrace=False)
        pytest.skip(f"not run ({block.id}): {block.not_run}")
    for module in block.needs:
        pytest.importorskip(module, reason=f"{block.id} needs {module}, which is not installed")
    ns = sandbox
    if block.page in _REDIS_PAGES:
        _REDIS_PAGES[block.page](ns, request)
    if block.page in _PAGES:
        _PAGES[block.page](ns)
    loop = asyncio.new_event_loop()
    try:
        for earlier in _page_of(block):
            if earlier.line == block.line:
                break
            try:
                _run(earlier, ns, loop)
            except Exception as exc:
                pytest.fail(f"an earlier block of the page, {earlier.id}, failed: {exc!r}")
        _run(block, ns, loop)
    finally:
        values = list(ns.values())
        for module in list(sys.modules.values()):
            if Path(getattr(module, "__file__", None) or "/").parent == Path.cwd():
                values += list(vars(module).values())
        loop.run_until_complete(_close(values))
        loop.close()
        asyncio.set_event_loop(None)


def test_the_collector_finds_the_blocks() -> None:
    """The README's quick start and the docs' blocks are seen (a broken fence regex would
    silently find nothing), and every not-run marker gives a reason."""
    assert any(block.page == "README.md" for block in ALL_BLOCKS)
    assert len({block.page for block in ALL_BLOCKS}) >= 10
    assert len(ALL_BLOCKS) >= 40
    assert all(block.not_run for block in ALL_BLOCKS if block.not_run is not None)
