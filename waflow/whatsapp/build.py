"""Builders of outbound WhatsApp messages, one per kind, from plain arguments.

They are the single definition of waflow's typed send helpers: ``WhatsApp.send_text(...)`` is
``send(build.text(...))``, and the same holds for ``AsyncWhatsApp`` and for the conversation engine,
which writes built messages to the outbox. Every builder accepts ``reply_to`` (the id of the message
to quote) and ``callback_data`` (returned on status webhooks as ``biz_opaque_callback_data``).

    from waflow.whatsapp import build

    message = build.buttons("4915112345678", "Weiter auf WhatsApp?", {"yes": "Ja", "no": "Nein"})
    message.to_body()  # the exact JSON of POST /{phone-number-id}/messages
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from waflow.whatsapp.interactive import (
    Body,
    ButtonInteractive,
    ButtonsAction,
    CatalogAction,
    CatalogInteractive,
    CatalogParameters,
    CtaUrlAction,
    CtaUrlInteractive,
    CtaUrlParameters,
    FlowAction,
    FlowActionPayload,
    FlowInteractive,
    FlowParameters,
    Footer,
    Header,
    ListAction,
    ListInteractive,
    ListRow,
    ListSection,
    LocationRequestAction,
    LocationRequestInteractive,
    OrderDetailsAction,
    OrderDetailsInteractive,
    OrderDetailsParameters,
    OrderStatusAction,
    OrderStatusInteractive,
    OrderStatusParameters,
    OrderStatusUpdate,
    ProductAction,
    ProductInteractive,
    ProductItem,
    ProductListAction,
    ProductListInteractive,
    ProductSection,
    ReplyButton,
    ReplyButtonReply,
)
from waflow.whatsapp.media_refs import MediaRef, media_ref
from waflow.whatsapp.messages import (
    AudioMessage,
    Contact,
    ContactsMessage,
    DocumentMessage,
    ImageMessage,
    InteractiveMessage,
    Location,
    LocationMessage,
    Reaction,
    ReactionMessage,
    ReadReceipt,
    ReplyContext,
    StickerMessage,
    TemplateMessage,
    TextBody,
    TextMessage,
    TypingIndicator,
    VideoMessage,
)
from waflow.whatsapp.template_components import (
    BodyComponent,
    ButtonComponent,
    HeaderComponent,
    Language,
    Parameter,
    Template,
    TemplateComponent,
    TextParameter,
)

__all__ = [
    "ButtonsSpec",
    "HeaderSpec",
    "MediaRef",
    "ProductSectionsSpec",
    "RowSpec",
    "SectionsSpec",
    "audio",
    "buttons",
    "catalog",
    "contacts",
    "cta_url",
    "document",
    "flow",
    "image",
    "list_menu",
    "location",
    "location_request",
    "order_details",
    "order_status",
    "product",
    "product_list",
    "reaction",
    "read_receipt",
    "remove_reaction",
    "sticker",
    "template",
    "text",
    "video",
]

#: Reply buttons as ``{id: title}``, ``[(id, title), …]``, ``["Ja", "Nein"]`` (id = title) or
#: ready-made :class:`ReplyButton`\\ s.
ButtonsSpec = Mapping[str, str] | Sequence[str | tuple[str, str] | ReplyButton]
#: List rows as ``(id, title)``, ``(id, title, description)`` or :class:`ListRow`.
RowSpec = tuple[str, str] | tuple[str, str, str] | ListRow
#: Sections as ``{title: rows}`` or ready-made :class:`ListSection`\\ s.
SectionsSpec = Mapping[str, Sequence[RowSpec]] | Sequence[ListSection]
#: Product sections as ``{title: [retailer_id, …]}`` or ready-made :class:`ProductSection`\\ s.
ProductSectionsSpec = Mapping[str, Sequence[str]] | Sequence[ProductSection]
#: A header: plain text, or a ready-made :class:`Header` (image, video, document).
HeaderSpec = str | Header


def _envelope(reply_to: str | None, callback_data: str | None) -> dict[str, Any]:
    envelope: dict[str, Any] = {}
    if reply_to is not None:
        envelope["context"] = ReplyContext(message_id=reply_to)
    if callback_data is not None:
        envelope["biz_opaque_callback_data"] = callback_data
    return envelope


def _header(header: HeaderSpec | None) -> Header | None:
    if header is None or isinstance(header, Header):
        return header
    return Header(type="text", text=header)


def _footer(footer: str | None) -> Footer | None:
    return None if footer is None else Footer(text=footer)


def text(
    to: str,
    body: str,
    *,
    preview_url: bool = False,
    reply_to: str | None = None,
    callback_data: str | None = None,
) -> TextMessage:
    """A text message (<= 4096 characters); ``preview_url`` shows a preview of its first link."""
    return TextMessage(
        to=to,
        text=TextBody(body=body, preview_url=preview_url),
        **_envelope(reply_to, callback_data),
    )


def image(
    to: str,
    image: str,
    *,
    caption: str | None = None,
    reply_to: str | None = None,
    callback_data: str | None = None,
) -> ImageMessage:
    """An image by uploaded media id or http(s) link, with an optional caption."""
    return ImageMessage(
        to=to, image=media_ref(image, caption=caption), **_envelope(reply_to, callback_data)
    )


def video(
    to: str,
    video: str,
    *,
    caption: str | None = None,
    reply_to: str | None = None,
    callback_data: str | None = None,
) -> VideoMessage:
    """A video by uploaded media id or http(s) link, with an optional caption."""
    return VideoMessage(
        to=to, video=media_ref(video, caption=caption), **_envelope(reply_to, callback_data)
    )


def audio(
    to: str, audio: str, *, reply_to: str | None = None, callback_data: str | None = None
) -> AudioMessage:
    """An audio file by uploaded media id or http(s) link."""
    return AudioMessage(to=to, audio=media_ref(audio), **_envelope(reply_to, callback_data))


def document(
    to: str,
    document: str,
    *,
    caption: str | None = None,
    filename: str | None = None,
    reply_to: str | None = None,
    callback_data: str | None = None,
) -> DocumentMessage:
    """A document by uploaded media id or http(s) link, with optional caption and filename."""
    return DocumentMessage(
        to=to,
        document=media_ref(document, caption=caption, filename=filename),
        **_envelope(reply_to, callback_data),
    )


def sticker(
    to: str, sticker: str, *, reply_to: str | None = None, callback_data: str | None = None
) -> StickerMessage:
    """A sticker (WebP) by uploaded media id or http(s) link."""
    return StickerMessage(to=to, sticker=media_ref(sticker), **_envelope(reply_to, callback_data))


def location(
    to: str,
    latitude: float,
    longitude: float,
    *,
    name: str | None = None,
    address: str | None = None,
    reply_to: str | None = None,
    callback_data: str | None = None,
) -> LocationMessage:
    """A location pin, optionally with the place's name and address."""
    return LocationMessage(
        to=to,
        location=Location(latitude=latitude, longitude=longitude, name=name, address=address),
        **_envelope(reply_to, callback_data),
    )


