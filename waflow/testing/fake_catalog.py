"""The Commerce catalog of :class:`~waflow.testing.FakeGraphAPI` (``fake.catalog``).

It serves what :mod:`waflow.whatsapp.catalog` uses, the way Meta shapes it:

- ``GET /{catalog-id}/products`` with ``fields``, ``limit`` (default 25), ``after`` and ``filter``;
  cursor paging in which the last page has no ``paging.next`` (its cursors stay, as at Meta);
- ``GET /{product-id}`` with ``fields`` (unknown ids fall through to the fake's other routes);
- ``POST /{catalog-id}/items_batch`` for ``item_type=PRODUCT_ITEM``: each request is validated with
  waflow's own :class:`~waflow.whatsapp.catalog.ProductUpsert`; a refused request is reported in
  ``validation_status`` (``retailer_id``, ``errors[].message``) and not applied, the others are;
  ``handles`` is empty when nothing was ingested;
- ``GET /{catalog-id}/check_batch_request_status?handle=…`` (batches finish at once; items refused
  with :meth:`FakeCatalog.reject` show up there as errors and ``ids_of_invalid_requests``).

Seed it with :meth:`FakeCatalog.add`; product ids and batch handles come from a seeded sequence.
Choices where Meta's documentation is silent (marked so a reader can revisit them): fields that
are not asked for are left out, and with no ``fields`` only ``id`` is returned; ``CREATE`` of an
existing item updates it; ``DELETE`` of an unknown item is a no-op; display prices are formatted
in the en_US style (``€1,299.00``).
"""

from __future__ import annotations

import base64
import json
import random
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import httpx
import respx

from waflow.errors import MessageValidationError
from waflow.whatsapp.catalog import (
    DEFAULT_FIELDS,
    ITEMS_BATCH_MAX,
    Product,
    ProductUpsert,
    currency_exponent,
)

__all__ = ["DEFAULT_CATALOG_ID", "READABLE_FIELDS", "FakeCatalog", "display_price"]

#: The catalog id of Meta's own examples.
DEFAULT_CATALOG_ID = "194836987003835"
_VERSION = r"/v\d+\.\d+"
_DEFAULT_PAGE_SIZE = 25
#: Product Item fields the fake can answer; asking for others is Graph's error 100, as at Meta.
READABLE_FIELDS = frozenset(
    {
        *DEFAULT_FIELDS,
        "quantity_to_sell_on_facebook",
        "fb_product_category",
        "color",
        "size",
        "gender",
        "age_group",
        "material",
        "pattern",
        "review_status",
        "additional_image_urls",
    }
)
_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "INR": "₹", "BRL": "R$"}
# ProductUpsert (feed) field -> Product Item (read) field, where the two APIs name them differently.
_READ_NAMES = {
    "title": "name",
    "link": "url",
    "image_link": "image_url",
    "google_product_category": "category",
    "item_group_id": "retailer_product_group_id",
}
_STRING_OPERATORS: dict[str, Callable[[str, Any], bool]] = {
    "eq": lambda value, arg: value == str(arg),
    "neq": lambda value, arg: value != str(arg),
    "contains": lambda value, arg: str(arg) in value,
    "not_contains": lambda value, arg: str(arg) not in value,
    "i_contains": lambda value, arg: str(arg).casefold() in value.casefold(),
    "i_not_contains": lambda value, arg: str(arg).casefold() not in value.casefold(),
    "starts_with": lambda value, arg: value.startswith(str(arg)),
    "i_starts_with": lambda value, arg: value.casefold().startswith(str(arg).casefold()),
    "is_any": lambda value, arg: isinstance(arg, list) and value in [str(a) for a in arg],
    "is_not_any": lambda value, arg: isinstance(arg, list) and value not in [str(a) for a in arg],
}

#: ``router.route`` of a respx router.
RouteFactory = Callable[..., respx.Route]


def display_price(amount: Decimal, currency: str) -> str:
    """A price as the fake's Graph displays it: ``€1,299.00``, or ``CHF 12.50`` without a symbol."""
    exponent = currency_exponent(currency)
    number = f"{amount:,.{exponent}f}"
    symbol = _SYMBOLS.get(currency)
    return f"{symbol}{number}" if symbol else f"{currency} {number}"


