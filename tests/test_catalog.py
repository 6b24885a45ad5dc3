"""The Commerce catalog: cursor paging, lookups, batch upserts and deletes with per-item results, the
cached Catalog view under a frozen clock, and messages built from catalog products."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from waflow import WhatsApp
from waflow.errors import (
    ConfigError,
    InvalidRequestError,
    MessageValidationError,
    PermissionDeniedError,
    ServerError,
)
from waflow.graph import GraphResponse
from waflow.testing import FakeGraphAPI, FrozenClock
from waflow.whatsapp.catalog import (
    ITEMS_BATCH_MAX,
    AsyncCatalog,
    Catalog,
    Product,
    ProductUpsert,
    format_price,
    parse_amount,
    parse_products_page,
)
from waflow.whatsapp.catalog_messages import (
    carousel_retailer_id,
    catalog_message,
    messenger_carousel,
    product_list_message,
    product_message,
)

CATALOG = "194836987003835"
CUSTOMER = "4915112345678"
PSID = "6543210987654321"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def fake(clock: FrozenClock) -> FakeGraphAPI:
    return FakeGraphAPI(clock=clock)


def stock(fake: FakeGraphAPI, count: int) -> list[Product]:
    """``count`` bikes in the fake's catalog, sku-00, sku-01, …"""
    return [
        fake.catalog.add(
            f"sku-{i:02d}",
            f"Stadtrad {i}",
            price=Decimal("499.00") + i,
            description="Leichtes Rad für die Stadt",
            image_url=f"https://shop.example/img/{i}.jpg",
            url=f"https://shop.example/p/sku-{i:02d}",
            brand="Velo",
        )
        for i in range(count)
    ]


def found(product: Product | None) -> Product:
    assert product is not None
    return product


def product_pages(fake: FakeGraphAPI) -> list[dict[str, str]]:
    """The query parameters of every products-list request the fake received."""
    return [r.params for r in fake.requests if r.path.endswith(f"/{CATALOG}/products")]


COMPLETE = {
    "description": "Robustes Lastenrad",
    "availability": "in stock",
    "condition": "new",
    "link": "https://shop.example/p/cargo",
    "image_link": "https://shop.example/img/cargo.jpg",
    "brand": "Velo",
}


# -- listing and lookups ---------------------------------------------------------------------------


def test_products_follow_three_cursor_pages_with_the_chosen_fields(fake: FakeGraphAPI) -> None:
    stock(fake, 7)
    wa = fake.whatsapp()

    products = list(wa.catalog.products(fields=["name", "price"], limit=3))

    assert [p.retailer_id for p in products] == [f"sku-{i:02d}" for i in range(7)]
    assert products[0].name == "Stadtrad 0"
    assert products[0].price == "€499.00"
    assert products[0].amount == Decimal("499.00")
    assert products[0].description is None  # not asked for, so Meta leaves it out
    pages = product_pages(fake)
    assert len(pages) == 3
    assert {p["fields"] for p in pages} == {"id,retailer_id,name,price"}
    assert "after" not in pages[0]
    assert pages[1]["after"] and pages[2]["after"] and pages[1]["after"] != pages[2]["after"]


async def test_async_products_follow_three_cursor_pages(fake: FakeGraphAPI) -> None:
    stock(fake, 7)
    wa = fake.async_whatsapp()

    names = [p.name async for p in wa.catalog.products(fields=["name"], limit=3)]

    assert names == [f"Stadtrad {i}" for i in range(7)]
    assert len(product_pages(fake)) == 3
    await wa.aclose()


def test_bad_page_size_fails_at_the_call(fake: FakeGraphAPI) -> None:
    with pytest.raises(ValueError, match="limit"):
        fake.whatsapp().catalog.products(limit=0)
    assert fake.requests == []


def test_pages_expose_each_page_lazily(fake: FakeGraphAPI) -> None:
    stock(fake, 5)
    pages = fake.whatsapp().catalog.pages(limit=2)
    first = next(pages)
    assert [p.retailer_id for p in first.products] == ["sku-00", "sku-01"]
    assert len(product_pages(fake)) == 1  # nothing fetched ahead
    assert [len(page.products) for page in pages] == [2, 1]


