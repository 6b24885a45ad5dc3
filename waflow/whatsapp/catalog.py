"""The Commerce catalog: list and look up products, batch upserts and deletes, a cached view for bots.

The catalog is the one behind a shop's product, product-list and catalog messages. ``wa.catalog``
(a :class:`CatalogResource`, or :class:`AsyncCatalogResource` on :class:`~waflow.AsyncWhatsApp`)
talks to Meta's Commerce catalog API::

    for product in wa.catalog.products(fields=["name", "price"]):   # every cursor page, lazily
        print(product.retailer_id, product.name, product.price)

    result = wa.catalog.upsert([ProductUpsert(retailer_id="rad-01", title="Stadtrad", price="499.00 EUR")])
    for item in result.failed:
        print(item.retailer_id, [e.message for e in item.errors])

Bots read products through :class:`Catalog` (or :class:`AsyncCatalog`), a copy of the whole catalog
held in memory for a TTL on an injected clock and reloaded, all pages at once, when it has expired.

Two shapes of product data exist at Meta, and waflow keeps them apart: :class:`Product` is what
``GET /{catalog-id}/products`` answers (Product Item fields: ``name``, ``url``, ``image_url``, a
``price`` formatted for display such as ``"€499.00"``, ``currency``), while :class:`ProductUpsert`
is what ``POST /{catalog-id}/items_batch`` takes for ``item_type=PRODUCT_ITEM`` (feed fields:
``id`` = retailer id, ``title``, ``link``, ``image_link``, ``price`` as ``"499.00 EUR"``).

Request builders and response parsers live here once; the sync and async resources and views only
perform the I/O.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import unicodedata
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from waflow._models import InboundModel, OutboundModel, check_count, check_length, violation
from waflow.clock import Clock
from waflow.errors import APIError, APIResponseValidationError, APIStatusError, ConfigError
from waflow.graph import GraphRequest, GraphResponse, next_cursor

if TYPE_CHECKING:
    from waflow.graph import AsyncGraph, SyncGraph

__all__ = [
    "DEFAULT_FIELDS",
    "DEFAULT_TTL",
    "ITEMS_BATCH_MAX",
    "REQUIRED_FOR_CREATE",
    "AsyncCatalog",
    "AsyncCatalogResource",
    "Availability",
    "BatchIssue",
    "BatchItemResult",
    "BatchMethod",
    "BatchResult",
    "BatchStatus",
    "Catalog",
    "CatalogResource",
    "Condition",
    "Product",
    "ProductPage",
    "ProductUpsert",
    "currency_exponent",
    "format_price",
    "parse_amount",
]

logger = logging.getLogger("waflow.catalog")

#: Product Item fields waflow asks for when ``fields`` is not given; ``id`` and ``retailer_id``
#: are always asked for, since products are keyed by them.
DEFAULT_FIELDS: tuple[str, ...] = (
    "id",
    "retailer_id",
    "name",
    "description",
    "price",
    "sale_price",
    "currency",
    "availability",
    "condition",
    "image_url",
    "url",
    "brand",
    "category",
    "inventory",
    "visibility",
    "retailer_product_group_id",
)
_KEY_FIELDS = ("id", "retailer_id")
#: Meta takes at most this many requests in one ``items_batch`` call; longer batches are split.
ITEMS_BATCH_MAX = 5000
#: How long :class:`Catalog` serves its copy before reloading it.
DEFAULT_TTL = timedelta(minutes=10)
#: How soon a view tries again after a reload failed while it still had (stale) products to serve.
_RETRY_STALE_AFTER = timedelta(minutes=1)
#: Feed fields Meta requires before it creates an item (an update may carry any subset).
REQUIRED_FOR_CREATE: tuple[str, ...] = (
    "title",
    "description",
    "availability",
    "condition",
    "price",
    "link",
    "image_link",
    "brand",
)
_RETAILER_ID_MAX = 100
_TITLE_MAX = 200
_DESCRIPTION_MAX = 9999
_BRAND_MAX = 100
_ADDITIONAL_IMAGES_MAX = 20

Availability = Literal[
    "in stock",
    "out of stock",
    "preorder",
    "available for order",
    "discontinued",
    "pending",
    "mark_as_sold",
]
"""Values of a product's ``availability`` (US English, with spaces, as Meta spells them)."""
Condition = Literal[
    "new", "refurbished", "used", "used_like_new", "used_good", "used_fair", "cpo", "open_box_new"
]
"""Values of a product's ``condition``."""
BatchMethod = Literal["CREATE", "UPDATE", "DELETE"]
"""What one request of an ``items_batch`` call does to its item."""

# ISO 4217 minor units where they are not 2: Meta's "499.00 EUR" form needs the right number of
# decimals, and a price in minor units can only be converted knowing them.
_ZERO_DECIMAL = frozenset(
    {
        "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG",
        "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF",
    }
)  # fmt: skip
_THREE_DECIMAL = frozenset({"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"})
_CURRENCY = re.compile(r"[A-Z]{3}")
_FEED_PRICE = re.compile(r"(?P<amount>\d+(?:\.\d{1,3})?) (?P<currency>[A-Z]{3})")
_NUMBER = re.compile(r"\d[\d.,'\s\u00a0\u202f]*")