def _error(message: str, *, subcode: int | None = None) -> httpx.Response:
    # Imported here: fake_graph imports this module to own a FakeCatalog.
    from waflow.testing.fake_graph import graph_error

    return graph_error(400, f"(#100) {message}", code=100, subcode=subcode)


class _BadRequest(Exception):
    """A request the fake answers with Graph's error 100."""


@dataclass
class _Item:
    product_id: str
    catalog_id: str
    retailer_id: str
    fields: dict[str, Any]
    amount: Decimal | None = None
    currency: str | None = None

    def read(self) -> dict[str, Any]:
        """Every field the Graph would answer for this product."""
        data: dict[str, Any] = {"id": self.product_id, "retailer_id": self.retailer_id}
        if self.amount is not None and self.currency is not None:
            data["price"] = display_price(self.amount, self.currency)
            data["currency"] = self.currency
        data.update(self.fields)
        return data


@dataclass
class _Batch:
    handle: str
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def status(self) -> dict[str, Any]:
        return {
            "handle": self.handle,
            "status": "finished",
            "errors": self.errors,
            "errors_total_count": len(self.errors),
            "warnings": self.warnings,
            "warnings_total_count": len(self.warnings),
            "ids_of_invalid_requests": sorted({str(e["id"]) for e in self.errors}),
        }