def contacts(
    to: str,
    contacts: Sequence[Contact],
    *,
    reply_to: str | None = None,
    callback_data: str | None = None,
) -> ContactsMessage:
    """One or more contact cards."""
    return ContactsMessage(to=to, contacts=list(contacts), **_envelope(reply_to, callback_data))


def reaction(
    to: str, message_id: str, emoji: str, *, callback_data: str | None = None
) -> ReactionMessage:
    """React to the customer's message ``message_id`` with ``emoji``."""
    return ReactionMessage(
        to=to,
        reaction=Reaction(message_id=message_id, emoji=emoji),
        **_envelope(None, callback_data),
    )


def remove_reaction(to: str, message_id: str) -> ReactionMessage:
    """Remove an earlier reaction to ``message_id`` (Meta: an empty emoji)."""
    return ReactionMessage(to=to, reaction=Reaction(message_id=message_id, emoji=""))


def _reply_buttons(spec: ButtonsSpec) -> list[ReplyButton]:
    if isinstance(spec, Mapping):
        return [ReplyButton(reply=ReplyButtonReply(id=i, title=t)) for i, t in spec.items()]
    result = []
    for item in spec:
        if isinstance(item, ReplyButton):
            result.append(item)
        elif isinstance(item, str):
            result.append(ReplyButton(reply=ReplyButtonReply(id=item, title=item)))
        else:
            result.append(ReplyButton(reply=ReplyButtonReply(id=item[0], title=item[1])))
    return result


def buttons(
    to: str,
    body: str,
    buttons: ButtonsSpec,
    *,
    header: HeaderSpec | None = None,
    footer: str | None = None,
    reply_to: str | None = None,
    callback_data: str | None = None,
) -> InteractiveMessage:
    """Up to 3 reply buttons (id -> title, title <= 20 characters) under ``body``."""
    return InteractiveMessage(
        to=to,
        interactive=ButtonInteractive(
            header=_header(header),
            body=Body(text=body),
            footer=_footer(footer),
            action=ButtonsAction(buttons=_reply_buttons(buttons)),
        ),
        **_envelope(reply_to, callback_data),
    )