def test_last_page_is_the_one_without_next_even_when_cursors_remain() -> None:
    last = GraphResponse(
        {
            "data": [{"id": "1", "retailer_id": "a"}],
            "paging": {"cursors": {"before": "QQ", "after": "Qg"}},
        },
        200,
        {},
    )
    assert parse_products_page(last).after is None
    # An empty page can still point further: keep going while `next` is there.
    empty = GraphResponse(
        {"data": [], "paging": {"cursors": {"after": "Qw"}, "next": "https://x/next"}}, 200, {}
    )
    assert parse_products_page(empty).after == "Qw"


def test_filter_is_sent_as_json_and_applied(fake: FakeGraphAPI) -> None:
    stock(fake, 3)
    fake.catalog.add("sku-01", availability="out of stock")
    wa = fake.whatsapp()

    in_stock = list(wa.catalog.products(filter={"availability": {"eq": "in stock"}}))

    assert [p.retailer_id for p in in_stock] == ["sku-00", "sku-02"]
    assert product_pages(fake)[0]["filter"] == '{"availability":{"eq":"in stock"}}'


def test_product_by_retailer_id_or_product_id(fake: FakeGraphAPI) -> None:
    bike = stock(fake, 3)[1]
    wa = fake.whatsapp()

    by_sku = wa.catalog.product("sku-01")
    by_id = wa.catalog.product(bike.id, fields=["name"])

    assert by_sku is not None and by_sku.id == bike.id and by_sku.price == "€500.00"
    assert by_id is not None and by_id.retailer_id == "sku-01" and by_id.name == "Stadtrad 1"
    assert by_id.price is None  # only the chosen fields (and the keys) come back
    assert wa.catalog.product("no-such-sku") is None


def test_numeric_retailer_id_is_found_after_the_product_id_lookup_misses(
    fake: FakeGraphAPI,
) -> None:
    fake.catalog.add("4711", "Kölnisch Wasser", price="12.50")
    product = fake.whatsapp().catalog.product("4711")
    assert product is not None and product.name == "Kölnisch Wasser"
    assert fake.whatsapp().catalog.product("999999") is None


async def test_async_product_lookup(fake: FakeGraphAPI) -> None:
    stock(fake, 2)
    wa = fake.async_whatsapp()
    product = await wa.catalog.product("sku-01")
    assert product is not None and product.name == "Stadtrad 1"
    assert await wa.catalog.product("nope") is None
    await wa.aclose()


def test_product_keeps_unknown_fields_and_the_raw_item() -> None:
    raw = {"id": "1", "retailer_id": "a", "price": "€1,299.00", "new_meta_field": {"x": 1}}
    product = Product.model_validate(raw)
    assert product.raw == raw
    assert product.model_extra == {"new_meta_field": {"x": 1}}
    assert product.amount == Decimal("1299.00")


@pytest.mark.parametrize(
    ("text", "currency", "amount"),
    [
        ("€1,299.00", "EUR", Decimal("1299.00")),
        ("1.299,00 €", "EUR", Decimal("1299.00")),
        ("499.00 EUR", None, Decimal("499.00")),
        ("$12.5", "USD", Decimal("12.5")),
        ("¥1,500", "JPY", Decimal("1500")),
        ("KWD 1.250", "KWD", Decimal("1.250")),
        ("₹1,00,000.00", "INR", Decimal("100000.00")),
        ("Preis auf Anfrage", "EUR", None),
    ],
)
def test_amount_is_read_from_the_display_price(
    text: str, currency: str | None, amount: Decimal | None
) -> None:
    assert parse_amount(text, currency) == amount