class FakeCatalog:
    """A stateful fake of one (or more) Commerce catalogs, owned by a FakeGraphAPI.

    ``catalog_id`` is the catalog it serves (more with :meth:`add_catalog`); ``seed`` makes product
    ids and batch handles repeatable. :meth:`reset` (called by ``FakeGraphAPI.reset``) empties it.
    """

    def __init__(self, catalog_id: str = DEFAULT_CATALOG_ID, *, seed: int = 0) -> None:
        self.catalog_id = catalog_id
        self.catalog_ids = {catalog_id}
        self.seed = seed
        self._lock = threading.RLock()
        self.reset()

    # -- state ---------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget every product, batch and planned rejection; restart the id sequence."""
        with self._lock:
            self._rng = random.Random(f"catalog:{self.seed}")
            self._items: dict[str, _Item] = {}  # by product id, in insertion order
            self._index: dict[tuple[str, str], str] = {}  # (catalog id, retailer id) -> product id
            self._batches: dict[str, _Batch] = {}
            self._rejections: dict[str, str] = {}

    def add_catalog(self, catalog_id: str) -> None:
        """Serve another catalog id too."""
        self.catalog_ids.add(catalog_id)

    def add(
        self,
        item: str | ProductUpsert,
        name: str | None = None,
        *,
        price: Decimal | str | None = None,
        currency: str = "EUR",
        catalog_id: str | None = None,
        **fields: Any,
    ) -> Product:
        """Put a product into the catalog (or change it) and return it as the Graph would.

        ``item`` is a retailer id, with ``name``, ``price`` (major units, ``Decimal("499.00")``),
        ``currency`` and further Product Item fields (``description``, ``image_url``, ``url``,
        ``brand``, ``category``, ``inventory``, ``availability`` — default ``in stock`` —,
        ``condition`` — ``new`` —, ``visibility`` — ``published`` —, …); or a ready
        :class:`ProductUpsert`, applied as if Meta had accepted it (seeding does not enforce the
        fields Meta requires to create an item; ``items_batch`` does).
        """
        with self._lock:
            target = catalog_id or self.catalog_id
            if isinstance(item, ProductUpsert):
                return Product.model_validate(self._apply(target, item).read())
            values: dict[str, Any] = {
                "availability": "in stock",
                "condition": "new",
                "visibility": "published",
                **({"name": name} if name is not None else {}),
                **fields,
            }
            unknown = set(values) - READABLE_FIELDS
            if unknown:
                raise ValueError(f"not Product Item fields: {', '.join(sorted(unknown))}")
            existing = self._find(target, item)
            stored = existing or self._new_item(target, item)
            stored.fields.update(values)
            if price is not None:
                stored.amount, stored.currency = Decimal(str(price)), currency.upper()
            return Product.model_validate(stored.read())

    def get(self, retailer_id: str, *, catalog_id: str | None = None) -> Product | None:
        """The product with ``retailer_id`` as the Graph would answer it, or ``None``."""
        with self._lock:
            found = self._find(catalog_id or self.catalog_id, retailer_id)
            return None if found is None else Product.model_validate(found.read())

    def products(self, *, catalog_id: str | None = None) -> list[Product]:
        """Every product of the catalog, in the order the Graph lists them."""
        with self._lock:
            target = catalog_id or self.catalog_id
            return [
                Product.model_validate(item.read())
                for item in self._items.values()
                if item.catalog_id == target
            ]

    def reject(self, retailer_id: str, message: str = "Image could not be downloaded") -> None:
        """Make Meta's asynchronous processing refuse the next batch request for ``retailer_id``.

        The request passes validation (the item is ``ok`` in the batch answer) but is not
        applied, and :meth:`~waflow.whatsapp.catalog.CatalogResource.batch_status` reports it.
        """
        with self._lock:
            self._rejections[retailer_id] = message

    # -- internals -----------------------------------------------------------------------------

    def _find(self, catalog_id: str, retailer_id: str) -> _Item | None:
        product_id = self._index.get((catalog_id, retailer_id))
        return None if product_id is None else self._items[product_id]

    def _new_item(self, catalog_id: str, retailer_id: str) -> _Item:
        product_id = str(self._rng.randrange(10**15, 10**16))
        while product_id in self._items:  # pragma: no cover - a 1 in 10^15 collision
            product_id = str(self._rng.randrange(10**15, 10**16))
        item = _Item(product_id, catalog_id, retailer_id, {})
        self._items[product_id] = item
        self._index[(catalog_id, retailer_id)] = product_id
        return item

    def _new_handle(self) -> str:
        return "Ac" + base64.urlsafe_b64encode(self._rng.randbytes(30)).decode().rstrip("=")

    def _apply(self, catalog_id: str, upsert: ProductUpsert) -> _Item:
        stored = self._find(catalog_id, upsert.retailer_id) or self._new_item(
            catalog_id, upsert.retailer_id
        )
        for name, value in upsert.dump().items():
            if name == "id":
                continue
            if name in ("price", "sale_price"):
                amount, currency = value.split(" ")
                if name == "price":
                    stored.amount, stored.currency = Decimal(amount), currency
                else:
                    stored.fields["sale_price"] = display_price(Decimal(amount), currency)
            elif name == "quantity_to_sell_on_facebook":
                stored.fields["inventory"] = value
                stored.fields[name] = value
            elif name == "additional_image_link":
                stored.fields["additional_image_urls"] = value.split(",")
            elif name != "status":
                stored.fields[_READ_NAMES.get(name, name)] = value
        return stored

    # -- routes --------------------------------------------------------------------------------

    def install_routes(self, route: RouteFactory) -> None:
        """Add the catalog routes to a respx router (before any catch-all ``GET /{id}`` route)."""
        route(method="GET", path__regex=rf"^{_VERSION}/(?P<node>\d+)/products$").mock(
            side_effect=self._list_products
        )
        route(method="POST", path__regex=rf"^{_VERSION}/(?P<node>\d+)/items_batch$").mock(
            side_effect=self._items_batch
        )
        route(
            method="GET",
            path__regex=rf"^{_VERSION}/(?P<node>\d+)/check_batch_request_status$",
        ).mock(side_effect=self._batch_status)
        # respx hands back the existing route for an identical pattern (and .mock() then replaces
        # its handler): the group name keeps this one distinct from other ``GET /{id}`` routes.
        route(method="GET", path__regex=rf"^{_VERSION}/(?P<product_id>\d+)$").mock(
            side_effect=self._get_product
        )

    @staticmethod
    def _fields(request: httpx.Request) -> list[str]:
        text = request.url.params.get("fields")
        names = [name.strip() for name in text.split(",") if name.strip()] if text else []
        unknown = [name for name in names if name not in READABLE_FIELDS]
        if unknown:
            raise _BadRequest(
                f"Tried accessing nonexisting field ({unknown[0]}) on node type (ProductItem)"
            )
        # Graph always answers the id, whatever was asked for.
        return ["id", *(name for name in names if name != "id")]

    @staticmethod
    def _select(item: _Item, fields: Iterable[str]) -> dict[str, Any]:
        data = item.read()
        return {name: data[name] for name in fields if name in data}

    def _list_products(self, request: httpx.Request, node: str) -> httpx.Response | None:
        if node not in self.catalog_ids:
            return None  # not a catalog: the fake's catch-all answers it
        with self._lock:
            try:
                fields = self._fields(request)
                limit = self._limit(request)
                rule = self._filter(request)
                matching = [
                    item
                    for item in self._items.values()
                    if item.catalog_id == node and _matches(item.read(), rule)
                ]
                start = self._start(matching, request.url.params.get("after"))
            except _BadRequest as exc:
                return _error(str(exc))
            page = matching[start : start + limit]
            body: dict[str, Any] = {"data": [self._select(item, fields) for item in page]}
            if page:
                paging: dict[str, Any] = {
                    "cursors": {
                        "before": _cursor(page[0].product_id),
                        "after": _cursor(page[-1].product_id),
                    }
                }
                if start + limit < len(matching):
                    next_url = request.url.copy_set_param("after", _cursor(page[-1].product_id))
                    paging["next"] = str(next_url)
                body["paging"] = paging
            return httpx.Response(200, json=body)

    @staticmethod
    def _limit(request: httpx.Request) -> int:
        text = request.url.params.get("limit")
        if text is None:
            return _DEFAULT_PAGE_SIZE
        if not text.isdigit() or int(text) < 1:
            raise _BadRequest("Param limit must be a positive integer")
        return int(text)

    @staticmethod
    def _filter(request: httpx.Request) -> Any:
        text = request.url.params.get("filter")
        if text is None:
            return None
        try:
            rule = json.loads(text)
        except ValueError:
            raise _BadRequest("Param filter must be a JSON-encoded filter rule") from None
        _check_rule(rule)
        return rule

    @staticmethod
    def _start(items: list[_Item], after: str | None) -> int:
        if after is None:
            return 0
        product_id = _uncursor(after)
        for index, item in enumerate(items):
            if item.product_id == product_id:
                return index + 1
        raise _BadRequest("Invalid cursor (after)")

    def _get_product(self, request: httpx.Request, product_id: str) -> httpx.Response | None:
        with self._lock:
            item = self._items.get(product_id)
            if item is None:
                return None  # not a product: maybe media, or the catch-all answers it
            try:
                fields = self._fields(request)
            except _BadRequest as exc:
                return _error(str(exc))
            return httpx.Response(200, json=self._select(item, fields))

    def _batch_status(self, request: httpx.Request, node: str) -> httpx.Response | None:
        if node not in self.catalog_ids:
            return None
        handle = request.url.params.get("handle")
        with self._lock:
            if not handle:
                return _error("The parameter handle is required")
            batch = self._batches.get(handle)
            if batch is None:
                return _error("Invalid handle")
            return httpx.Response(200, json={"data": [batch.status()]})

    def _items_batch(self, request: httpx.Request, node: str) -> httpx.Response | None:
        if node not in self.catalog_ids:
            return None
        with self._lock:
            try:
                params = _body_params(request)
                requests = _requests_param(params)
            except _BadRequest as exc:
                return _error(str(exc))
            allow_upsert = params.get("allow_upsert", True) not in (False, "false", "0", 0)
            validation: list[dict[str, Any]] = []
            batch = _Batch(self._new_handle())
            ingested = 0
            for entry in requests:
                method, retailer_id, data = entry
                errors = self._ingest(node, method, retailer_id, data, allow_upsert, batch)
                if errors:
                    validation.append(
                        {
                            "retailer_id": retailer_id,
                            "errors": [{"message": m} for m in errors],
                            "warnings": [],
                        }
                    )
                else:
                    ingested += 1
            handles = []
            if ingested:
                self._batches[batch.handle] = batch
                handles.append(batch.handle)
            return httpx.Response(200, json={"handles": handles, "validation_status": validation})

    def _ingest(
        self,
        catalog_id: str,
        method: str,
        retailer_id: str,
        data: dict[str, Any],
        allow_upsert: bool,
        batch: _Batch,
    ) -> list[str]:
        """Apply one request; return the validation errors that refuse it (then nothing changed)."""
        existing = self._find(catalog_id, retailer_id)
        if method == "DELETE":
            if existing is not None:
                del self._items[existing.product_id]
                del self._index[(catalog_id, retailer_id)]
            return []
        try:
            upsert = ProductUpsert.model_validate(data)
        except MessageValidationError as exc:
            return [str(exc)]
        if existing is None:
            if method == "UPDATE" and not allow_upsert:
                return ["No item with this retailer id exists and allow_upsert is false"]
            missing = upsert.missing_for_create()
            if missing:
                return [f"Missing required field(s) for a new item: {', '.join(missing)}"]
        rejection = self._rejections.pop(retailer_id, None)
        if rejection is not None:
            batch.errors.append({"id": retailer_id, "message": rejection})
            return []
        self._apply(catalog_id, upsert)
        return []