def currency_exponent(currency: str) -> int:
    """The number of decimals of ``currency`` (ISO 4217 minor units): 0 for JPY, 3 for KWD, else 2."""
    code = currency.upper()
    if code in _ZERO_DECIMAL:
        return 0
    if code in _THREE_DECIMAL:
        return 3
    return 2


def format_price(amount: int | Decimal | str, currency: str) -> str:
    """A price in the ``"499.00 EUR"`` form of ``items_batch``.

    An ``int`` is in minor units (``49900`` EUR cents); a ``Decimal`` or ``str`` is in major units
    (``Decimal("499")``, ``"499.00"``). Floats are refused: they cannot hold most prices exactly.
    Raises :class:`~waflow.errors.MessageValidationError` for a malformed currency or amount.
    """
    code = currency.upper()
    if not _CURRENCY.fullmatch(code):
        raise violation(
            "currency must be an ISO 4217 code such as EUR", limit="currency: ISO 4217 code"
        )
    exponent = currency_exponent(code)
    if isinstance(amount, (bool, float)):
        raise violation(
            "give a price as int minor units, Decimal or str, not "
            f"{type(amount).__name__} (binary floats cannot hold most prices exactly)",
            field="price",
        )
    if isinstance(amount, int):
        value = Decimal(amount).scaleb(-exponent)
    else:
        try:
            value = Decimal(str(amount).strip())
        except InvalidOperation:
            raise violation("price must be a number such as 499.00", field="price") from None
    if not value.is_finite() or value < 0:
        raise violation("price must be a non-negative number", field="price")
    quantum = Decimal(1).scaleb(-exponent)
    if value != value.quantize(quantum):
        raise violation(
            f"{code} prices have {exponent} decimals at most, got {value}", field="price"
        )
    return f"{value.quantize(quantum)} {code}"


def parse_amount(text: str | None, currency: str | None = None) -> Decimal | None:
    """The amount in a price as Meta displays it (``"€1,299.00"``, ``"1.299,00 €"``, ``"499.00 EUR"``).

    The last separator followed by other than three digits is the decimal mark; a lone separator
    followed by three digits is a thousands separator unless ``currency`` has three decimals.
    ``None`` when ``text`` holds no number.
    """
    if not text:
        return None
    match = _NUMBER.search(text)
    if match is None:
        return None
    number = re.sub(r"['\s\u00a0\u202f]", "", match.group()).rstrip(".,")
    dots, commas = number.count("."), number.count(",")
    if dots and commas:
        decimal_mark = "." if number.rfind(".") > number.rfind(",") else ","
    elif dots + commas == 0:
        decimal_mark = None
    else:
        mark = "." if dots else ","
        decimals = len(number) - number.rfind(mark) - 1
        three_decimal = currency is not None and currency_exponent(currency) == 3
        is_decimal = (dots + commas) == 1 and (decimals != 3 or three_decimal)
        decimal_mark = mark if is_decimal else None
    if decimal_mark is None:
        digits = number.replace(".", "").replace(",", "")
    else:
        whole, _, fraction = number.rpartition(decimal_mark)
        digits = whole.replace(".", "").replace(",", "") + "." + fraction
    try:
        return Decimal(digits)
    except InvalidOperation:  # pragma: no cover - the pattern only lets digits and marks through
        return None


# -- models --------------------------------------------------------------------------------------