def test_catalog_resource_without_catalog_id_says_what_to_set(fake: FakeGraphAPI) -> None:
    wa = fake.whatsapp(catalog_id=None)
    with pytest.raises(ConfigError, match="WAFLOW_CATALOG_ID"):
        wa.catalog.products()  # at the call, not at the first iteration
    with pytest.raises(ConfigError, match="WAFLOW_CATALOG_ID"):
        fake.async_whatsapp(catalog_id=None).catalog.pages()
    with pytest.raises(ConfigError, match="catalog_id="):
        wa.catalog.upsert([ProductUpsert(retailer_id="a", title="A")])
    assert fake.requests == []


def test_from_env_reads_the_catalog_id(fake: FakeGraphAPI) -> None:
    env = {
        "WAFLOW_ACCESS_TOKEN": fake.access_token,
        "WAFLOW_PHONE_NUMBER_ID": fake.phone_number_id,
        "WAFLOW_CATALOG_ID": CATALOG,
    }
    stock(fake, 1)
    wa = WhatsApp.from_env(env, http_client=fake.client())
    assert wa.catalog.catalog_id == CATALOG
    assert [p.retailer_id for p in wa.catalog.products()] == ["sku-00"]


# -- batch upsert and delete ----------------------------------------------------------------------


def test_batch_upsert_reports_per_item_failures(fake: FakeGraphAPI) -> None:
    stock(fake, 2)
    wa = fake.whatsapp()

    result = wa.catalog.upsert(
        [
            ProductUpsert(retailer_id="sku-00", price=59900, currency="EUR"),
            ProductUpsert(
                retailer_id="cargo-1", title="Lastenrad", price="1899.00 EUR", **COMPLETE
            ),
            ProductUpsert(retailer_id="cargo-2", title="Lastenrad ohne Angaben"),
        ]
    )

    assert not result.ok
    assert [item.retailer_id for item in result.succeeded] == ["sku-00", "cargo-1"]
    [failed] = result.failed
    assert failed.retailer_id == "cargo-2" and failed.method == "UPDATE"
    assert "Missing required field(s)" in failed.errors[0].message
    assert "price" in failed.errors[0].message and "link" in failed.errors[0].message
    assert result["cargo-1"].ok and result.handle is not None
    # Accepted items were applied, the refused one was not.
    updated, created = fake.catalog.get("sku-00"), fake.catalog.get("cargo-1")
    assert updated is not None and updated.price == "€599.00" and updated.name == "Stadtrad 0"
    assert created is not None and created.url == COMPLETE["link"]
    assert fake.catalog.get("cargo-2") is None
    # The request: one items_batch call, Meta's feed field names, UPDATE with upsert.
    body = fake.requests[-1].json
    assert fake.requests[-1].path == f"/v26.0/{CATALOG}/items_batch"
    assert body["item_type"] == "PRODUCT_ITEM" and body["allow_upsert"] is True
    assert body["requests"][0] == {
        "method": "UPDATE",
        "data": {"id": "sku-00", "price": "599.00 EUR"},
    }
    assert body["requests"][1]["data"]["title"] == "Lastenrad"


def test_items_refused_while_meta_processes_them_show_in_the_batch_status(
    fake: FakeGraphAPI,
) -> None:
    stock(fake, 2)
    fake.catalog.reject("sku-01", "Image could not be downloaded")
    wa = fake.whatsapp()

    result = wa.catalog.upsert(
        [
            {"id": "sku-00", "availability": "out of stock"},
            {"id": "sku-01", "image_url": "https://shop.example/broken.jpg"},
        ]
    )
    assert result.ok  # both passed validation ...
    status = wa.catalog.batch_status(result.handles[0])

    assert status.done and not status.ok  # ... but one was refused in processing
    assert status.ids_of_invalid_requests == ["sku-01"]
    assert status.errors_total_count == 1
    assert status.errors[0].message == "Image could not be downloaded"
    assert status.errors[0].model_extra == {"id": "sku-01"}
    assert found(fake.catalog.get("sku-00")).availability == "out of stock"
    assert found(fake.catalog.get("sku-01")).image_url == "https://shop.example/img/1.jpg"