def _cursor(product_id: str) -> str:
    return base64.urlsafe_b64encode(f"pid:{product_id}".encode()).decode()


def _uncursor(cursor: str) -> str:
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except ValueError:
        raise _BadRequest("Invalid cursor (after)") from None
    return text.removeprefix("pid:")


def _check_rule(rule: Any) -> None:
    if not isinstance(rule, dict) or not rule:
        raise _BadRequest("A filter rule must be a non-empty JSON object")
    for key, condition in rule.items():
        if key in ("and", "or"):
            if not isinstance(condition, list) or not condition:
                raise _BadRequest(f"Filter operator {key} takes a list of rules")
            for part in condition:
                _check_rule(part)
            continue
        if key not in READABLE_FIELDS:
            raise _BadRequest(f"Unknown filter field: {key}")
        if not isinstance(condition, dict) or not condition:
            raise _BadRequest(f"Filter on {key} needs an operator such as eq")
        for operator in condition:
            if operator not in _STRING_OPERATORS:
                raise _BadRequest(f"Unsupported filter operator: {operator}")


def _matches(data: Mapping[str, Any], rule: Any) -> bool:
    if rule is None:
        return True
    for key, condition in rule.items():
        if key == "and" and not all(_matches(data, part) for part in condition):
            return False
        if key == "or" and not any(_matches(data, part) for part in condition):
            return False
        if key in ("and", "or"):
            continue
        value = "" if data.get(key) is None else str(data[key])
        if not all(_STRING_OPERATORS[op](value, arg) for op, arg in condition.items()):
            return False
    return True


