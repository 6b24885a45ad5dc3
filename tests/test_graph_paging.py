"""Graph list paging, as Meta documents it, for every listing: templates and catalog products.

A page may be empty and still have a next one; the last page is the one without ``paging.next``
(its cursors may still be there); a ``next`` link without ``cursors.after`` carries the cursor in
its URL; a cursor that does not move ends the listing instead of paging for ever.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from waflow import AsyncWhatsApp, WhatsApp
from waflow.graph import next_cursor

TOKEN = "EAAGpagingTokenNotASecret"
BASE = "https://graph.facebook.com/v26.0"
Pages = dict[str | None, dict[str, Any]]
ACCOUNT: dict[str, Any] = {
    "access_token": TOKEN,
    "phone_number_id": "1",
    "waba_id": "waba",
    "catalog_id": "cat",
}


def _template(n: int) -> dict[str, Any]:
    return {
        "id": str(n),
        "name": f"t{n}",
        "language": "en_US",
        "status": "APPROVED",
        "category": "UTILITY",
        "components": [{"type": "BODY", "text": "Hallo"}],
    }


def _product(n: int) -> dict[str, Any]:
    return {"id": str(100 + n), "retailer_id": f"sku{n}", "name": f"Rad {n}"}


def _next(path: str, after: str) -> str:
    return f"{BASE}/{path}?limit=25&after={after}"


TEMPLATES_WITH_AN_EMPTY_PAGE: Pages = {
    None: {
        "data": [_template(1)],
        "paging": {"cursors": {"after": "C1"}, "next": _next("waba/message_templates", "C1")},
    },
    "C1": {  # empty, and not the last
        "data": [],
        "paging": {"cursors": {"after": "C2"}, "next": _next("waba/message_templates", "C2")},
    },
    "C2": {"data": [_template(3)], "paging": {"cursors": {"before": "C2", "after": "C3"}}},
}
PRODUCTS_WITH_A_NEXT_LINK_ONLY: Pages = {
    None: {"data": [_product(1)], "paging": {"next": _next("cat/products", "P1")}},
    "P1": {"data": [_product(2)], "paging": {}},
}
PRODUCTS_WITH_A_STUCK_CURSOR: Pages = {
    None: {"data": [_product(1)], "paging": {"cursors": {"after": "S"}, "next": "x?after=S"}},
    "S": {"data": [_product(2)], "paging": {"cursors": {"after": "S"}, "next": "x?after=S"}},
}


def _transport(pages: Pages, asked: list[str | None]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        after = request.url.params.get("after")
        asked.append(after)
        if len(asked) > 10:
            raise AssertionError("paging does not end")
        return httpx.Response(200, json=pages[after])

    return httpx.MockTransport(answer)


def _list_sync(pages: Pages, what: Callable[[WhatsApp], list[Any]]) -> tuple[list[Any], list[Any]]:
    asked: list[str | None] = []
    client = httpx.Client(transport=_transport(pages, asked))
    return what(WhatsApp(**ACCOUNT, http_client=client)), asked


async def _list_async(pages: Pages, what: str) -> tuple[list[Any], list[Any]]:
    asked: list[str | None] = []
    client = httpx.AsyncClient(transport=_transport(pages, asked))
    wa = AsyncWhatsApp(**ACCOUNT, http_client=client)
    if what == "templates":
        return [t.name async for t in wa.templates.list()], asked
    return [p.retailer_id async for p in wa.catalog.products()], asked


def test_an_empty_page_with_a_next_link_is_not_the_end() -> None:
    names, asked = _list_sync(
        TEMPLATES_WITH_AN_EMPTY_PAGE, lambda wa: [t.name for t in wa.templates.list()]
    )
    assert (names, asked) == (["t1", "t3"], [None, "C1", "C2"])


async def test_an_empty_page_with_a_next_link_is_not_the_end_async() -> None:
    assert await _list_async(TEMPLATES_WITH_AN_EMPTY_PAGE, "templates") == (
        ["t1", "t3"],
        [None, "C1", "C2"],
    )


def test_a_next_link_without_cursors_carries_the_cursor() -> None:
    skus, asked = _list_sync(
        PRODUCTS_WITH_A_NEXT_LINK_ONLY, lambda wa: [p.retailer_id for p in wa.catalog.products()]
    )
    assert (skus, asked) == (["sku1", "sku2"], [None, "P1"])


async def test_a_next_link_without_cursors_carries_the_cursor_async() -> None:
    assert await _list_async(PRODUCTS_WITH_A_NEXT_LINK_ONLY, "products") == (
        ["sku1", "sku2"],
        [None, "P1"],
    )


def test_a_cursor_that_does_not_move_ends_the_listing() -> None:
    skus, asked = _list_sync(
        PRODUCTS_WITH_A_STUCK_CURSOR, lambda wa: [p.retailer_id for p in wa.catalog.products()]
    )
    assert (skus, asked) == (["sku1", "sku2"], [None, "S"])


@pytest.mark.parametrize(
    ("data", "cursor"),
    [
        ({"paging": {"cursors": {"after": "A"}, "next": "u?after=B"}}, "A"),
        ({"paging": {"next": "https://graph.facebook.com/v26.0/x?limit=2&after=B"}}, "B"),
        ({"paging": {"cursors": {"after": "A"}}}, None),  # no next: the last page
        ({"paging": {"next": "u?limit=2"}}, None),  # nothing to follow
        ({}, None),
        ([], None),
    ],
)
def test_next_cursor(data: Any, cursor: str | None) -> None:
    assert next_cursor(data) == cursor