def test_delete_removes_items_and_unknown_ids_are_harmless(fake: FakeGraphAPI) -> None:
    stock(fake, 3)
    result = fake.whatsapp().catalog.delete(["sku-00", "sku-02", "never-existed"])
    assert result.ok
    assert [(i.retailer_id, i.method) for i in result.items] == [
        ("sku-00", "DELETE"),
        ("sku-02", "DELETE"),
        ("never-existed", "DELETE"),
    ]
    assert [p.retailer_id for p in fake.catalog.products()] == ["sku-01"]
    assert fake.requests[-1].json["requests"][0] == {"method": "DELETE", "data": {"id": "sku-00"}}


async def test_async_upsert_delete_and_status(fake: FakeGraphAPI) -> None:
    wa = fake.async_whatsapp()
    result = await wa.catalog.upsert(
        [{"id": "cargo-1", "title": "Lastenrad", "price": "1899.00 EUR", **COMPLETE}]
    )
    assert result.ok
    assert (await wa.catalog.batch_status(result.handles[0])).ok
    assert (await wa.catalog.delete("cargo-1")).ok
    assert fake.catalog.products() == []
    await wa.aclose()


def test_everything_refused_means_no_handle(fake: FakeGraphAPI) -> None:
    result = fake.whatsapp().catalog.upsert([{"id": "lonely", "title": "Nur ein Titel"}])
    assert result.handles == [] and result.handle is None
    assert not result.ok


def test_batches_longer_than_metas_limit_are_split(fake: FakeGraphAPI) -> None:
    items = [ProductUpsert(retailer_id="x0", title="X0", **COMPLETE, price="1.00 EUR")]
    items += [
        ProductUpsert(retailer_id=f"y{i}", visibility="staging") for i in range(ITEMS_BATCH_MAX)
    ]
    result = fake.whatsapp().catalog.upsert(items)
    calls = [r for r in fake.requests if r.path.endswith("/items_batch")]
    assert [len(c.json["requests"]) for c in calls] == [ITEMS_BATCH_MAX, 1]
    assert len(result.items) == ITEMS_BATCH_MAX + 1
    # The y-items are new and incomplete, so Meta refuses them; x0 went through.
    assert len(result.failed) == ITEMS_BATCH_MAX and result["x0"].ok
    assert len(result.handles) == 1


@pytest.mark.parametrize(
    ("items", "fragment"),
    [
        ([{"id": "a", "price": "abc"}], "'499.00 EUR'"),
        ([{"id": "a", "price": 4990}], "needs currency="),
        ([{"id": "a", "price": 4.99, "currency": "EUR"}], "not float"),
        ([{"id": "a", "price": "499.00 USD", "currency": "EUR"}], "is in USD"),
        ([{"id": "a", "price": "499.5 JPY"}], "0 decimals"),
        ([{"id": "a", "colour": "rot"}], "colour"),
        ([{"id": "a", "availability": "in_stock"}], "availability"),
        ([{"id": "a", "link": "shop.example/p/a"}], "http(s)"),
        ([{"id": "x" * 101}], "retailer id <= 100"),
        ([{"id": "a"}, {"retailer_id": "a"}], "appears twice"),
    ],
)
def test_invalid_items_fail_before_any_request(
    fake: FakeGraphAPI, items: list[dict[str, Any]], fragment: str
) -> None:
    with pytest.raises(MessageValidationError) as info:
        fake.whatsapp().catalog.upsert(items)
    assert fragment in str(info.value)
    assert fake.requests == []