def _body_params(request: httpx.Request) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "")
    try:
        if "application/json" in content_type:
            body = json.loads(request.content or b"{}")
            if not isinstance(body, dict):
                raise _BadRequest("The request body must be a JSON object")
            return body
        form = parse_qs(request.content.decode(), keep_blank_values=True)
        return {key: values[-1] for key, values in form.items()}
    except (ValueError, UnicodeDecodeError):
        raise _BadRequest("The request body could not be parsed") from None


def _requests_param(params: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    if params.get("item_type") != "PRODUCT_ITEM":
        raise _BadRequest("Param item_type must be PRODUCT_ITEM (the only type the fake serves)")
    requests = params.get("requests")
    if isinstance(requests, str):  # form posts carry it as JSON text
        try:
            requests = json.loads(requests)
        except ValueError:
            raise _BadRequest("Param requests must be a JSON array") from None
    if not isinstance(requests, list) or not requests:
        raise _BadRequest("The parameter requests is required")
    if len(requests) > ITEMS_BATCH_MAX:
        raise _BadRequest(f"Param requests can contain at most {ITEMS_BATCH_MAX} items")
    parsed = []
    for entry in requests:
        method = entry.get("method") if isinstance(entry, dict) else None
        data = entry.get("data") if isinstance(entry, dict) else None
        if not isinstance(method, str) or method.upper() not in ("CREATE", "UPDATE", "DELETE"):
            raise _BadRequest("Each request needs a method: CREATE, UPDATE or DELETE")
        if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not data["id"]:
            raise _BadRequest("Each request needs data with the item's id (retailer id)")
        parsed.append((method.upper(), data["id"], data))
    return parsed