class Product(InboundModel):
    """A product as ``GET /{catalog-id}/products`` or ``GET /{product-id}`` answers it.

    ``id`` is Meta's product id; ``retailer_id`` is the shop's own id (SKU), the one product and
    product-list messages and orders refer to. ``price`` is Meta's display text (``"€499.00"``,
    formatted for the catalog's locale) and ``currency`` its ISO code; :attr:`amount` parses the
    number out of it. Only the fields that were asked for are set; unknown fields are kept
    (``model_extra``) and ``raw`` is the item exactly as Meta sent it.
    """

    id: str
    retailer_id: str | None = None
    name: str | None = None
    description: str | None = None
    price: str | None = None
    sale_price: str | None = None
    currency: str | None = None
    availability: str | None = None
    condition: str | None = None
    image_url: str | None = None
    url: str | None = None
    brand: str | None = None
    category: str | None = None
    inventory: int | None = None
    visibility: str | None = None
    retailer_product_group_id: str | None = None
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)

    @model_validator(mode="before")
    @classmethod
    def _keep_raw(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "raw" not in data:
            return {**data, "raw": dict(data)}
        return data

    @property
    def amount(self) -> Decimal | None:
        """The number in :attr:`price` (``Decimal("1299.00")`` for ``"€1,299.00"``), if any."""
        return parse_amount(self.price, self.currency)

    @property
    def price_text(self) -> str | None:
        """The price as a customer should read it: Meta's text, with the currency code added when
        Meta gave a bare number."""
        if self.price is None:
            return None
        bare = _NUMBER.fullmatch(self.price.strip()) is not None
        return f"{self.price} {self.currency}" if bare and self.currency else self.price

    @property
    def in_stock(self) -> bool:
        """True unless Meta says the product cannot be ordered now."""
        return self.availability not in ("out of stock", "discontinued", "mark_as_sold")


class ProductUpsert(OutboundModel):
    """The ``data`` of one ``items_batch`` request for ``item_type=PRODUCT_ITEM`` (feed fields).

    ``retailer_id`` (sent as ``id``; ``id=`` is accepted too) is required and at most 100
    characters. ``title`` (``name=`` accepted), ``link`` (``url=``) and ``image_link``
    (``image_url=``) take the names of either API. ``price`` and ``sale_price`` are ``"499.00 EUR"``
    strings, or an ``int`` in minor units / a ``Decimal`` in major units together with
    ``currency=`` (which is not sent itself). An update may carry any subset of fields; creating
    an item needs every field of :data:`REQUIRED_FOR_CREATE`. Unknown fields are refused.
    """

    retailer_id: str = Field(
        validation_alias=AliasChoices("retailer_id", "id"), serialization_alias="id"
    )
    title: str | None = Field(default=None, validation_alias=AliasChoices("title", "name"))
    description: str | None = None
    availability: Availability | None = None
    condition: Condition | None = None
    price: str | None = None
    sale_price: str | None = None
    currency: str | None = Field(default=None, exclude=True)
    link: str | None = Field(default=None, validation_alias=AliasChoices("link", "url"))
    image_link: str | None = Field(
        default=None, validation_alias=AliasChoices("image_link", "image_url")
    )
    additional_image_link: list[str] | None = None
    brand: str | None = None
    google_product_category: str | None = None
    fb_product_category: str | None = None
    item_group_id: str | None = None
    quantity_to_sell_on_facebook: int | None = Field(
        default=None,
        ge=0,
        validation_alias=AliasChoices("quantity_to_sell_on_facebook", "inventory"),
    )
    visibility: Literal["published", "staging"] | None = None
    status: Literal["active", "archived"] | None = None
    color: str | None = None
    size: str | None = None
    gender: Literal["female", "male", "unisex"] | None = None
    age_group: (
        Literal["adult", "all ages", "teen", "kids", "toddler", "infant", "newborn"] | None
    ) = None
    material: str | None = None
    pattern: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _prices(cls, data: Any) -> Any:
        # Prices given as numbers become Meta's "499.00 EUR" text here, before field validation,
        # so the model holds (and sends) exactly one representation.
        if not isinstance(data, Mapping):
            return data
        values = dict(data)
        currency = values.get("currency")
        for name in ("price", "sale_price"):
            value = values.get(name)
            feed = _FEED_PRICE.fullmatch(value) if isinstance(value, str) else None
            if feed is not None and isinstance(currency, str) and currency.upper() != feed[2]:
                raise violation(
                    f"{name} is in {feed[2]}, but currency={currency!r} was given",
                    field=name,
                )
            if value is None or feed is not None:
                continue
            if isinstance(value, str) and not re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):
                raise violation(
                    f"{name} must look like '499.00 EUR' (amount, space, ISO currency code)",
                    limit=f"{name}: '<amount> <ISO 4217 code>'",
                    field=name,
                )
            if not isinstance(currency, str):
                raise violation(
                    f"{name} without a currency code needs currency= (such as 'EUR')",
                    field=name,
                )
            values[name] = format_price(value, currency)
        return values

    @field_validator("retailer_id")
    @classmethod
    def _retailer_id(cls, value: str) -> str:
        check_length(value.strip(), _RETAILER_ID_MAX, "retailer id", minimum=1)
        return value

    @field_validator("link", "image_link")
    @classmethod
    def _url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise violation(f"{info.field_name} must be an http(s) URL", field=info.field_name)
        return value

    @field_validator("additional_image_link")
    @classmethod
    def _urls(cls, value: list[str] | None) -> list[str] | None:
        for url in value or ():
            if not url.startswith(("http://", "https://")) or "," in url:
                raise violation(
                    "additional_image_link takes http(s) URLs without commas",
                    field="additional_image_link",
                )
        return value

    @field_serializer("additional_image_link")
    def _comma_separated(self, value: list[str] | None) -> str | None:
        # The feed specification gives this field as one text of comma-separated URLs.
        return None if value is None else ",".join(value)

    @model_validator(mode="after")
    def _limits(self) -> ProductUpsert:
        check_length(self.title, _TITLE_MAX, "product title", minimum=1)
        check_length(self.description, _DESCRIPTION_MAX, "product description")
        check_length(self.brand, _BRAND_MAX, "product brand")
        check_count(self.additional_image_link, _ADDITIONAL_IMAGES_MAX, "additional images")
        for name in ("price", "sale_price"):
            value = getattr(self, name)
            match = _FEED_PRICE.fullmatch(value) if value is not None else None
            if match is not None:
                # Re-checks the decimals for the currency ("499.5 JPY" has one too many).
                format_price(match["amount"], match["currency"])
        return self

    def missing_for_create(self) -> list[str]:
        """The fields of :data:`REQUIRED_FOR_CREATE` this item lacks (empty when it can be created)."""
        return [name for name in REQUIRED_FOR_CREATE if getattr(self, name) is None]

    def to_request(self, method: Literal["CREATE", "UPDATE"] = "UPDATE") -> dict[str, Any]:
        """This item as one entry of ``items_batch``'s ``requests``."""
        return {"method": method, "data": self.dump()}


class ProductPage(InboundModel):
    """One page of ``GET /{catalog-id}/products``: its products and the cursor of the next page
    (``None`` on the last page, which Meta marks by leaving out ``paging.next``)."""

    products: list[Product]
    after: str | None = None