def test_upsert_model_takes_either_apis_names_and_sends_feed_names() -> None:
    item = ProductUpsert.model_validate(
        {
            "id": "sku-1",
            "name": "Stadtrad",
            "url": "https://shop.example/p/1",
            "image_url": "https://shop.example/i/1.jpg",
            "inventory": 3,
            "price": Decimal("499"),
            "currency": "eur",
            "additional_image_link": ["https://a/1.jpg", "https://a/2.jpg"],
        }
    )
    assert item.dump() == {
        "id": "sku-1",
        "title": "Stadtrad",
        "link": "https://shop.example/p/1",
        "image_link": "https://shop.example/i/1.jpg",
        "quantity_to_sell_on_facebook": 3,
        "price": "499.00 EUR",
        "additional_image_link": "https://a/1.jpg,https://a/2.jpg",
    }
    assert item.missing_for_create() == ["description", "availability", "condition", "brand"]


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (49900, "EUR", "499.00 EUR"),
        (500, "JPY", "500 JPY"),
        (1250, "KWD", "1.250 KWD"),
        (Decimal("19.9"), "USD", "19.90 USD"),
        ("7", "CHF", "7.00 CHF"),
    ],
)
def test_prices_in_minor_or_major_units(amount: Any, currency: str, text: str) -> None:
    assert format_price(amount, currency) == text


# -- the cached view ------------------------------------------------------------------------------


def test_reads_within_the_ttl_make_no_request(fake: FakeGraphAPI, clock: FrozenClock) -> None:
    stock(fake, 30)  # two pages of 25
    catalog = Catalog(fake.whatsapp().catalog, ttl=timedelta(minutes=10), clock=clock)

    assert found(catalog.get("sku-07")).name == "Stadtrad 7"
    assert len(product_pages(fake)) == 2  # the first read loads every page
    clock.advance(minutes=9, seconds=59)
    assert len(catalog.all()) == 30
    assert catalog.get("sku-29") is not None and catalog.get("nope") is None
    assert [p.retailer_id for p in catalog.search("stadtrad 12")] == ["sku-12"]
    assert len(product_pages(fake)) == 2
    assert catalog.loads == 1 and not catalog.is_stale


def test_copy_expires_after_the_ttl_and_reloads_once(
    fake: FakeGraphAPI, clock: FrozenClock
) -> None:
    stock(fake, 30)
    catalog = Catalog(fake.whatsapp().catalog, ttl=timedelta(minutes=10), clock=clock)
    catalog.all()
    fake.catalog.add("sku-new", "E-Bike", price="2499.00")
    assert catalog.get("sku-new") is None  # still the cached copy

    clock.advance(minutes=10)
    assert catalog.is_stale
    assert catalog.get("sku-new") is not None
    assert catalog.get("sku-00") is not None and len(catalog.all()) == 31

    assert catalog.loads == 2
    assert len(product_pages(fake)) == 4  # one reload: both pages again, once


def test_refresh_reloads_now(fake: FakeGraphAPI, clock: FrozenClock) -> None:
    stock(fake, 2)
    catalog = Catalog(fake.whatsapp().catalog, clock=clock)
    assert len(catalog.all()) == 2
    fake.catalog.add("sku-new", "E-Bike", price="2499.00")
    catalog.refresh()
    assert len(catalog.all()) == 3
    assert catalog.loads == 2 and len(product_pages(fake)) == 2


def test_view_uses_the_clients_clock_by_default(fake: FakeGraphAPI, clock: FrozenClock) -> None:
    stock(fake, 1)
    catalog = Catalog(fake.whatsapp().catalog)
    catalog.all()
    clock.advance(minutes=11)
    catalog.all()
    assert catalog.loads == 2


