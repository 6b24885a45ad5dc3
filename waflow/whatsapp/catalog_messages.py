"""Messages built from catalog products: WhatsApp product, product-list and catalog messages, and a
Messenger carousel.

Pure functions, like :mod:`waflow.whatsapp.build`, through which the WhatsApp ones are built, so
Meta's limits are checked in one place (30 products in at most 10 sections, a text header for a
product list, no header for a single product, …) and raise
:class:`~waflow.errors.MessageValidationError` naming the limit::

    from waflow.whatsapp.catalog_messages import product_list_message

    bikes = catalog.search("rad")[:30]
    message = product_list_message(wa_id, wa.catalog.catalog_id, "Unsere Räder", "Welches?", bikes)
    wa.send(message)

Products may be given as :class:`~waflow.whatsapp.catalog.Product` (from ``wa.catalog`` or a
:class:`~waflow.whatsapp.catalog.Catalog`) or as plain retailer ids.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from waflow._models import violation
from waflow.messenger import build as fb
from waflow.messenger.messages import (
    ELEMENT_SUBTITLE_MAX,
    ELEMENT_TITLE_MAX,
    MessageTag,
    MessagingType,
)
from waflow.messenger.messages import Message as MessengerMessage
from waflow.whatsapp import build
from waflow.whatsapp.catalog import Product
from waflow.whatsapp.interactive import ProductItem, ProductSection
from waflow.whatsapp.messages import InteractiveMessage

__all__ = [
    "DEFAULT_PAYLOAD_PREFIX",
    "ProductRef",
    "carousel_retailer_id",
    "catalog_message",
    "messenger_carousel",
    "product_list_message",
    "product_message",
]

#: A product, or its retailer id.
ProductRef = Product | str
#: What :func:`messenger_carousel` puts before the retailer id in each button's postback payload.
DEFAULT_PAYLOAD_PREFIX = "product:"


def _retailer_id(product: ProductRef) -> str:
    if isinstance(product, str):
        return product
    if not product.retailer_id:
        raise violation(
            f"product {product.id} has no retailer_id; load products with the retailer_id field",
            field="product_retailer_id",
        )
    return product.retailer_id


def product_message(
    to: str,
    catalog_id: str,
    product: ProductRef,
    *,
    body: str | None = None,
    footer: str | None = None,
    reply_to: str | None = None,
    callback_data: str | None = None,
) -> InteractiveMessage:
    """A single-product message (WhatsApp shows the product's own image and name; no header)."""
    return build.product(
        to,
        catalog_id,
        _retailer_id(product),
        body=body,
        footer=footer,
        reply_to=reply_to,
        callback_data=callback_data,
    )


def _sections(
    sections: Mapping[str, Sequence[ProductRef]] | Sequence[ProductRef],
) -> list[ProductSection]:
    if isinstance(sections, Mapping):
        grouped: list[tuple[str | None, Sequence[ProductRef]]] = list(sections.items())
    else:
        # A flat list is one section: Meta requires section titles only when there are several.
        grouped = [(None, sections)]
    return [
        ProductSection(
            title=title,
            product_items=[ProductItem(product_retailer_id=_retailer_id(p)) for p in products],
        )
        for title, products in grouped
    ]


def product_list_message(
    to: str,
    catalog_id: str,
    header: str,
    body: str,
    sections: Mapping[str, Sequence[ProductRef]] | Sequence[ProductRef],
    *,
    footer: str | None = None,
    reply_to: str | None = None,
    callback_data: str | None = None,
) -> InteractiveMessage:
    """A multi-product message: ``{section title: products}`` (at most 10 sections), or a flat
    sequence shown as one untitled section; at most 30 products in all, under a text ``header``.

    Nothing is cut to fit: more products than Meta allows raise
    :class:`~waflow.errors.MessageValidationError`, so a bot never silently hides products.
    """
    return build.product_list(
        to,
        catalog_id,
        header,
        body,
        _sections(sections),
        footer=footer,
        reply_to=reply_to,
        callback_data=callback_data,
    )


def catalog_message(
    to: str,
    body: str,
    *,
    thumbnail: ProductRef | None = None,
    footer: str | None = None,
    reply_to: str | None = None,
    callback_data: str | None = None,
) -> InteractiveMessage:
    """A "View catalog" button for the number's linked catalog; ``thumbnail`` picks the product
    whose image is shown (Meta's default: the first product)."""
    return build.catalog(
        to,
        body,
        thumbnail_product_retailer_id=None if thumbnail is None else _retailer_id(thumbnail),
        footer=footer,
        reply_to=reply_to,
        callback_data=callback_data,
    )


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def messenger_carousel(
    psid: str,
    products: Sequence[Product],
    *,
    button_title: str = "Ansehen",
    payload_prefix: str = DEFAULT_PAYLOAD_PREFIX,
    messaging_type: MessagingType | None = None,
    tag: MessageTag | None = None,
    subtitle: Callable[[Product], str | None] | None = None,
) -> MessengerMessage:
    """A Messenger generic-template carousel with one card per product (at most 10).

    Each card shows the product's name as title, its price as subtitle and its image; tapping the
    card opens the product's ``url`` when it has one, and the button ``button_title`` sends the
    postback payload ``payload_prefix + retailer_id`` (read it back with
    :func:`carousel_retailer_id`). Names and prices longer than Messenger's 80 characters are
    shortened with "…" (catalog names may have 200), rather than refused.

    The price is Meta's display text, formatted for the *catalog's* locale (``"€499.00"``); pass
    ``subtitle`` (a function of the product) to write it in the shop's own locale, or anything else.
    """
    elements = []
    for product in products:
        retailer_id = _retailer_id(product)
        title = product.name or retailer_id
        price = product.price_text if subtitle is None else subtitle(product)
        elements.append(
            fb.element(
                _shorten(title, ELEMENT_TITLE_MAX),
                subtitle=None if price is None else _shorten(price, ELEMENT_SUBTITLE_MAX),
                image_url=product.image_url,
                default_url=product.url,
                buttons=[fb.postback_button(button_title, f"{payload_prefix}{retailer_id}")],
            )
        )
    return fb.generic_template(psid, elements, messaging_type=messaging_type, tag=tag)


def carousel_retailer_id(
    payload: str | None, *, payload_prefix: str = DEFAULT_PAYLOAD_PREFIX
) -> str | None:
    """The retailer id in a postback payload from :func:`messenger_carousel`, or ``None`` when the
    payload is not one of its buttons."""
    if payload is None or not payload.startswith(payload_prefix):
        return None
    return payload[len(payload_prefix) :] or None