class BatchIssue(InboundModel):
    """An error or warning Meta reported for an item: ``message``, and whatever else Meta sent
    with it (the batch status adds the retailer ``id`` and sometimes a ``line``)."""

    message: str = ""


class BatchItemResult(InboundModel):
    """What became of one request of a batch: ``ok`` unless Meta reported errors for it.

    ``ok`` means Meta accepted the request for processing; processing itself is asynchronous and
    its outcome is reported by :meth:`CatalogResource.batch_status`.
    """

    retailer_id: str
    method: BatchMethod
    errors: list[BatchIssue] = Field(default_factory=list)
    warnings: list[BatchIssue] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when Meta reported no error for this item."""
        return not self.errors


class BatchResult(InboundModel):
    """The answer to one :meth:`~CatalogResource.upsert` or :meth:`~CatalogResource.delete`.

    ``items`` holds one result per item sent, in order. ``handles`` identify the accepted batches
    for :meth:`~CatalogResource.batch_status` (one per ``items_batch`` call; none when Meta ingested
    nothing). ``raw`` holds Meta's answers as received.
    """

    items: list[BatchItemResult] = Field(default_factory=list)
    handles: list[str] = Field(default_factory=list)
    raw: list[dict[str, Any]] = Field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        """True when no item was refused."""
        return all(item.ok for item in self.items)

    @property
    def failed(self) -> list[BatchItemResult]:
        """The items Meta refused, in order."""
        return [item for item in self.items if not item.ok]

    @property
    def succeeded(self) -> list[BatchItemResult]:
        """The items Meta accepted, in order."""
        return [item for item in self.items if item.ok]

    @property
    def handle(self) -> str | None:
        """The handle of the (first) accepted batch, or ``None``."""
        return self.handles[0] if self.handles else None

    def __getitem__(self, retailer_id: str) -> BatchItemResult:
        for item in self.items:
            if item.retailer_id == retailer_id:
                return item
        raise KeyError(retailer_id)


class BatchStatus(InboundModel):
    """The processing state of a batch (``GET /{catalog-id}/check_batch_request_status``).

    ``status`` is lower-cased: ``scheduled``, ``dispatched``, ``started``, then ``finished``,
    ``canceled`` or ``error``. ``errors`` and ``warnings`` are samples; the ``*_total_count``
    fields give the totals and ``ids_of_invalid_requests`` the retailer ids that failed.
    """

    handle: str | None = None
    status: str
    errors: list[BatchIssue] = Field(default_factory=list)
    errors_total_count: int = 0
    warnings: list[BatchIssue] = Field(default_factory=list)
    warnings_total_count: int = 0
    ids_of_invalid_requests: list[str] = Field(default_factory=list)
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)

    @field_validator("status", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @property
    def done(self) -> bool:
        """True once Meta stopped processing the batch (finished, canceled or failed)."""
        return self.status in ("finished", "canceled", "cancelled", "error")

    @property
    def ok(self) -> bool:
        """True when the batch finished and no item failed."""
        return self.status == "finished" and not self.errors_total_count and not self.errors


# -- request builders and response parsers ----------------------------------------------------------


def _field_list(fields: Iterable[str] | None) -> str:
    chosen = DEFAULT_FIELDS if fields is None else tuple(fields)
    ordered = dict.fromkeys((*_KEY_FIELDS, *chosen))
    return ",".join(name for name in ordered if name)


def _filter_param(filter: Mapping[str, Any] | str | None) -> str | None:
    if filter is None or isinstance(filter, str):
        return filter
    return json.dumps(filter, separators=(",", ":"), ensure_ascii=False)


def products_request(
    catalog_id: str,
    *,
    fields: Iterable[str] | None = None,
    limit: int | None = None,
    filter: Mapping[str, Any] | str | None = None,
    after: str | None = None,
) -> GraphRequest:
    """``GET /{catalog-id}/products``: one page, from cursor ``after`` (the first when ``None``)."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    params: dict[str, Any] = {"fields": _field_list(fields)}
    if limit is not None:
        params["limit"] = limit
    filter_text = _filter_param(filter)
    if filter_text is not None:
        params["filter"] = filter_text
    if after is not None:
        params["after"] = after
    return GraphRequest("GET", f"/{catalog_id}/products", params=params)


def parse_products_page(response: GraphResponse) -> ProductPage:
    """The products of one page and the cursor to the next (``None`` when this is the last)."""
    data = response.data if isinstance(response.data, dict) else None
    items = data.get("data") if data is not None else None
    if not isinstance(items, list):
        raise APIResponseValidationError("the products list answered without a `data` array")
    return ProductPage(
        products=[Product.model_validate(item) for item in items], after=next_cursor(data)
    )


def product_request(product_id: str, *, fields: Iterable[str] | None = None) -> GraphRequest:
    """``GET /{product-id}`` with the chosen fields."""
    return GraphRequest("GET", f"/{product_id}", params={"fields": _field_list(fields)})


def retailer_lookup_request(
    catalog_id: str, retailer_id: str, *, fields: Iterable[str] | None = None
) -> GraphRequest:
    """The products list filtered to one retailer id."""
    return products_request(
        catalog_id, fields=fields, limit=1, filter={"retailer_id": {"eq": retailer_id}}
    )