def _row(spec: RowSpec) -> ListRow:
    if isinstance(spec, ListRow):
        return spec
    description = spec[2] if len(spec) == 3 else None
    return ListRow(id=spec[0], title=spec[1], description=description)


def _sections(spec: SectionsSpec) -> list[ListSection]:
    if isinstance(spec, Mapping):
        return [
            ListSection(title=title, rows=[_row(row) for row in rows])
            for title, rows in spec.items()
        ]
    return list(spec)


def list_menu(
    to: str,
    body: str,
    button: str,
    sections: SectionsSpec,
    *,
    header: str | None = None,
    footer: str | None = None,
    reply_to: str | None = None,
    callback_data: str | None = None,
) -> InteractiveMessage:
    """A list message: ``button`` opens up to 10 rows in up to 10 titled sections."""
    return InteractiveMessage(
        to=to,
        interactive=ListInteractive(
            header=_header(header),
            body=Body(text=body),
            footer=_footer(footer),
            action=ListAction(button=button, sections=_sections(sections)),
        ),
        **_envelope(reply_to, callback_data),
    )


def cta_url(
    to: str,
    body: str,
    display_text: str,
    url: str,
    *,
    header: HeaderSpec | None = None,
    footer: str | None = None,
    reply_to: str | None = None,
    callback_data: str | None = None,
) -> InteractiveMessage:
    """A button labelled ``display_text`` (<= 20 characters) that opens ``url``."""
    return InteractiveMessage(
        to=to,
        interactive=CtaUrlInteractive(
            header=_header(header),
            body=Body(text=body),
            footer=_footer(footer),
            action=CtaUrlAction(parameters=CtaUrlParameters(display_text=display_text, url=url)),
        ),
        **_envelope(reply_to, callback_data),
    )


def product(
    to: str,
    catalog_id: str,
    product_retailer_id: str,
    *,
    body: str | None = None,
    footer: str | None = None,
    reply_to: str | None = None,
    callback_data: str | None = None,
) -> InteractiveMessage:
    """One product of a catalog (a single-product message takes no header)."""
    return InteractiveMessage(
        to=to,
        interactive=ProductInteractive(
            body=None if body is None else Body(text=body),
            footer=_footer(footer),
            action=ProductAction(catalog_id=catalog_id, product_retailer_id=product_retailer_id),
        ),
        **_envelope(reply_to, callback_data),
    )


def _product_sections(spec: ProductSectionsSpec) -> list[ProductSection]:
    if isinstance(spec, Mapping):
        return [
            ProductSection(
                title=title, product_items=[ProductItem(product_retailer_id=i) for i in ids]
            )
            for title, ids in spec.items()
        ]
    return list(spec)


def product_list(
    to: str,
    catalog_id: str,
    header: str,
    body: str,
    sections: ProductSectionsSpec,
    *,
    footer: str | None = None,
    reply_to: str | None = None,
    callback_data: str | None = None,
) -> InteractiveMessage:
    """Up to 30 products of a catalog in up to 10 titled sections, under a text header."""
    return InteractiveMessage(
        to=to,
        interactive=ProductListInteractive(
            header=Header(type="text", text=header),
            body=Body(text=body),
            footer=_footer(footer),
            action=ProductListAction(catalog_id=catalog_id, sections=_product_sections(sections)),
        ),
        **_envelope(reply_to, callback_data),
    )


def catalog(
    to: str,
    body: str,
    *,
    thumbnail_product_retailer_id: str | None = None,
    footer: str | None = None,
    reply_to: str | None = None,
    callback_data: str | None = None,
) -> InteractiveMessage:
    """A button that opens the business's catalog (thumbnail: the given product, or the first)."""
    parameters = (
        None
        if thumbnail_product_retailer_id is None
        else CatalogParameters(thumbnail_product_retailer_id=thumbnail_product_retailer_id)
    )
    return InteractiveMessage(
        to=to,
        interactive=CatalogInteractive(
            body=Body(text=body),
            footer=_footer(footer),
            action=CatalogAction(parameters=parameters),
        ),
        **_envelope(reply_to, callback_data),
    )