def test_failed_reload_serves_the_old_copy_for_a_while(
    fake: FakeGraphAPI, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    stock(fake, 2)
    wa = fake.whatsapp(max_retries=0)
    catalog = Catalog(wa.catalog, ttl=timedelta(minutes=10), clock=clock)
    catalog.all()
    clock.advance(minutes=10)

    with fake.outage(), caplog.at_level(logging.WARNING, logger="waflow.catalog"):
        assert catalog.get("sku-01") is not None  # stale, but the bot keeps answering
        requests = len(fake.requests)
        clock.advance(seconds=30)
        assert catalog.get("sku-01") is not None
        assert len(fake.requests) == requests  # no hammering while Meta is down
    assert "serving the cached copy" in caplog.text

    clock.advance(seconds=30)
    catalog.all()
    assert catalog.loads == 2


def test_first_load_failure_and_explicit_refresh_raise(
    fake: FakeGraphAPI, clock: FrozenClock
) -> None:
    catalog = Catalog(fake.whatsapp(max_retries=0).catalog, clock=clock)
    fake.fail_next(code=200, status=403, message="(#200) Requires catalog_management permission")
    with pytest.raises(PermissionDeniedError, match="catalog_management"):
        catalog.all()
    stock(fake, 1)
    catalog.all()
    fake.fail_next(status=500)
    with pytest.raises(ServerError):
        catalog.refresh()


def test_search_ignores_case_and_accents(fake: FakeGraphAPI, clock: FrozenClock) -> None:
    fake.catalog.add("m-1", "Müsli Bio", price="4.50", category="Frühstück")
    fake.catalog.add("c-1", "Café Crème", price="3.20", brand="Rösterei")
    fake.catalog.add("t-1", "Tee", price="2.00")
    catalog = Catalog(fake.whatsapp().catalog, clock=clock)
    assert [p.retailer_id for p in catalog.search("MUSLI")] == ["m-1"]
    assert [p.retailer_id for p in catalog.search("cafe roesterei")] == []
    assert [p.retailer_id for p in catalog.search("cafe rosterei")] == ["c-1"]
    assert [p.retailer_id for p in catalog.search("fruhstuck")] == ["m-1"]
    assert len(catalog.search("  ")) == 3


async def test_async_view_hits_expires_and_shares_one_reload(
    fake: FakeGraphAPI, clock: FrozenClock
) -> None:
    stock(fake, 30)
    wa = fake.async_whatsapp()
    catalog = AsyncCatalog(wa.catalog, ttl=timedelta(minutes=5), clock=clock)

    results = await asyncio.gather(*(catalog.get(f"sku-{i:02d}") for i in range(10)))
    assert all(results) and catalog.loads == 1  # ten concurrent first reads, one load
    clock.advance(minutes=4)
    assert len(await catalog.all()) == 30 and catalog.loads == 1
    clock.advance(minutes=1)
    assert [p.retailer_id for p in await catalog.search("stadtrad 3")] == [
        "sku-03",
        "sku-13",
        "sku-23",
    ]
    assert catalog.loads == 2 and len(product_pages(fake)) == 4
    await catalog.refresh()
    assert catalog.loads == 3
    await wa.aclose()


def test_ttl_must_be_positive(fake: FakeGraphAPI) -> None:
    with pytest.raises(ValueError, match="ttl"):
        Catalog(fake.whatsapp().catalog, ttl=timedelta(0))


# -- messages from catalog items ------------------------------------------------------------------


def test_product_message_body() -> None:
    bike = Product.model_validate({"id": "1", "retailer_id": "sku-07", "name": "Stadtrad"})
    message = product_message(CUSTOMER, CATALOG, bike, body="Passt das?", footer="Velo")
    assert message.to_body() == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": CUSTOMER,
        "type": "interactive",
        "interactive": {
            "type": "product",
            "body": {"text": "Passt das?"},
            "footer": {"text": "Velo"},
            "action": {"catalog_id": CATALOG, "product_retailer_id": "sku-07"},
        },
    }


def test_product_list_message_body_with_sections(fake: FakeGraphAPI) -> None:
    bikes = stock(fake, 3)
    message = product_list_message(
        CUSTOMER,
        CATALOG,
        "Unsere Räder",
        "Welches darf es sein?",
        {"Stadt": bikes[:2], "Extra": [bikes[2], "helm-1"]},
        footer="Lieferung in 2 Tagen",
    )
    assert message.to_body() == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": CUSTOMER,
        "type": "interactive",
        "interactive": {
            "type": "product_list",
            "header": {"type": "text", "text": "Unsere Räder"},
            "body": {"text": "Welches darf es sein?"},
            "footer": {"text": "Lieferung in 2 Tagen"},
            "action": {
                "catalog_id": CATALOG,
                "sections": [
                    {
                        "title": "Stadt",
                        "product_items": [
                            {"product_retailer_id": "sku-00"},
                            {"product_retailer_id": "sku-01"},
                        ],
                    },
                    {
                        "title": "Extra",
                        "product_items": [
                            {"product_retailer_id": "sku-02"},
                            {"product_retailer_id": "helm-1"},
                        ],
                    },
                ],
            },
        },
    }