def parse_product(response: GraphResponse) -> Product:
    """One product from ``GET /{product-id}``."""
    if not isinstance(response.data, dict) or "id" not in response.data:
        raise APIResponseValidationError("the product lookup answered without an `id`")
    return Product.model_validate(response.data)


def _is_missing_object(exc: APIStatusError) -> bool:
    # Code 100 is Graph's "object does not exist / does not support this operation" (subcode 33).
    return exc.code == 100


def _coerce_items(items: Iterable[ProductUpsert | Mapping[str, Any]]) -> list[ProductUpsert]:
    coerced = [
        item if isinstance(item, ProductUpsert) else ProductUpsert.model_validate(item)
        for item in items
    ]
    _check_unique_ids([item.retailer_id for item in coerced])
    return coerced


def _check_unique_ids(retailer_ids: Sequence[str]) -> None:
    # Meta reports results per retailer id: two requests for one id could not be told apart.
    seen: set[str] = set()
    for retailer_id in retailer_ids:
        if retailer_id in seen:
            raise violation(
                f"retailer id {retailer_id!r} appears twice in one batch; Meta reports results "
                "per retailer id, so send each item once",
                limit="retailer ids unique per batch",
                field="retailer_id",
            )
        seen.add(retailer_id)


@dataclass(frozen=True)
class BatchPlan:
    """The ``items_batch`` calls of one upsert or delete, and the (retailer id, method) of every
    request of each call, which :func:`parse_batch` matches Meta's per-item answers against."""

    requests: list[GraphRequest]
    sent: list[list[tuple[str, BatchMethod]]]


def _plan(catalog_id: str, entries: list[tuple[str, BatchMethod, dict[str, Any]]]) -> BatchPlan:
    requests: list[GraphRequest] = []
    sent: list[list[tuple[str, BatchMethod]]] = []
    for start in range(0, len(entries), ITEMS_BATCH_MAX):
        chunk = entries[start : start + ITEMS_BATCH_MAX]
        body = {
            "item_type": "PRODUCT_ITEM",
            "allow_upsert": True,
            "requests": [{"method": method, "data": data} for _, method, data in chunk],
        }
        # UPDATE (with allow_upsert) and DELETE land on the same state when repeated, so a batch
        # that timed out or met a 5xx may be retried safely.
        requests.append(
            GraphRequest("POST", f"/{catalog_id}/items_batch", json=body, idempotent=True)
        )
        sent.append([(retailer_id, method) for retailer_id, method, _ in chunk])
    return BatchPlan(requests, sent)


def upsert_batch(catalog_id: str, items: Iterable[ProductUpsert | Mapping[str, Any]]) -> BatchPlan:
    """``POST /{catalog-id}/items_batch`` calls that create or update ``items`` (UPDATE with
    ``allow_upsert``), at most :data:`ITEMS_BATCH_MAX` requests each."""
    entries: list[tuple[str, BatchMethod, dict[str, Any]]] = [
        (item.retailer_id, "UPDATE", item.dump()) for item in _coerce_items(items)
    ]
    return _plan(catalog_id, entries)


def delete_batch(catalog_id: str, retailer_ids: str | Iterable[str]) -> BatchPlan:
    """``POST /{catalog-id}/items_batch`` calls that delete the items with ``retailer_ids``."""
    ids = [retailer_ids] if isinstance(retailer_ids, str) else list(retailer_ids)
    for retailer_id in ids:
        check_length(retailer_id.strip(), _RETAILER_ID_MAX, "retailer id", minimum=1)
    _check_unique_ids(ids)
    entries: list[tuple[str, BatchMethod, dict[str, Any]]] = [
        (retailer_id, "DELETE", {"id": retailer_id}) for retailer_id in ids
    ]
    return _plan(catalog_id, entries)


def _issues(value: Any) -> list[BatchIssue]:
    if not isinstance(value, list):
        return []
    return [
        BatchIssue.model_validate(issue if isinstance(issue, dict) else {"message": str(issue)})
        for issue in value
    ]


def parse_batch(
    responses: Sequence[GraphResponse], sent: Sequence[Sequence[tuple[str, BatchMethod]]]
) -> BatchResult:
    """One :class:`BatchResult` from the answers ``{handles, validation_status}`` of the calls."""
    items: list[BatchItemResult] = []
    handles: list[str] = []
    raws: list[dict[str, Any]] = []
    for response, requested in zip(responses, sent, strict=True):
        data = response.data if isinstance(response.data, dict) else {}
        raws.append(data)
        found = data.get("handles")
        if isinstance(found, list):
            handles.extend(h for h in found if isinstance(h, str))
        reported: dict[str, tuple[list[BatchIssue], list[BatchIssue]]] = {}
        statuses = data.get("validation_status")
        for status in statuses if isinstance(statuses, list) else []:
            if isinstance(status, dict) and status.get("retailer_id") is not None:
                errors, warnings = reported.setdefault(str(status["retailer_id"]), ([], []))
                errors.extend(_issues(status.get("errors")))
                warnings.extend(_issues(status.get("warnings")))
        for retailer_id, method in requested:
            errors, warnings = reported.pop(retailer_id, ([], []))
            items.append(
                BatchItemResult(
                    retailer_id=retailer_id, method=method, errors=errors, warnings=warnings
                )
            )
        # Anything Meta reported about an id that was not sent is kept, never dropped.
        for retailer_id, (errors, warnings) in reported.items():
            items.append(
                BatchItemResult(
                    retailer_id=retailer_id,
                    method=requested[0][1],
                    errors=errors,
                    warnings=warnings,
                )
            )
    return BatchResult(items=items, handles=handles, raw=raws)