def flow(
    to: str,
    body: str,
    flow_cta: str,
    *,
    flow_id: str | None = None,
    flow_name: str | None = None,
    flow_token: str | None = None,
    mode: Literal["draft", "published"] | None = None,
    flow_action: Literal["navigate", "data_exchange"] | None = None,
    screen: str | None = None,
    data: Mapping[str, Any] | None = None,
    header: HeaderSpec | None = None,
    footer: str | None = None,
    reply_to: str | None = None,
    callback_data: str | None = None,
) -> InteractiveMessage:
    """A button ``flow_cta`` that opens a WhatsApp Flow (by ``flow_id`` or ``flow_name``)."""
    payload = None
    if screen is not None or data is not None:
        payload = FlowActionPayload(screen=screen, data=None if data is None else dict(data))
    parameters = FlowParameters(
        flow_id=flow_id,
        flow_name=flow_name,
        flow_cta=flow_cta,
        flow_token=flow_token,
        mode=mode,
        flow_action=flow_action,
        flow_action_payload=payload,
    )
    return InteractiveMessage(
        to=to,
        interactive=FlowInteractive(
            header=_header(header),
            body=Body(text=body),
            footer=_footer(footer),
            action=FlowAction(parameters=parameters),
        ),
        **_envelope(reply_to, callback_data),
    )


def location_request(
    to: str, body: str, *, reply_to: str | None = None, callback_data: str | None = None
) -> InteractiveMessage:
    """Ask the customer to share a location, with a button under ``body``."""
    return InteractiveMessage(
        to=to,
        interactive=LocationRequestInteractive(
            body=Body(text=body), action=LocationRequestAction()
        ),
        **_envelope(reply_to, callback_data),
    )


def order_details(
    to: str,
    body: str,
    parameters: OrderDetailsParameters,
    *,
    header: HeaderSpec | None = None,
    footer: str | None = None,
    reply_to: str | None = None,
    callback_data: str | None = None,
) -> InteractiveMessage:
    """Ask the customer to review and pay an order (payments in supported markets)."""
    return InteractiveMessage(
        to=to,
        interactive=OrderDetailsInteractive(
            header=_header(header),
            body=Body(text=body),
            footer=_footer(footer),
            action=OrderDetailsAction(parameters=parameters),
        ),
        **_envelope(reply_to, callback_data),
    )


def order_status(
    to: str,
    body: str,
    reference_id: str,
    status: str,
    *,
    description: str | None = None,
    footer: str | None = None,
    reply_to: str | None = None,
    callback_data: str | None = None,
) -> InteractiveMessage:
    """Tell the customer that order ``reference_id`` is now ``status`` (processing, shipped, …)."""
    update = OrderStatusUpdate(status=status, description=description)
    return InteractiveMessage(
        to=to,
        interactive=OrderStatusInteractive(
            body=Body(text=body),
            footer=_footer(footer),
            action=OrderStatusAction(
                parameters=OrderStatusParameters(reference_id=reference_id, order=update)
            ),
        ),
        **_envelope(reply_to, callback_data),
    )


def _parameter(value: str | Parameter, name: str | None = None) -> Parameter:
    if isinstance(value, str):
        return TextParameter(text=value, parameter_name=name)
    return value


def template(
    to: str,
    name: str,
    language: str | Language = "en_US",
    *,
    body: Sequence[str | Parameter] | Mapping[str, str | Parameter] | None = None,
    header: str | Parameter | None = None,
    buttons: Sequence[ButtonComponent] = (),
    components: Sequence[TemplateComponent] | None = None,
    reply_to: str | None = None,
    callback_data: str | None = None,
) -> TemplateMessage:
    """An approved template ``name`` in ``language`` (a code such as ``de`` or ``en_US``).

    ``body`` fills the body's placeholders, positionally (a sequence) or by name (a mapping, for
    ``{{first_name}}``-style templates); plain strings become text parameters. ``header`` fills a
    header placeholder; ``buttons`` adds button components. ``components`` gives the full list
    instead, exactly as Meta takes it.
    """
    if components is not None and (body is not None or header is not None or buttons):
        raise TypeError("pass either components= or body=/header=/buttons=, not both")
    parts: list[TemplateComponent] = []
    if components is not None:
        parts = list(components)
    else:
        if header is not None:
            parts.append(HeaderComponent(parameters=[_parameter(header)]))
        if isinstance(body, Mapping):
            parts.append(BodyComponent(parameters=[_parameter(v, k) for k, v in body.items()]))
        elif body is not None:
            parts.append(BodyComponent(parameters=[_parameter(v) for v in body]))
        parts.extend(buttons)
    return TemplateMessage(
        to=to,
        template=Template(
            name=name,
            language=language if isinstance(language, Language) else Language(code=language),
            components=parts or None,
        ),
        **_envelope(reply_to, callback_data),
    )


def read_receipt(message_id: str, *, typing: bool = False) -> ReadReceipt:
    """Mark ``message_id`` as read; ``typing=True`` also shows a typing indicator."""
    return ReadReceipt(
        message_id=message_id, typing_indicator=TypingIndicator() if typing else None
    )