def test_product_list_from_a_flat_sequence_is_one_section(fake: FakeGraphAPI) -> None:
    bikes = stock(fake, 30)
    message = product_list_message(CUSTOMER, CATALOG, "Alle Räder", "Bitte wählen", bikes)
    [section] = message.to_body()["interactive"]["action"]["sections"]
    assert "title" not in section and len(section["product_items"]) == 30
    fake.whatsapp().send(message)
    assert fake.sent.last.interactive_type == "product_list"


def test_product_list_limits_name_the_limit(fake: FakeGraphAPI) -> None:
    bikes = stock(fake, 31)
    with pytest.raises(MessageValidationError, match="<= 30"):
        product_list_message(CUSTOMER, CATALOG, "Räder", "Wählen", bikes)
    with pytest.raises(MessageValidationError, match=r"products \(all sections\) <= 30"):
        product_list_message(
            CUSTOMER, CATALOG, "Räder", "Wählen", {"A": bikes[:16], "B": bikes[16:]}
        )
    with pytest.raises(MessageValidationError, match="product sections <= 10"):
        product_list_message(CUSTOMER, CATALOG, "R", "W", {f"S{i}": [bikes[i]] for i in range(11)})
    with pytest.raises(MessageValidationError, match="header text <= 60"):
        product_list_message(CUSTOMER, CATALOG, "R" * 61, "W", bikes[:1])


def test_products_without_retailer_id_cannot_be_offered() -> None:
    anonymous = Product.model_validate({"id": "123"})
    with pytest.raises(MessageValidationError, match="no retailer_id"):
        product_message(CUSTOMER, CATALOG, anonymous)


def test_catalog_message_body() -> None:
    message = catalog_message(CUSTOMER, "Stöbern Sie in unserem Katalog", thumbnail="sku-07")
    assert message.to_body()["interactive"] == {
        "type": "catalog_message",
        "body": {"text": "Stöbern Sie in unserem Katalog"},
        "action": {
            "name": "catalog_message",
            "parameters": {"thumbnail_product_retailer_id": "sku-07"},
        },
    }
    plain = catalog_message(CUSTOMER, "Katalog").to_body()["interactive"]["action"]
    assert plain == {"name": "catalog_message"}


def test_messenger_carousel_body_and_payloads() -> None:
    products = [
        Product.model_validate(
            {
                "id": "1",
                "retailer_id": "sku-07",
                "name": "Stadtrad",
                "price": "€499.00",
                "currency": "EUR",
                "image_url": "https://shop.example/img/7.jpg",
                "url": "https://shop.example/p/7",
            }
        ),
        Product.model_validate({"id": "2", "retailer_id": "helm-1", "name": "Helm", "price": "29"}),
    ]
    message = messenger_carousel(PSID, products)
    assert message.to_body() == {
        "recipient": {"id": PSID},
        "messaging_type": "RESPONSE",
        "message": {
            "attachment": {
                "type": "template",
                "payload": {
                    "template_type": "generic",
                    "elements": [
                        {
                            "title": "Stadtrad",
                            "subtitle": "€499.00",
                            "image_url": "https://shop.example/img/7.jpg",
                            "default_action": {
                                "type": "web_url",
                                "url": "https://shop.example/p/7",
                            },
                            "buttons": [
                                {
                                    "type": "postback",
                                    "title": "Ansehen",
                                    "payload": "product:sku-07",
                                }
                            ],
                        },
                        {
                            "title": "Helm",
                            "subtitle": "29",
                            "buttons": [
                                {
                                    "type": "postback",
                                    "title": "Ansehen",
                                    "payload": "product:helm-1",
                                }
                            ],
                        },
                    ],
                },
            }
        },
    }
    payloads = [
        e["buttons"][0]["payload"]
        for e in message.to_body()["message"]["attachment"]["payload"]["elements"]
    ]
    assert [carousel_retailer_id(p) for p in payloads] == ["sku-07", "helm-1"]
    assert carousel_retailer_id("other:x") is None