def batch_status_request(catalog_id: str, handle: str) -> GraphRequest:
    """``GET /{catalog-id}/check_batch_request_status?handle=…``."""
    if not handle:
        raise ValueError("a batch handle is required")
    return GraphRequest(
        "GET", f"/{catalog_id}/check_batch_request_status", params={"handle": handle}
    )


def parse_batch_status(response: GraphResponse, handle: str) -> BatchStatus:
    """The status object, from Meta's ``{"data": [status]}`` (or a bare status object)."""
    data = response.data
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"][0] if data["data"] else None
    if not isinstance(data, dict) or "status" not in data:
        raise APIResponseValidationError(f"batch status of {handle!r} answered without a `status`")
    return BatchStatus.model_validate({"handle": handle, **data, "raw": data})


# -- resources ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ProductsQuery:
    """One products listing: what stays the same from page to page."""

    catalog_id: str
    fields: tuple[str, ...] | None
    limit: int | None
    filter: Mapping[str, Any] | str | None

    def request(self, after: str | None) -> GraphRequest:
        return products_request(
            self.catalog_id, fields=self.fields, limit=self.limit, filter=self.filter, after=after
        )


class _ResourceBase:
    _graph: SyncGraph | AsyncGraph

    def __init__(self, catalog_id: str | None) -> None:
        self._catalog_id = catalog_id

    @property
    def catalog_id(self) -> str:
        """The catalog this resource works on; :class:`ConfigError` when none was configured."""
        if not self._catalog_id:
            raise ConfigError(
                "the catalog API needs a catalog id: pass catalog_id= to the client "
                "(or set WAFLOW_CATALOG_ID)"
            )
        return self._catalog_id

    @property
    def clock(self) -> Clock:
        """The client's clock (the default clock of :class:`Catalog` views)."""
        return self._graph.clock

    def _query(
        self,
        fields: Iterable[str] | None,
        limit: int | None,
        filter: Mapping[str, Any] | str | None,
    ) -> _ProductsQuery:
        # Built, and so checked, when a listing is asked for, not when its first page is fetched.
        query = _ProductsQuery(
            self.catalog_id, None if fields is None else tuple(fields), limit, filter
        )
        query.request(None)
        return query

    def __repr__(self) -> str:
        return f"{type(self).__name__}(catalog_id={self._catalog_id!r})"


class CatalogResource(_ResourceBase):
    """The Commerce catalog of a :class:`~waflow.WhatsApp` client (``wa.catalog``).

    Every method raises :class:`~waflow.errors.ConfigError` when the client has no ``catalog_id``,
    :class:`~waflow.errors.MessageValidationError` for invalid items before any request, and
    :class:`~waflow.errors.APIError` subclasses when Meta refuses.
    """

    _graph: SyncGraph

    def __init__(self, graph: SyncGraph, catalog_id: str | None) -> None:
        super().__init__(catalog_id)
        self._graph = graph

    def pages(
        self,
        *,
        fields: Iterable[str] | None = None,
        limit: int | None = None,
        filter: Mapping[str, Any] | str | None = None,
    ) -> Iterator[ProductPage]:
        """Every page of the products list, fetched lazily one at a time (see :meth:`products`)."""
        return self._pages(self._query(fields, limit, filter))

    def _pages(self, query: _ProductsQuery) -> Iterator[ProductPage]:
        after: str | None = None
        while True:
            page = parse_products_page(self._graph.request(query.request(after)))
            yield page
            if page.after is None or page.after == after:  # the end, or a cursor that is stuck
                return
            after = page.after

    def products(
        self,
        *,
        fields: Iterable[str] | None = None,
        limit: int | None = None,
        filter: Mapping[str, Any] | str | None = None,
    ) -> Iterator[Product]:
        """Every product of the catalog, following the cursor pages lazily.

        ``fields`` selects Product Item fields (default :data:`DEFAULT_FIELDS`; ``id`` and
        ``retailer_id`` are always included). ``limit`` is the page size. ``filter`` is Meta's
        filter rule, as a mapping (``{"availability": {"eq": "in stock"}}``) or JSON text. A
        missing catalog id or a bad ``limit`` raises here, before iteration starts.
        """
        pages = self.pages(fields=fields, limit=limit, filter=filter)
        return (product for page in pages for product in page.products)

    def product(
        self, product_id_or_retailer_id: str, *, fields: Iterable[str] | None = None
    ) -> Product | None:
        """One product by Meta's product id or the shop's retailer id; ``None`` when neither exists.

        A numeric value is tried as a product id first, then as a retailer id (retailer ids may be
        numeric too); anything else is looked up as a retailer id.
        """
        key = product_id_or_retailer_id
        if key.isdigit():
            try:
                return parse_product(self._graph.request(product_request(key, fields=fields)))
            except APIStatusError as exc:
                if not _is_missing_object(exc):
                    raise
        request = retailer_lookup_request(self.catalog_id, key, fields=fields)
        page = parse_products_page(self._graph.request(request))
        return next((p for p in page.products if p.retailer_id == key), None)

    def upsert(self, items: Iterable[ProductUpsert | Mapping[str, Any]]) -> BatchResult:
        """Create or update ``items`` (``items_batch`` UPDATE with ``allow_upsert``).

        Batches longer than :data:`ITEMS_BATCH_MAX` are sent as several calls. Per-item refusals
        do not raise: they are in :attr:`BatchResult.failed`.
        """
        plan = upsert_batch(self.catalog_id, items)
        return parse_batch([self._graph.request(r) for r in plan.requests], plan.sent)

    def delete(self, retailer_ids: str | Iterable[str]) -> BatchResult:
        """Delete the items with these retailer ids (``items_batch`` DELETE)."""
        plan = delete_batch(self.catalog_id, retailer_ids)
        return parse_batch([self._graph.request(r) for r in plan.requests], plan.sent)

    def batch_status(self, handle: str) -> BatchStatus:
        """How far Meta got with the batch of ``handle`` (from :attr:`BatchResult.handles`)."""
        response = self._graph.request(batch_status_request(self.catalog_id, handle))
        return parse_batch_status(response, handle)


class AsyncCatalogResource(_ResourceBase):
    """Async twin of :class:`CatalogResource` (``wa.catalog`` on :class:`~waflow.AsyncWhatsApp`)."""

    _graph: AsyncGraph

    def __init__(self, graph: AsyncGraph, catalog_id: str | None) -> None:
        super().__init__(catalog_id)
        self._graph = graph

    def pages(
        self,
        *,
        fields: Iterable[str] | None = None,
        limit: int | None = None,
        filter: Mapping[str, Any] | str | None = None,
    ) -> AsyncIterator[ProductPage]:
        """Every page of the products list, fetched lazily one at a time (``async for``)."""
        return self._pages(self._query(fields, limit, filter))

    async def _pages(self, query: _ProductsQuery) -> AsyncIterator[ProductPage]:
        after: str | None = None
        while True:
            page = parse_products_page(await self._graph.request(query.request(after)))
            yield page
            if page.after is None or page.after == after:  # the end, or a cursor that is stuck
                return
            after = page.after

    def products(
        self,
        *,
        fields: Iterable[str] | None = None,
        limit: int | None = None,
        filter: Mapping[str, Any] | str | None = None,
    ) -> AsyncIterator[Product]:
        """Every product of the catalog, following the cursor pages lazily (``async for``)."""
        return self._products(self.pages(fields=fields, limit=limit, filter=filter))

    @staticmethod
    async def _products(pages: AsyncIterator[ProductPage]) -> AsyncIterator[Product]:
        async for page in pages:
            for product in page.products:
                yield product

    async def product(
        self, product_id_or_retailer_id: str, *, fields: Iterable[str] | None = None
    ) -> Product | None:
        """One product by Meta's product id or the shop's retailer id; ``None`` when neither exists."""
        key = product_id_or_retailer_id
        if key.isdigit():
            try:
                response = await self._graph.request(product_request(key, fields=fields))
                return parse_product(response)
            except APIStatusError as exc:
                if not _is_missing_object(exc):
                    raise
        request = retailer_lookup_request(self.catalog_id, key, fields=fields)
        page = parse_products_page(await self._graph.request(request))
        return next((p for p in page.products if p.retailer_id == key), None)

    async def upsert(self, items: Iterable[ProductUpsert | Mapping[str, Any]]) -> BatchResult:
        """Create or update ``items``; per-item refusals are in :attr:`BatchResult.failed`."""
        plan = upsert_batch(self.catalog_id, items)
        return parse_batch([await self._graph.request(r) for r in plan.requests], plan.sent)

    async def delete(self, retailer_ids: str | Iterable[str]) -> BatchResult:
        """Delete the items with these retailer ids (``items_batch`` DELETE)."""
        plan = delete_batch(self.catalog_id, retailer_ids)
        return parse_batch([await self._graph.request(r) for r in plan.requests], plan.sent)

    async def batch_status(self, handle: str) -> BatchStatus:
        """How far Meta got with the batch of ``handle`` (from :attr:`BatchResult.handles`)."""
        response = await self._graph.request(batch_status_request(self.catalog_id, handle))
        return parse_batch_status(response, handle)


# -- cached views ------------------------------------------------------------------------------------


def _fold(text: str) -> str:
    # Customers type without accents and in any case: "cafe" should find "Café", "MUSLI" "Müsli".
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


_SEARCHED = ("retailer_id", "name", "description", "brand", "category")