def test_messenger_carousel_subtitles_can_be_written_by_the_shop() -> None:
    bike = Product.model_validate(
        {
            "id": "1",
            "retailer_id": "sku-07",
            "name": "Stadtrad",
            "price": "€499.00",
            "currency": "EUR",
        }
    )
    no_price = Product.model_validate({"id": "2", "retailer_id": "helm-1", "name": "Helm"})

    message = messenger_carousel(
        PSID,
        [bike, no_price],
        subtitle=lambda p: (
            None if p.amount is None else f"{p.amount:.2f} {p.currency}".replace(".", ",")
        ),
    )

    elements = message.to_body()["message"]["attachment"]["payload"]["elements"]
    assert elements[0]["subtitle"] == "499,00 EUR"
    assert "subtitle" not in elements[1]


def test_messenger_carousel_limits(fake: FakeGraphAPI) -> None:
    bikes = stock(fake, 11)
    with pytest.raises(MessageValidationError, match="generic template elements <= 10"):
        messenger_carousel(PSID, bikes)
    long = Product.model_validate({"id": "1", "retailer_id": "x", "name": "Rad " * 60})
    [element] = messenger_carousel(
        PSID, [long], button_title="Mehr", payload_prefix="p="
    ).to_body()["message"]["attachment"]["payload"]["elements"]
    assert len(element["title"]) == 80 and element["title"].endswith("…")
    assert element["buttons"][0] == {"type": "postback", "title": "Mehr", "payload": "p=x"}
    fake.messenger().send(messenger_carousel(PSID, bikes[:10]))
    assert fake.sent.last.type == "template"


def test_fake_catalog_ids_are_seeded_and_reset(clock: FrozenClock) -> None:
    first, second = FakeGraphAPI(clock=clock, seed=7), FakeGraphAPI(clock=clock, seed=7)
    ids = [p.id for p in stock(first, 3)]
    assert ids == [p.id for p in stock(second, 3)]
    handle = first.whatsapp().catalog.delete("sku-00").handle
    assert handle == second.whatsapp().catalog.delete("sku-00").handle
    first.reset()
    assert first.catalog.products() == []
    assert [p.id for p in stock(first, 3)] == ids


def test_fake_answers_graph_errors_like_meta(fake: FakeGraphAPI) -> None:
    stock(fake, 2)
    wa = fake.whatsapp()
    with pytest.raises(InvalidRequestError, match=r"nonexisting field \(colour\)"):
        list(wa.catalog.products(fields=["colour"]))
    with pytest.raises(InvalidRequestError, match="Unsupported filter operator"):
        list(wa.catalog.products(filter={"name": {"sounds_like": "Rad"}}))
    with pytest.raises(InvalidRequestError, match="Invalid handle"):
        wa.catalog.batch_status("AcNoSuchHandle")
    other = fake.whatsapp(catalog_id="111111111111111")
    with pytest.raises(InvalidRequestError, match="Unsupported get request"):
        list(other.catalog.products())


def test_fake_takes_form_encoded_batches_too(fake: FakeGraphAPI) -> None:
    # Meta's own SDKs post items_batch as form fields, with `requests` as JSON text.
    http = fake.client()
    requests = '[{"method": "DELETE", "data": {"id": "sku-00"}}]'
    response = http.post(
        f"https://graph.facebook.com/v26.0/{CATALOG}/items_batch",
        data={"item_type": "PRODUCT_ITEM", "requests": requests},
        headers={"Authorization": f"Bearer {fake.access_token}"},
    )
    assert response.status_code == 200 and response.json()["validation_status"] == []