class _CatalogCache:
    """The state shared by :class:`Catalog` and :class:`AsyncCatalog`: products by retailer id,
    when they were loaded, and when the next load is due (all on the injected clock)."""

    def __init__(self, ttl: timedelta, clock: Clock) -> None:
        if ttl <= timedelta(0):
            raise ValueError(f"ttl must be positive, got {ttl}")
        self.ttl = ttl
        self.clock = clock
        self.products: dict[str, Product] = {}
        self.loaded = False
        self.due_at = 0.0  # monotonic seconds; <= now means a load is due
        self.loads = 0

    def stale(self) -> bool:
        return not self.loaded or self.clock.monotonic() >= self.due_at

    def store(self, products: Iterable[Product]) -> None:
        # Built aside and swapped in whole: a reader never sees a half-loaded catalog.
        fresh = {p.retailer_id: p for p in products if p.retailer_id is not None}
        self.products = fresh
        self.loaded = True
        self.loads += 1
        self.due_at = self.clock.monotonic() + self.ttl.total_seconds()

    def keep_stale(self, exc: APIError) -> bool:
        """After a failed automatic reload: serve the old copy for a while if there is one."""
        if not self.loaded:
            return False
        retry_in = min(self.ttl, _RETRY_STALE_AFTER).total_seconds()
        self.due_at = self.clock.monotonic() + retry_in
        logger.warning(
            "catalog reload failed, serving the cached copy for %.0fs: %s", retry_in, exc
        )
        return True

    def search(self, text: str) -> list[Product]:
        words = _fold(text).split()
        if not words:
            return list(self.products.values())
        found = []
        for product in self.products.values():
            haystack = _fold(" ".join(str(getattr(product, f) or "") for f in _SEARCHED))
            if all(word in haystack for word in words):
                found.append(product)
        return found


class _CatalogViewBase:
    _cache: _CatalogCache

    @property
    def ttl(self) -> timedelta:
        """How long a loaded copy is served before the next access reloads it."""
        return self._cache.ttl

    @property
    def loads(self) -> int:
        """How many times the whole catalog was loaded (for metrics and tests)."""
        return self._cache.loads

    @property
    def is_stale(self) -> bool:
        """True when the next read will reload the catalog first."""
        return self._cache.stale()


class Catalog(_CatalogViewBase):
    """A copy of the whole catalog that bots read, reloaded once its ``ttl`` has passed.

    ``resource`` is ``wa.catalog``. Time is read from ``clock`` (default: the client's clock), so a
    :class:`~waflow.testing.FrozenClock` decides when the copy expires. The first read loads every
    page; reads within the TTL make no request; the first read after it reloads every page. If an
    automatic reload fails while an older copy exists, that copy is served and the reload retried
    after a minute (at most the TTL); :meth:`refresh` always raises. Safe to share between threads.

    ``fields`` and ``filter`` are passed to :meth:`CatalogResource.products` (``fields`` defaults to
    :data:`DEFAULT_FIELDS`).
    """

    def __init__(
        self,
        resource: CatalogResource,
        *,
        ttl: timedelta = DEFAULT_TTL,
        clock: Clock | None = None,
        fields: Iterable[str] | None = None,
        filter: Mapping[str, Any] | str | None = None,
    ) -> None:
        self._resource = resource
        self._cache = _CatalogCache(ttl, clock or resource.clock)
        self._fields = None if fields is None else tuple(fields)
        self._filter = filter
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Load every page now, whatever the TTL says."""
        with self._lock:
            self._load()

    def get(self, retailer_id: str) -> Product | None:
        """The product with ``retailer_id``, or ``None``."""
        self._fresh()
        return self._cache.products.get(retailer_id)

    def all(self) -> list[Product]:
        """Every product, in Meta's order."""
        self._fresh()
        return list(self._cache.products.values())

    def search(self, text: str) -> list[Product]:
        """Products whose retailer id, name, description, brand or category contain every word of
        ``text`` (case- and accent-insensitive), in Meta's order."""
        self._fresh()
        return self._cache.search(text)

    def _load(self) -> None:
        self._cache.store(self._resource.products(fields=self._fields, filter=self._filter))

    def _fresh(self) -> None:
        if not self._cache.stale():
            return
        with self._lock:
            if not self._cache.stale():  # another thread reloaded while this one waited
                return
            try:
                self._load()
            except APIError as exc:
                if not self._cache.keep_stale(exc):
                    raise


class AsyncCatalog(_CatalogViewBase):
    """Async twin of :class:`Catalog` over ``wa.catalog`` of an :class:`~waflow.AsyncWhatsApp`;
    concurrent reads of an expired copy share one reload."""

    def __init__(
        self,
        resource: AsyncCatalogResource,
        *,
        ttl: timedelta = DEFAULT_TTL,
        clock: Clock | None = None,
        fields: Iterable[str] | None = None,
        filter: Mapping[str, Any] | str | None = None,
    ) -> None:
        self._resource = resource
        self._cache = _CatalogCache(ttl, clock or resource.clock)
        self._fields = None if fields is None else tuple(fields)
        self._filter = filter
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        """Load every page now, whatever the TTL says."""
        async with self._lock:
            await self._load()

    async def get(self, retailer_id: str) -> Product | None:
        """The product with ``retailer_id``, or ``None``."""
        await self._fresh()
        return self._cache.products.get(retailer_id)

    async def all(self) -> list[Product]:
        """Every product, in Meta's order."""
        await self._fresh()
        return list(self._cache.products.values())

    async def search(self, text: str) -> list[Product]:
        """Products matching every word of ``text`` (see :meth:`Catalog.search`)."""
        await self._fresh()
        return self._cache.search(text)

    async def _load(self) -> None:
        products = self._resource.products(fields=self._fields, filter=self._filter)
        self._cache.store([product async for product in products])

    async def _fresh(self) -> None:
        if not self._cache.stale():
            return
        async with self._lock:
            if not self._cache.stale():
                return
            try:
                await self._load()
            except APIError as exc:
                if not self._cache.keep_stale(exc):
                    raise
