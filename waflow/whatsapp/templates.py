"""WhatsApp message templates: definitions, the management API, a local registry and file sync.

Four things live here, built on one model of a template *definition* (what is created and listed,
as opposed to :mod:`waflow.whatsapp.template_components`, the object that fills a template at
send time):

* :class:`TemplateDefinition` — the body of ``POST /{waba-id}/message_templates``. Outbound: unknown
  fields fail, and Meta's documented creation rules (name, lengths, placeholders numbered in order,
  samples for every placeholder, button counts and grouping, …) raise
  :class:`~waflow.errors.MessageValidationError` naming the limit, before any request.
  :class:`MessageTemplate` is a template as Meta lists it (id, status, quality, …): inbound, so
  unknown fields and unknown component or button kinds are kept.
* ``wa.templates`` on :class:`~waflow.WhatsApp` (:class:`Templates`) and
  :class:`~waflow.AsyncWhatsApp` (:class:`AsyncTemplates`): create, list (every cursor page),
  get, edit, delete. They share every request builder and response parser below.
* :class:`TemplateRegistry` — definitions keyed by ``(name, language)``, kept current by the
  status, quality and category webhooks (:meth:`TemplateRegistry.apply`), which checks a template
  message against its definition before it is sent (:meth:`TemplateRegistry.check`) and raises
  :class:`~waflow.errors.TemplateError` naming the fix. Give it to a client
  (``WhatsApp(..., templates=registry)``) and every template send is checked.
* :func:`load_template_files` and :func:`sync_templates` — templates kept as JSON (always) or YAML
  (when PyYAML is installed) files in a shop's repository, created or edited to match.
"""

from __future__ import annotations

import difflib
import itertools
import json
import os
import re
import threading
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from typing_extensions import Self

from waflow._models import InboundModel, OutboundModel, check_count, check_length, violation
from waflow.errors import (
    APIError,
    APIResponseValidationError,
    ConfigError,
    MessageValidationError,
    TemplateError,
)
from waflow.events import Event
from waflow.graph import GraphRequest, GraphResponse, next_cursor
from waflow.whatsapp.events import (
    TemplateCategoryUpdate,
    TemplateQualityUpdate,
    TemplateStatusUpdate,
)
from waflow.whatsapp.messages import TemplateMessage
from waflow.whatsapp.template_components import (
    BodyComponent,
    ButtonComponent,
    CarouselComponent,
    CurrencyParameter,
    DateTimeParameter,
    HeaderComponent,
    LimitedTimeOfferComponent,
    Template,
    TextParameter,
)

if TYPE_CHECKING:
    from waflow.graph import AsyncGraph, SyncGraph

__all__ = [
    "BODY_TEXT_MAX",
    "BUTTONS_MAX",
    "BUTTON_TEXT_MAX",
    "CATEGORIES",
    "FOOTER_TEXT_MAX",
    "HEADER_FORMATS",
    "HEADER_TEXT_MAX",
    "PARAMETER_FORMATS",
    "TEMPLATE_NAME_MAX",
    "URL_MAX",
    "AsyncTemplates",
    "BodyDefinition",
    "BodyExample",
    "ButtonsDefinition",
    "CarouselCardDefinition",
    "CarouselDefinition",
    "CatalogButton",
    "CopyCodeButton",
    "CreatedTemplate",
    "DefinitionComponent",
    "FlowButton",
    "FooterDefinition",
    "HeaderDefinition",
    "HeaderExample",
    "LimitedTimeOfferDefinition",
    "LimitedTimeOfferText",
    "MessageTemplate",
    "MpmButton",
    "NamedParamExample",
    "OtpButton",
    "PhoneNumberButton",
    "QualityScore",
    "QuickReplyButton",
    "SpmButton",
    "SupportedApp",
    "SyncEntry",
    "SyncReport",
    "TemplateButton",
    "TemplateDefinition",
    "TemplateEdit",
    "TemplatePage",
    "TemplateProblem",
    "TemplateRegistry",
    "Templates",
    "UnknownButton",
    "UnknownComponent",
    "UrlButton",
    "VoiceCallButton",
    "create_request",
    "delete_request",
    "edit_request",
    "get_request",
    "list_request",
    "load_template_files",
    "next_page_request",
    "parse_created",
    "parse_page",
    "parse_success",
    "parse_template",
    "placeholders",
    "sync_templates",
    "sync_templates_async",
]

#: Meta's documented limits on template definitions (characters unless said otherwise).
TEMPLATE_NAME_MAX = 512
HEADER_TEXT_MAX = 60
BODY_TEXT_MAX = 1024
FOOTER_TEXT_MAX = 60
BUTTONS_MAX = 10
BUTTON_TEXT_MAX = 25
URL_MAX = 2000
PHONE_NUMBER_MAX = 20
COUPON_CODE_MAX = 15
URL_BUTTONS_MAX = 2
PHONE_NUMBER_BUTTONS_MAX = 1
COPY_CODE_BUTTONS_MAX = 1
CODE_EXPIRATION_MINUTES = (1, 90)

#: Template categories, parameter formats and header formats Meta accepts at creation.
CATEGORIES = ("MARKETING", "UTILITY", "AUTHENTICATION")
PARAMETER_FORMATS = ("POSITIONAL", "NAMED")
HEADER_FORMATS = ("TEXT", "IMAGE", "VIDEO", "GIF", "DOCUMENT", "LOCATION", "PRODUCT")
_MEDIA_HEADER_FORMATS = frozenset({"IMAGE", "VIDEO", "GIF", "DOCUMENT"})

_NAME = re.compile(r"[a-z0-9_]+")
_LANGUAGE = re.compile(r"[a-z]{2,3}(_[A-Za-z0-9]{2,4})?")
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_NAMED_KEY = re.compile(r"[a-z_][a-z0-9_]*")
_CURRENCY_CODE = re.compile(r"[A-Z]{3}")
# Meta refuses parameter texts with these (error 132018); they are easy to catch before sending.
_BAD_PARAMETER_TEXT = re.compile(r"[\n\t]| {5,}")
# Marks a validation as reading Meta's listing: unknown kinds and fields are kept, not refused.
_LENIENT = "waflow.templates.lenient"


def placeholders(text: str | None) -> list[str]:
    """The keys of the ``{{…}}`` placeholders of ``text`` in order (``"1"``, ``"first_name"``)."""
    return [match.group(1) for match in _PLACEHOLDER.finditer(text or "")]


def _ph(key: str) -> str:
    return "{{" + key + "}}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _is_lenient(info: ValidationInfo) -> bool:
    return isinstance(info.context, Mapping) and bool(info.context.get(_LENIENT))


# -- definition models -------------------------------------------------------------------------


class _Part(OutboundModel):
    """Base of every part of a definition: components, buttons, examples.

    The same parts describe a template being created (strict) and one Meta lists (lenient: unknown
    fields kept). Marking ``__init__`` as pydantic's own makes nested validation skip it, so a
    listing's ``extra="allow"`` and context reach every nested part; building a part directly
    still turns failures into :class:`~waflow.errors.MessageValidationError`.
    """

    def __init__(self, /, **data: Any) -> None:
        super().__init__(**data)

    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]


class _Typed(_Part):
    """A part with a ``type`` that Meta writes in upper or lower case; the case is kept as given."""

    kind: ClassVar[str] = ""

    @field_validator("type", check_fields=False)
    @classmethod
    def _type(cls, value: str) -> str:
        if value.upper() != cls.kind:
            raise violation(f"a {cls.__name__} has type {cls.kind!r}, got {value!r}", field="type")
        return value


def _unknown_kind(value: Any, info: ValidationInfo, what: str, known: Iterable[str]) -> Any:
    if not _is_lenient(info):
        kind = value.get("type") if isinstance(value, Mapping) else getattr(value, "type", None)
        raise violation(
            f"unknown {what} type {kind!r}; use one of {', '.join(known)}", field="type"
        )
    return value


class NamedParamExample(_Part):
    """A sample value for a named placeholder: ``{"param_name": "first_name", "example": "Lena"}``."""

    param_name: str
    example: str


class HeaderExample(_Part):
    """Samples for a header: ``header_text`` (one value), ``header_handle`` (an uploaded media
    handle) or ``header_text_named_params``."""

    header_text: list[str] | None = None
    header_handle: list[str] | None = None
    header_text_named_params: list[NamedParamExample] | None = None


class BodyExample(_Part):
    """Samples for the body: ``body_text`` (``[[value, …]]``, one per placeholder, in order) or
    ``body_text_named_params``."""

    body_text: list[list[str]] | None = None
    body_text_named_params: list[NamedParamExample] | None = None


class HeaderDefinition(_Typed):
    """The header: ``format`` TEXT (``text`` with at most one placeholder), IMAGE, VIDEO, GIF,
    DOCUMENT (a sample in ``example.header_handle``), LOCATION or PRODUCT."""

    kind: ClassVar[str] = "HEADER"
    type: str = "HEADER"
    format: str = "TEXT"
    text: str | None = None
    example: HeaderExample | None = None


class BodyDefinition(_Typed):
    """The body text with its placeholders and their samples (authentication templates have no
    text, only ``add_security_recommendation``)."""

    kind: ClassVar[str] = "BODY"
    type: str = "BODY"
    text: str | None = None
    example: BodyExample | None = None
    add_security_recommendation: bool | None = None


class FooterDefinition(_Typed):
    """The footer text (authentication templates: ``code_expiration_minutes`` instead)."""

    kind: ClassVar[str] = "FOOTER"
    type: str = "FOOTER"
    text: str | None = None
    code_expiration_minutes: int | None = None


class QuickReplyButton(_Typed):
    """A button that sends its text (and the payload given at send time) back to the business."""

    kind: ClassVar[str] = "QUICK_REPLY"
    type: str = "QUICK_REPLY"
    text: str


class UrlButton(_Typed):
    """Opens ``url``; a variable (``{{1}}``) may end the URL, with a sample in ``example``."""

    kind: ClassVar[str] = "URL"
    type: str = "URL"
    text: str
    url: str
    example: list[str] | None = None


class PhoneNumberButton(_Typed):
    """Calls ``phone_number``."""

    kind: ClassVar[str] = "PHONE_NUMBER"
    type: str = "PHONE_NUMBER"
    text: str
    phone_number: str


class CopyCodeButton(_Typed):
    """Copies a coupon code given at send time; ``example`` is a sample code."""

    kind: ClassVar[str] = "COPY_CODE"
    type: str = "COPY_CODE"
    example: str | list[str] | None = None
    text: str | None = None


class SupportedApp(_Part):
    """An Android app that may autofill a one-time password."""

    package_name: str
    signature_hash: str


class OtpButton(_Typed):
    """The one-time-password button of an authentication template (``otp_type`` COPY_CODE,
    ONE_TAP or ZERO_TAP)."""

    kind: ClassVar[str] = "OTP"
    type: str = "OTP"
    otp_type: str = "COPY_CODE"
    text: str | None = None
    autofill_text: str | None = None
    package_name: str | None = None
    signature_hash: str | None = None
    zero_tap_terms_accepted: bool | None = None
    supported_apps: list[SupportedApp] | None = None


class FlowButton(_Typed):
    """Opens a WhatsApp Flow, given by ``flow_id``, ``flow_name`` or inline ``flow_json``."""

    kind: ClassVar[str] = "FLOW"
    type: str = "FLOW"
    text: str
    flow_id: str | int | None = None
    flow_name: str | None = None
    flow_json: str | None = None
    flow_action: str | None = None
    navigate_screen: str | None = None
    icon: str | None = None


class CatalogButton(_Typed):
    """Opens the business's catalog."""

    kind: ClassVar[str] = "CATALOG"
    type: str = "CATALOG"
    text: str


class MpmButton(_Typed):
    """Shows several products (multi-product message) chosen at send time."""

    kind: ClassVar[str] = "MPM"
    type: str = "MPM"
    text: str


class SpmButton(_Typed):
    """Shows one product (single-product message)."""

    kind: ClassVar[str] = "SPM"
    type: str = "SPM"
    text: str


class VoiceCallButton(_Typed):
    """Starts a WhatsApp call to the business."""

    kind: ClassVar[str] = "VOICE_CALL"
    type: str = "VOICE_CALL"
    text: str
    ttl_minutes: int | None = None


class UnknownButton(_Part):
    """A button of a kind waflow does not know; only accepted when reading Meta's listing."""

    type: str = ""

    @model_validator(mode="before")
    @classmethod
    def _lenient_only(cls, value: Any, info: ValidationInfo) -> Any:
        return _unknown_kind(value, info, "button", _BUTTON_KINDS)


_BUTTON_MODELS: dict[str, type[_Typed]] = {
    model.kind: model
    for model in (
        QuickReplyButton,
        UrlButton,
        PhoneNumberButton,
        CopyCodeButton,
        OtpButton,
        FlowButton,
        CatalogButton,
        MpmButton,
        SpmButton,
        VoiceCallButton,
    )
}
_BUTTON_KINDS = tuple(_BUTTON_MODELS)


def _tag_of(known: Mapping[str, Any]) -> Callable[[Any], str]:
    def tag(value: Any) -> str:
        kind = value.get("type") if isinstance(value, Mapping) else getattr(value, "type", None)
        kind = kind.upper() if isinstance(kind, str) else ""
        return kind if kind in known else "OTHER"

    return tag


#: Every button kind, chosen by ``type`` (any case); others only when reading a listing.
TemplateButton = Annotated[
    Annotated[QuickReplyButton, Tag("QUICK_REPLY")]
    | Annotated[UrlButton, Tag("URL")]
    | Annotated[PhoneNumberButton, Tag("PHONE_NUMBER")]
    | Annotated[CopyCodeButton, Tag("COPY_CODE")]
    | Annotated[OtpButton, Tag("OTP")]
    | Annotated[FlowButton, Tag("FLOW")]
    | Annotated[CatalogButton, Tag("CATALOG")]
    | Annotated[MpmButton, Tag("MPM")]
    | Annotated[SpmButton, Tag("SPM")]
    | Annotated[VoiceCallButton, Tag("VOICE_CALL")]
    | Annotated[UnknownButton, Tag("OTHER")],
    Discriminator(_tag_of(_BUTTON_MODELS)),
]


class ButtonsDefinition(_Typed):
    """The template's buttons, in the order customers see them (button ``index`` 0, 1, …)."""

    kind: ClassVar[str] = "BUTTONS"
    type: str = "BUTTONS"
    buttons: list[TemplateButton]


class LimitedTimeOfferText(_Part):
    """The text of a limited-time offer, and whether it shows an expiry."""

    text: str
    has_expiration: bool | None = None


class LimitedTimeOfferDefinition(_Typed):
    """A limited-time offer (marketing templates)."""

    kind: ClassVar[str] = "LIMITED_TIME_OFFER"
    type: str = "LIMITED_TIME_OFFER"
    limited_time_offer: LimitedTimeOfferText


class CarouselCardDefinition(_Part):
    """One card of a carousel template: its own header, body and buttons."""

    components: list[DefinitionComponent]


class CarouselDefinition(_Typed):
    """The cards of a carousel template."""

    kind: ClassVar[str] = "CAROUSEL"
    type: str = "CAROUSEL"
    cards: list[CarouselCardDefinition]


class UnknownComponent(_Part):
    """A component of a kind waflow does not know; only accepted when reading Meta's listing."""

    type: str = ""

    @model_validator(mode="before")
    @classmethod
    def _lenient_only(cls, value: Any, info: ValidationInfo) -> Any:
        return _unknown_kind(value, info, "component", _COMPONENT_KINDS)


_COMPONENT_MODELS: dict[str, type[_Typed]] = {
    model.kind: model
    for model in (
        HeaderDefinition,
        BodyDefinition,
        FooterDefinition,
        ButtonsDefinition,
        LimitedTimeOfferDefinition,
        CarouselDefinition,
    )
}
_COMPONENT_KINDS = tuple(_COMPONENT_MODELS)

#: Every component kind of a definition, chosen by ``type`` (any case).
DefinitionComponent = Annotated[
    Annotated[HeaderDefinition, Tag("HEADER")]
    | Annotated[BodyDefinition, Tag("BODY")]
    | Annotated[FooterDefinition, Tag("FOOTER")]
    | Annotated[ButtonsDefinition, Tag("BUTTONS")]
    | Annotated[LimitedTimeOfferDefinition, Tag("LIMITED_TIME_OFFER")]
    | Annotated[CarouselDefinition, Tag("CAROUSEL")]
    | Annotated[UnknownComponent, Tag("OTHER")],
    Discriminator(_tag_of(_COMPONENT_MODELS)),
]
CarouselCardDefinition.model_rebuild()
_LENIENT_COMPONENT: TypeAdapter[DefinitionComponent] = TypeAdapter(DefinitionComponent)


def _components_of(owner: object) -> Sequence[Any]:
    components = getattr(owner, "components", None)
    return components if isinstance(components, list) else []


def _first(components: Iterable[Any], model: type[Any]) -> Any:
    return next((c for c in components if isinstance(c, model)), None)


class _HasComponents:
    """Accessors shared by definitions and listed templates (both have ``components``)."""

    @property
    def header(self) -> HeaderDefinition | None:
        """The header component, if any."""
        found: HeaderDefinition | None = _first(_components_of(self), HeaderDefinition)
        return found

    @property
    def body(self) -> BodyDefinition | None:
        """The body component, if any."""
        found: BodyDefinition | None = _first(_components_of(self), BodyDefinition)
        return found

    @property
    def footer(self) -> FooterDefinition | None:
        """The footer component, if any."""
        found: FooterDefinition | None = _first(_components_of(self), FooterDefinition)
        return found

    @property
    def buttons(self) -> list[Any]:
        """The buttons, in order (empty without a BUTTONS component)."""
        found: ButtonsDefinition | None = _first(_components_of(self), ButtonsDefinition)
        return list(found.buttons) if found is not None else []


class TemplateDefinition(_HasComponents, OutboundModel):
    """A template to create: the body of ``POST /{waba-id}/message_templates``.

    ``parameter_format`` is POSITIONAL (``{{1}}``, Meta's default when left out) or NAMED
    (``{{first_name}}``). Building one checks Meta's documented creation rules and raises
    :class:`~waflow.errors.MessageValidationError` naming the broken limit.
    ``TemplateDefinition.from_body(body).to_body() == body`` for every body Meta documents.
    """

    name: str
    language: str
    category: str
    parameter_format: str | None = None
    components: list[DefinitionComponent]
    allow_category_change: bool | None = None
    sub_category: str | None = None
    message_send_ttl_seconds: int | None = None
    cta_url_link_tracking_opted_out: bool | None = None

    @model_validator(mode="after")
    def _creation_rules(self) -> Self:
        where = f"template {self.name!r}"
        if len(self.name) > TEMPLATE_NAME_MAX or not _NAME.fullmatch(self.name):
            check_length(self.name, TEMPLATE_NAME_MAX, "template name", minimum=1)
            suggestion = re.sub(r"[^a-z0-9_]+", "_", self.name.lower()).strip("_") or "order_update"
            raise violation(
                f"template name {self.name!r} may only hold lowercase letters, digits and "
                f"underscores: use e.g. {suggestion!r}",
                limit="template name [a-z0-9_]",
                field="name",
            )
        if not _LANGUAGE.fullmatch(self.language):
            raise violation(
                f"{where}: language {self.language!r} is not a language code like 'de' or 'en_US'",
                field="language",
            )
        if self.category.upper() not in CATEGORIES:
            raise violation(
                f"{where}: category {self.category!r} is not one of {', '.join(CATEGORIES)}",
                field="category",
            )
        _check_components(
            self.components,
            category=self.category,
            # Left out, Meta reads the template as POSITIONAL.
            parameter_format=self.parameter_format or "POSITIONAL",
            where=where,
        )
        return self

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> TemplateDefinition:
        """Read a ``POST /{waba-id}/message_templates`` body (raises MessageValidationError)."""
        if not isinstance(body, Mapping):
            raise MessageValidationError(
                f"a template definition must be a JSON object, got {type(body).__name__}"
            )
        return cls.model_validate(dict(body))

    def to_body(self) -> dict[str, Any]:
        """The JSON body Meta expects, exactly as it was given (the case of ``type`` kept)."""
        return self.dump()

    @property
    def key(self) -> tuple[str, str]:
        """``(name, language)``, the identity of a template translation."""
        return (self.name, self.language)


class TemplateEdit(OutboundModel):
    """The body of ``POST /{template-id}``: new ``components`` and/or a new ``category``.

    The components are checked like a definition's (placeholders, samples, lengths, buttons);
    the parameter format is read from the placeholders.
    """

    components: list[DefinitionComponent] | None = None
    category: str | None = None
    message_send_ttl_seconds: int | None = None

    @model_validator(mode="after")
    def _rules(self) -> Self:
        if (
            self.components is None
            and self.category is None
            and self.message_send_ttl_seconds is None
        ):
            raise violation("an edit changes components, category or message_send_ttl_seconds")
        if self.category is not None and self.category.upper() not in CATEGORIES:
            raise violation(
                f"category {self.category!r} is not one of {', '.join(CATEGORIES)}",
                field="category",
            )
        if self.components is not None:
            _check_components(
                self.components, category=self.category, parameter_format=None, where="edit"
            )
        return self


class QualityScore(InboundModel):
    """A listed template's quality: ``score`` GREEN, YELLOW, RED or UNKNOWN."""

    score: str | None = None
    date: int | None = None


class MessageTemplate(_HasComponents, InboundModel):
    """A template as Meta lists it (``GET /{waba-id}/message_templates``, ``GET /{template-id}``).

    Inbound: unknown fields are kept (``model_extra``), and components or buttons of kinds waflow
    does not know become :class:`UnknownComponent` / :class:`UnknownButton` with their fields.
    Fields left out of a request's ``fields=`` stay empty (``None``, ``""``, ``[]``).
    """

    id: str | None = None
    name: str = ""
    language: str = ""
    status: str | None = None
    category: str | None = None
    previous_category: str | None = None
    parameter_format: str | None = None
    components: list[DefinitionComponent] = Field(default_factory=list)
    rejected_reason: str | None = None
    quality_score: QualityScore | None = None
    sub_category: str | None = None

    @field_validator("components", mode="before")
    @classmethod
    def _lenient_components(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [_lenient_component(item) for item in value]

    @property
    def key(self) -> tuple[str, str]:
        """``(name, language)``."""
        return (self.name, self.language)

    def to_definition(self) -> TemplateDefinition:
        """This template as a :class:`TemplateDefinition` (raises if it breaks a creation rule)."""
        parameter_format = self.parameter_format
        if parameter_format is None and _has_named_placeholders(self.components):
            parameter_format = "NAMED"  # older listings leave the format out
        return TemplateDefinition.model_validate(
            {
                "name": self.name,
                "language": self.language,
                "category": self.category,
                "parameter_format": parameter_format,
                "components": [
                    c.model_dump(mode="json", exclude_none=True) for c in self.components
                ],
            }
        )


def _lenient_component(item: Any) -> Any:
    if isinstance(item, _Part):
        return item
    context = {_LENIENT: True}
    try:
        return _LENIENT_COMPONENT.validate_python(item, extra="allow", context=context)
    except (ValidationError, MessageValidationError):
        # A component Meta lists in a shape waflow does not expect is kept whole, not refused.
        if isinstance(item, Mapping):
            return UnknownComponent.model_validate(dict(item), extra="allow", context=context)
        raise


class CreatedTemplate(InboundModel):
    """Meta's answer to a create: the new template's ``id``, its ``status`` and ``category``."""

    id: str
    status: str | None = None
    category: str | None = None


# -- creation rules ----------------------------------------------------------------------------


def _uses_named(parameter_format: str | None, components: Sequence[Any]) -> bool:
    if parameter_format is not None:
        if parameter_format.upper() not in PARAMETER_FORMATS:
            raise violation(
                f"parameter_format {parameter_format!r} is not one of {', '.join(PARAMETER_FORMATS)}",
                field="parameter_format",
            )
        return parameter_format.upper() == "NAMED"
    # An edit carries no parameter_format: read it from the placeholders.
    return _has_named_placeholders(components)


def _has_named_placeholders(components: Sequence[Any]) -> bool:
    texts = [getattr(c, "text", None) for c in components if isinstance(c, _Typed)]
    return any(not key.isdigit() for text in texts for key in placeholders(text))


def _placeholder_keys(text: str | None, where: str, named: bool) -> list[str]:
    """The distinct placeholder keys of ``text`` in order, after checking Meta's rules."""
    keys: list[str] = []
    for key in placeholders(text):
        if key not in keys:
            keys.append(key)
    if named:
        for key in keys:
            if key.isdigit():
                raise violation(
                    f"{where} uses {_ph(key)} but the template's parameter_format is NAMED: "
                    f"name it, e.g. {_ph('first_name')}",
                    limit="named placeholders",
                )
            if not _NAMED_KEY.fullmatch(key):
                raise violation(
                    f"{where}: the placeholder {_ph(key)} may only hold lowercase letters, digits "
                    "and underscores, starting with a letter or underscore",
                    limit="named placeholders [a-z_][a-z0-9_]*",
                )
        return keys
    for key in keys:
        if not key.isdigit():
            raise violation(
                f"{where} has the named placeholder {_ph(key)}: set parameter_format='NAMED', or "
                f"number the placeholders {_ph('1')}, {_ph('2')}, …",
                limit="positional placeholders",
            )
    expected = [str(n) for n in range(1, len(keys) + 1)]
    if keys != expected:
        raise violation(
            f"{where}: placeholders must be numbered {_ph('1')} to {_ph(str(len(keys)))} in order "
            f"of first appearance, found {', '.join(_ph(k) for k in keys)}",
            limit="placeholders numbered 1..n in order",
        )
    return keys


def _check_named_samples(
    samples: Sequence[NamedParamExample] | None, keys: Sequence[str], where: str, field: str
) -> None:
    given = [sample.param_name for sample in samples or ()]
    for key in keys:
        if key not in given:
            raise violation(
                f"{where} uses {_ph(key)}: add a sample for it to example.{field} "
                f'({{"param_name": "{key}", "example": "…"}})',
                limit="samples for every placeholder",
            )
    for name in given:
        if name not in keys:
            raise violation(
                f"{where}: example.{field} has a sample for {name!r}, which the text does not use",
                limit="samples for every placeholder",
            )


def _check_header(header: HeaderDefinition, named: bool) -> None:
    where = "the header"
    fmt = header.format.upper()
    if fmt not in HEADER_FORMATS:
        raise violation(
            f"header format {header.format!r} is not one of {', '.join(HEADER_FORMATS)}",
            field="format",
        )
    example = header.example
    if fmt != "TEXT":
        if header.text is not None:
            raise violation(f"a {fmt} header has no text; remove it or use format TEXT")
        if fmt in _MEDIA_HEADER_FORMATS and not (example and example.header_handle):
            raise violation(
                f"a {fmt} header needs a sample: upload one with Meta's resumable upload API "
                "and put its handle in example.header_handle",
                limit="samples for media headers",
            )
        return
    if not header.text:
        raise violation("a TEXT header needs text", field="header.text")
    check_length(header.text, HEADER_TEXT_MAX, "header text")
    keys = _placeholder_keys(header.text, where, named)
    if len(keys) > 1:
        raise violation(
            f"the header holds at most one placeholder, got {len(keys)}",
            limit="header placeholders <= 1",
        )
    if not keys:
        return
    if named:
        _check_named_samples(
            example.header_text_named_params if example else None,
            keys,
            where,
            "header_text_named_params",
        )
    elif not (example and example.header_text and len(example.header_text) == 1):
        raise violation(
            f"the header uses {_ph('1')}: add one sample value in example.header_text "
            '(e.g. ["Summer Sale"])',
            limit="samples for every placeholder",
        )


def _check_body(body: BodyDefinition, named: bool, authentication: bool) -> None:
    where = "the body"
    if body.text is None:
        if authentication:
            return  # Meta writes an authentication body itself
        raise violation("the body needs text", field="body.text")
    check_length(body.text, BODY_TEXT_MAX, "body text", minimum=1)
    keys = _placeholder_keys(body.text, where, named)
    if not keys:
        return
    example = body.example
    if named:
        _check_named_samples(
            example.body_text_named_params if example else None,
            keys,
            where,
            "body_text_named_params",
        )
        return
    samples = example.body_text if example else None
    if not samples:
        values = ", ".join(f'"sample {n}"' for n in range(1, len(keys) + 1))
        raise violation(
            f"the body has {_plural(len(keys), 'placeholder')}: add example.body_text with "
            f"{_plural(len(keys), 'sample value')} ([[{values}]])",
            limit="samples for every placeholder",
        )
    if len(samples) != 1 or len(samples[0]) != len(keys):
        got = len(samples[0]) if len(samples) == 1 else f"{len(samples)} lists"
        raise violation(
            f"example.body_text needs one list of {len(keys)} values (one per placeholder), "
            f"got {got}",
            limit="samples for every placeholder",
        )


def _check_footer(footer: FooterDefinition, authentication: bool) -> None:
    if footer.code_expiration_minutes is not None:
        low, high = CODE_EXPIRATION_MINUTES
        if not low <= footer.code_expiration_minutes <= high:
            raise violation(
                f"code_expiration_minutes must be {low}-{high}, got {footer.code_expiration_minutes}",
                limit=f"code expiration {low}-{high} minutes",
            )
    if footer.text is None:
        if authentication or footer.code_expiration_minutes is not None:
            return
        raise violation("the footer needs text", field="footer.text")
    check_length(footer.text, FOOTER_TEXT_MAX, "footer text", minimum=1)
    if placeholders(footer.text):
        raise violation("the footer cannot hold placeholders", limit="no footer placeholders")


def _check_url_button(button: UrlButton, index: int) -> None:
    where = f"URL button {index}"
    check_length(button.url, URL_MAX, "button URL", minimum=1)
    if not button.url.startswith(("https://", "http://")):
        raise violation(f"{where}: the URL must start with https://", field="url")
    keys = placeholders(button.url)
    if not keys:
        return
    if len(keys) > 1 or not button.url.rstrip().endswith("}}"):
        raise violation(
            f"{where}: a URL takes one variable, at its very end "
            f"(https://shop.example.com/orders/{_ph('1')})",
            limit="URL variable only at the end",
        )
    if not button.example or len(button.example) != 1:
        raise violation(
            f"{where} has a variable: add one sample in example "
            '(e.g. ["https://shop.example.com/orders/4711"])',
            limit="samples for every placeholder",
        )


def _check_buttons(component: ButtonsDefinition) -> None:
    buttons = component.buttons
    check_count(buttons, BUTTONS_MAX, "buttons", minimum=1)
    kinds = [str(button.type).upper() for button in buttons]
    quick = [kind == "QUICK_REPLY" for kind in kinds]
    if sum(a != b for a, b in itertools.pairwise(quick)) > 1:
        raise violation(
            "quick-reply buttons must be grouped together, before or after the other buttons",
            limit="quick replies grouped",
        )
    for kind, limit in (
        ("URL", URL_BUTTONS_MAX),
        ("PHONE_NUMBER", PHONE_NUMBER_BUTTONS_MAX),
        ("COPY_CODE", COPY_CODE_BUTTONS_MAX),
    ):
        if kinds.count(kind) > limit:
            raise violation(
                f"a template takes at most {limit} {kind} button{'s' if limit > 1 else ''}, "
                f"got {kinds.count(kind)}",
                limit=f"{kind} buttons <= {limit}",
            )
    for index, button in enumerate(buttons):
        if isinstance(button, UnknownButton):
            raise violation(
                f"unknown button type {button.type!r}; use one of {', '.join(_BUTTON_KINDS)}"
            )
        text = getattr(button, "text", None)
        if isinstance(text, str):
            check_length(text, BUTTON_TEXT_MAX, "button text", minimum=1)
        if isinstance(button, UrlButton):
            _check_url_button(button, index)
        elif isinstance(button, PhoneNumberButton):
            check_length(button.phone_number, PHONE_NUMBER_MAX, "button phone number", minimum=1)
        elif isinstance(button, CopyCodeButton):
            samples = [button.example] if isinstance(button.example, str) else button.example
            for sample in samples or ():
                check_length(sample, COUPON_CODE_MAX, "coupon code sample")
        elif isinstance(button, FlowButton):
            given = [button.flow_id, button.flow_name, button.flow_json]
            if sum(value is not None for value in given) != 1:
                raise violation(
                    f"flow button {index} needs exactly one of flow_id, flow_name or flow_json"
                )


def _check_components(
    components: Sequence[Any], *, category: str | None, parameter_format: str | None, where: str
) -> None:
    """Meta's documented creation rules for a list of components (raise MessageValidationError)."""
    try:
        named = _uses_named(parameter_format, components)
        authentication = (category or "").upper() == "AUTHENTICATION"
        seen: list[str] = []
        for component in components:
            if isinstance(component, UnknownComponent):
                raise violation(f"unknown component type {component.type!r}")
            kind = str(component.type).upper()
            if kind in seen and kind != "CAROUSEL":
                raise violation(f"a template has at most one {kind} component")
            seen.append(kind)
            if isinstance(component, HeaderDefinition):
                _check_header(component, named)
            elif isinstance(component, BodyDefinition):
                _check_body(component, named, authentication)
            elif isinstance(component, FooterDefinition):
                _check_footer(component, authentication)
            elif isinstance(component, ButtonsDefinition):
                _check_buttons(component)
        if "BODY" not in seen:
            raise violation("a template needs a BODY component", field="components")
    except MessageValidationError as exc:
        raise MessageValidationError(f"{where}: {exc}", limit=exc.limit, field=exc.field) from None


# -- requests and parsers (shared by the sync and async resources) ----------------------------


def _require_waba(waba_id: str | None) -> str:
    if not waba_id:
        raise ConfigError(
            "template management needs the WhatsApp Business Account id: pass waba_id= to the "
            "client (or set WAFLOW_WABA_ID)"
        )
    return waba_id


def create_request(waba_id: str, definition: TemplateDefinition) -> GraphRequest:
    """``POST /{waba-id}/message_templates`` with the definition's body."""
    return GraphRequest("POST", f"/{waba_id}/message_templates", json=definition.to_body())


def parse_created(response: GraphResponse) -> CreatedTemplate:
    """The id, status and category of a create answer."""
    data = response.data
    if not isinstance(data, dict) or data.get("id") in (None, ""):
        raise APIResponseValidationError("template create answered without an `id`")
    return CreatedTemplate.model_validate(data)


def list_request(
    waba_id: str,
    *,
    name: str | None = None,
    status: str | None = None,
    category: str | None = None,
    language: str | None = None,
    limit: int | None = None,
    fields: Sequence[str] | None = None,
    after: str | None = None,
) -> GraphRequest:
    """``GET /{waba-id}/message_templates`` with Meta's filters, page size and cursor."""
    params: dict[str, Any] = {
        "name": name,
        "status": status,
        "category": category,
        "language": language,
        "limit": limit,
        "fields": ",".join(fields) if fields else None,
        "after": after,
    }
    return GraphRequest(
        "GET",
        f"/{waba_id}/message_templates",
        params={key: value for key, value in params.items() if value is not None},
    )


@dataclass(frozen=True)
class TemplatePage:
    """One page of a listing: its templates and the cursor of the next page (``None``: last)."""

    templates: list[MessageTemplate]
    after: str | None


def _template(data: Any) -> MessageTemplate:
    try:
        return MessageTemplate.model_validate(data)
    except (ValidationError, MessageValidationError) as exc:
        raise APIResponseValidationError(f"unexpected template in Meta's answer: {exc}") from None


def parse_page(response: GraphResponse) -> TemplatePage:
    """The templates of a listing page and the ``after`` cursor to fetch the next one.

    Graph sends ``paging.next`` only when another page exists; its cursor is read from
    ``paging.cursors.after`` or, failing that, from the ``next`` URL.
    """
    data = response.data if isinstance(response.data, dict) else {}
    items = data.get("data")
    if not isinstance(items, list):
        raise APIResponseValidationError("template listing answered without a `data` list")
    return TemplatePage([_template(item) for item in items], next_cursor(data))


def next_page_request(request: GraphRequest, page: TemplatePage) -> GraphRequest | None:
    """The request of the page after ``page`` (same filters), or ``None`` after the last page."""
    params = dict(request.params or {})
    # A cursor that does not move would page forever: treat it as the end. An empty page is not
    # the end while Meta gives a next one.
    if page.after is None or params.get("after") == page.after:
        return None
    params["after"] = page.after
    return GraphRequest(request.method, request.path, params=params)


def get_request(template_id: str, fields: Sequence[str] | None = None) -> GraphRequest:
    """``GET /{template-id}``."""
    return GraphRequest(
        "GET", f"/{template_id}", params={"fields": ",".join(fields)} if fields else None
    )


def parse_template(response: GraphResponse) -> MessageTemplate:
    """The template of a ``GET /{template-id}`` answer."""
    if not isinstance(response.data, dict):
        raise APIResponseValidationError("template lookup answered without a JSON object")
    return _template(response.data)


def edit_request(template_id: str, edit: TemplateEdit) -> GraphRequest:
    """``POST /{template-id}``; repeating it sets the same content, so it may be retried."""
    return GraphRequest("POST", f"/{template_id}", json=edit.dump(), idempotent=True)


def delete_request(waba_id: str, name: str, template_id: str | None = None) -> GraphRequest:
    """``DELETE /{waba-id}/message_templates?name=…``; with ``hsm_id`` only that translation."""
    params = {"name": name}
    if template_id is not None:
        params["hsm_id"] = template_id
    return GraphRequest("DELETE", f"/{waba_id}/message_templates", params=params)


def parse_success(response: GraphResponse) -> bool:
    """Whether Meta answered ``{"success": true}``."""
    return bool(isinstance(response.data, dict) and response.data.get("success"))


def _edit(components: Sequence[DefinitionComponent] | None, category: str | None) -> TemplateEdit:
    return TemplateEdit(
        components=list(components) if components is not None else None, category=category
    )


class Templates:
    """Template management of a :class:`~waflow.WhatsApp` client (``wa.templates``).

    Every method needs the client's ``waba_id`` and raises :class:`~waflow.errors.ConfigError`
    without it; Meta's refusals raise :class:`~waflow.errors.APIStatusError` subclasses.
    """

    def __init__(self, graph: SyncGraph, waba_id: str | None) -> None:
        self._graph = graph
        self._waba_id = waba_id

    def create(self, definition: TemplateDefinition) -> CreatedTemplate:
        """Submit ``definition`` for review; Meta answers its id, status and category."""
        request = create_request(_require_waba(self._waba_id), definition)
        return parse_created(self._graph.request(request))

    def get(self, template_id: str, *, fields: Sequence[str] | None = None) -> MessageTemplate:
        """The template ``template_id`` (all default fields, or only ``fields``)."""
        return parse_template(self._graph.request(get_request(template_id, fields)))

    def edit(
        self,
        template_id: str,
        *,
        components: Sequence[DefinitionComponent] | None = None,
        category: str | None = None,
    ) -> bool:
        """Replace the components and/or the category of ``template_id``; true when Meta agrees."""
        return parse_success(
            self._graph.request(edit_request(template_id, _edit(components, category)))
        )

    def delete(self, name: str, *, template_id: str | None = None) -> bool:
        """Delete template ``name`` in every language, or only the translation ``template_id``."""
        request = delete_request(_require_waba(self._waba_id), name, template_id)
        return parse_success(self._graph.request(request))

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
        """Every template of the account matching the filters, page after page.

        ``limit`` is the page size Graph uses (not a total); the iterator fetches the next page
        only when the current one is used up.
        """
        request = list_request(
            _require_waba(self._waba_id),
            name=name,
            status=status,
            category=category,
            language=language,
            limit=limit,
            fields=fields,
        )
        return self._pages(request)

    def _pages(self, request: GraphRequest | None) -> Iterator[MessageTemplate]:
        while request is not None:
            page = parse_page(self._graph.request(request))
            yield from page.templates
            request = next_page_request(request, page)


class AsyncTemplates:
    """Template management of an :class:`~waflow.AsyncWhatsApp` client (``wa.templates``)."""

    def __init__(self, graph: AsyncGraph, waba_id: str | None) -> None:
        self._graph = graph
        self._waba_id = waba_id

    async def create(self, definition: TemplateDefinition) -> CreatedTemplate:
        """Submit ``definition`` for review; Meta answers its id, status and category."""
        request = create_request(_require_waba(self._waba_id), definition)
        return parse_created(await self._graph.request(request))

    async def get(
        self, template_id: str, *, fields: Sequence[str] | None = None
    ) -> MessageTemplate:
        """The template ``template_id`` (all default fields, or only ``fields``)."""
        return parse_template(await self._graph.request(get_request(template_id, fields)))

    async def edit(
        self,
        template_id: str,
        *,
        components: Sequence[DefinitionComponent] | None = None,
        category: str | None = None,
    ) -> bool:
        """Replace the components and/or the category of ``template_id``; true when Meta agrees."""
        return parse_success(
            await self._graph.request(edit_request(template_id, _edit(components, category)))
        )

    async def delete(self, name: str, *, template_id: str | None = None) -> bool:
        """Delete template ``name`` in every language, or only the translation ``template_id``."""
        request = delete_request(_require_waba(self._waba_id), name, template_id)
        return parse_success(await self._graph.request(request))

    def list(
        self,
        *,
        name: str | None = None,
        status: str | None = None,
        category: str | None = None,
        language: str | None = None,
        limit: int | None = None,
        fields: Sequence[str] | None = None,
    ) -> AsyncIterator[MessageTemplate]:
        """Every template matching the filters, page after page (``async for``); ``limit`` is
        the page size."""
        request = list_request(
            _require_waba(self._waba_id),
            name=name,
            status=status,
            category=category,
            language=language,
            limit=limit,
            fields=fields,
        )
        return self._pages(request)

    async def _pages(self, request: GraphRequest | None) -> AsyncIterator[MessageTemplate]:
        while request is not None:
            page = parse_page(await self._graph.request(request))
            for template in page.templates:
                yield template
            request = next_page_request(request, page)


# -- the registry and its checks ---------------------------------------------------------------

ProblemKind = Literal[
    "unknown_template",
    "unknown_language",
    "not_approved",
    "paused",
    "disabled",
    "parameter_count",
    "parameter_format",
]
# The Graph code Meta answers for each kind of problem, for fakes that play Meta.
_META_CODES: dict[str, int] = {
    "unknown_template": 132001,
    "unknown_language": 132001,
    "not_approved": 132001,
    "paused": 132015,
    "disabled": 132016,
    "parameter_count": 132000,
    "parameter_format": 132012,
}


@dataclass(frozen=True)
class TemplateProblem:
    """Why a template message does not fit its definition: a ``kind`` and a ``message`` that
    names the fix. ``meta_code`` is the Graph error code Meta answers for the same mistake."""

    kind: ProblemKind
    message: str

    @property
    def meta_code(self) -> int:
        """The 132xxx code of Meta's answer to this mistake."""
        return _META_CODES[self.kind]


@dataclass(frozen=True)
class _ButtonShape:
    index: int
    type: str
    sub_type: str | None  # what a send names it; None: takes no button component
    parameter: str | None  # the one parameter type it takes, if any
    required: bool


@dataclass(frozen=True)
class _Shape:
    named: bool
    header_format: str | None
    header_keys: tuple[str, ...]
    body_keys: tuple[str, ...]
    buttons: tuple[_ButtonShape, ...]
    carousel: bool
    limited_time_offer: bool


# (sub_type at send time, the parameter type it takes, whether a send must give it)
_BUTTON_SENDS: dict[str, tuple[str | None, str | None, bool]] = {
    "QUICK_REPLY": ("quick_reply", "payload", False),
    "PHONE_NUMBER": (None, None, False),
    "COPY_CODE": ("copy_code", "coupon_code", True),
    "OTP": ("url", "text", True),  # the one-time code goes in a url button parameter
    "FLOW": ("flow", "action", False),
    "CATALOG": ("catalog", "action", False),
    "MPM": ("mpm", "action", True),
    "VOICE_CALL": ("voice_call", None, False),
}


def _button_shape(index: int, button: Any) -> _ButtonShape:
    kind = str(getattr(button, "type", "")).upper()
    if isinstance(button, UrlButton):
        dynamic = bool(placeholders(button.url))
        return _ButtonShape(index, kind, "url", "text" if dynamic else None, dynamic)
    sub_type, parameter, required = _BUTTON_SENDS.get(kind, ("*", None, False))
    return _ButtonShape(index, kind, sub_type, parameter, required)


def _shape_of(template: MessageTemplate) -> _Shape:
    components = template.components
    fmt = template.parameter_format
    named = fmt.upper() == "NAMED" if fmt is not None else _has_named_placeholders(components)
    header = template.header
    body = template.body
    body_keys = tuple(dict.fromkeys(placeholders(body.text if body else None)))
    authentication = (template.category or "").upper() == "AUTHENTICATION"
    if body is not None and body.text is None and authentication:
        body_keys = ("1",)  # Meta writes the text; the send gives the one-time code
    return _Shape(
        named=named,
        header_format=header.format.upper() if header is not None else None,
        header_keys=tuple(dict.fromkeys(placeholders(header.text if header else None))),
        body_keys=body_keys,
        buttons=tuple(_button_shape(i, b) for i, b in enumerate(template.buttons)),
        carousel=any(isinstance(c, CarouselDefinition) for c in components),
        limited_time_offer=any(isinstance(c, LimitedTimeOfferDefinition) for c in components),
    )


_MEDIA_PARAMETERS = {
    "IMAGE": ("image", "header=ImageParameter(image=media_ref('https://…'))"),
    "VIDEO": ("video", "header=VideoParameter(video=media_ref('https://…'))"),
    "DOCUMENT": ("document", "header=DocumentParameter(document=media_ref('https://…'))"),
    "LOCATION": (
        "location",
        "header=LocationParameter(location=TemplateLocation(latitude=…, longitude=…))",
    ),
}
_BODY_PARAMETER_TYPES = ("text", "currency", "date_time")


def _count(message: str) -> TemplateProblem:
    return TemplateProblem("parameter_count", message)


def _format(message: str) -> TemplateProblem:
    return TemplateProblem("parameter_format", message)


def _status_problem(who: str, template: MessageTemplate) -> TemplateProblem | None:
    status = (template.status or "").upper()
    if status in ("", "APPROVED"):
        return None
    if status == "PAUSED":
        return TemplateProblem(
            "paused",
            f"{who} is PAUSED: Meta paused it for low quality; send another template until it is "
            "unpaused (a status webhook tells you), or edit it",
        )
    if status == "DISABLED":
        return TemplateProblem(
            "disabled",
            f"{who} is DISABLED after repeated low quality: create a new template to replace it",
        )
    if status == "REJECTED":
        reason = template.rejected_reason
        why = f" ({reason})" if reason and reason.upper() != "NONE" else ""
        return TemplateProblem(
            "not_approved", f"{who} was REJECTED{why}: edit it and submit it for review again"
        )
    if status in ("PENDING", "IN_APPEAL"):
        return TemplateProblem(
            "not_approved",
            f"{who} is {status} review: wait for the APPROVED status webhook before sending it",
        )
    return TemplateProblem(
        "not_approved", f"{who} is {status}: only APPROVED templates can be sent"
    )


def _header_problem(
    who: str, shape: _Shape, header: HeaderComponent | None
) -> TemplateProblem | None:
    fmt = shape.header_format
    if fmt is None:
        return _format(f"{who} has no header: remove the header component") if header else None
    if fmt == "TEXT":
        if not shape.header_keys:
            if header is None:
                return None
            return _count(
                f"{who} has a fixed header text and takes 0 header parameters, got 1: remove "
                "the header component"
            )
        key = shape.header_keys[0]
        if header is None:
            return _count(f"{who} takes 1 header parameter, got 0: pass header=… for {_ph(key)}")
        parameter = header.parameters[0]
        if not isinstance(parameter, TextParameter):
            return _format(f"{who}: the TEXT header takes a text parameter, got {parameter.type}")
        if shape.named and parameter.parameter_name != key:
            return _format(
                f"{who}: the header parameter needs parameter_name {key!r}, "
                f"got {parameter.parameter_name!r}"
            )
        return None
    if fmt not in _MEDIA_PARAMETERS:
        return None  # GIF and PRODUCT headers: Meta's send-time shape is not checked here
    kind, fix = _MEDIA_PARAMETERS[fmt]
    article = "an" if kind[0] in "aeiou" else "a"
    if header is None:
        return _format(
            f"{who}: header of format {fmt} needs {article} {kind} parameter: pass {fix}"
        )
    got = header.parameters[0].type
    if got != kind:
        return _format(
            f"{who}: header of format {fmt} needs {article} {kind} parameter, got {got}: pass {fix}"
        )
    return None


def _parameter_problem(who: str, label: str, parameter: Any) -> TemplateProblem | None:
    if parameter.type not in _BODY_PARAMETER_TYPES:
        return _format(
            f"{who}: body parameter {label} is {parameter.type}; body parameters are text, "
            "currency or date_time"
        )
    if isinstance(parameter, CurrencyParameter):
        currency = parameter.currency
        if not str(getattr(currency, "fallback_value", "") or "").strip():
            return _format(
                f"{who}: currency parameter {label} needs a fallback_value, the amount as "
                "customers should read it (e.g. '12,50 €')"
            )
        if not _CURRENCY_CODE.fullmatch(str(getattr(currency, "code", ""))):
            return _format(
                f"{who}: currency parameter {label} needs an ISO 4217 code such as 'EUR', "
                f"got {getattr(currency, 'code', None)!r}"
            )
    elif isinstance(parameter, DateTimeParameter):
        if not str(getattr(parameter.date_time, "fallback_value", "") or "").strip():
            return _format(
                f"{who}: date_time parameter {label} needs a fallback_value, the date as "
                "customers should read it (e.g. 'Freitag, 6. Juni')"
            )
    elif isinstance(parameter, TextParameter) and isinstance(parameter.text, str):
        if not parameter.text.strip():
            return _format(f"{who}: body parameter {label} is empty: Meta refuses empty text")
        if _BAD_PARAMETER_TEXT.search(parameter.text):
            return _format(
                f"{who}: body parameter {label} holds a newline, a tab or more than 4 spaces in "
                "a row, which Meta refuses: put line breaks in the template text instead"
            )
    return None


def _body_problem(who: str, shape: _Shape, body: BodyComponent | None) -> TemplateProblem | None:
    parameters = list(body.parameters) if body is not None else []
    expected = shape.body_keys
    takes = ", ".join(expected)
    labels: list[str] = []
    if shape.named and expected:
        names = [getattr(p, "parameter_name", None) for p in parameters]
        if any(not name for name in names):
            return _format(
                f"{who} uses named parameters: give every body parameter a parameter_name "
                f"(the body takes {takes}), e.g. body={{{expected[0]!r}: …}}"
            )
        for name in names:
            if names.count(name) > 1:
                return _format(f"{who}: named parameter {name!r} is given twice")
        for key in expected:
            if key not in names:
                return _count(f"{who}: named parameter {key!r} missing; the body takes {takes}")
        for name in names:
            if name not in expected:
                return _count(
                    f"{who}: named parameter {name!r} is not in the template; the body takes "
                    f"{takes}"
                )
        labels = [repr(name) for name in names]
    else:
        if len(parameters) != len(expected):
            return _count(
                f"{who} takes {_plural(len(expected), 'body parameter')}, got {len(parameters)}"
            )
        for parameter in parameters:
            name = getattr(parameter, "parameter_name", None)
            if name:
                return _format(
                    f"{who} uses positional parameters ({_ph('1')}, {_ph('2')}, …): remove "
                    f"parameter_name {name!r}"
                )
        labels = [str(n) for n in range(1, len(parameters) + 1)]
    for label, parameter in zip(labels, parameters, strict=True):
        problem = _parameter_problem(who, label, parameter)
        if problem is not None:
            return problem
    return None


def _button_problem(
    who: str, spec: _ButtonShape, component: ButtonComponent
) -> TemplateProblem | None:
    index = spec.index
    if spec.sub_type is None:
        return _count(
            f"{who}: button {index} is a {spec.type} button and takes no parameters: remove its "
            "button component"
        )
    if spec.sub_type == "*":
        return None  # a button kind waflow does not know: Meta decides
    if component.sub_type.lower() != spec.sub_type:
        return _format(
            f"{who}: button {index} is a {spec.type} button: use sub_type {spec.sub_type!r}, "
            f"got {component.sub_type!r}"
        )
    parameters = component.parameters
    if spec.type == "URL" and spec.parameter is None and parameters:
        return _count(
            f"{who}: button {index} is a URL without a variable and takes no parameters: remove "
            "them"
        )
    if spec.required and len(parameters) != 1:
        return _count(
            f"{who}: button {index} ({spec.type}) takes 1 {spec.parameter} parameter, "
            f"got {len(parameters)}"
        )
    if len(parameters) > 1:
        return _count(f"{who}: button {index} ({spec.type}) takes at most 1 parameter")
    accepted = {spec.parameter, "text"} if spec.type == "QUICK_REPLY" else {spec.parameter}
    for parameter in parameters:
        if parameter.type not in accepted:
            return _format(
                f"{who}: button {index} ({spec.type}) takes a {spec.parameter} parameter, "
                f"got {parameter.type}"
            )
    return None


def _buttons_problem(
    who: str, shape: _Shape, components: Sequence[ButtonComponent]
) -> TemplateProblem | None:
    count = len(shape.buttons)
    given: set[int] = set()
    for component in components:
        index = component.position
        if index in given:
            return _format(f"{who}: button index {index} is given twice")
        given.add(index)
        if index >= count:
            if count == 0:
                return _count(
                    f"button index {index} out of range: {who} has no buttons; remove the button "
                    "component"
                )
            return _count(
                f"button index {index} out of range: {who} has {_plural(count, 'button')} "
                f"(0-{count - 1})"
            )
        problem = _button_problem(who, shape.buttons[index], component)
        if problem is not None:
            return problem
    for spec in shape.buttons:
        if spec.required and spec.index not in given:
            return _count(
                f"{who}: button {spec.index} ({spec.type}) needs a parameter: add "
                f"ButtonComponent(sub_type={spec.sub_type!r}, index={spec.index}, "
                f"parameters=[…{spec.parameter}…])"
            )
    return None


def _message_problem(
    template: MessageTemplate, shape: _Shape, message: Template
) -> TemplateProblem | None:
    who = f"template {template.name!r} ({template.language})"
    problem = _status_problem(who, template)
    if problem is not None:
        return problem
    header: HeaderComponent | None = None
    body: BodyComponent | None = None
    buttons: list[ButtonComponent] = []
    for component in message.components or ():
        if isinstance(component, HeaderComponent):
            if header is not None:
                return _format(f"{who}: give one header component, not two")
            header = component
        elif isinstance(component, BodyComponent):
            if body is not None:
                return _format(f"{who}: give one body component, not two")
            body = component
        elif isinstance(component, ButtonComponent):
            buttons.append(component)
        elif isinstance(component, CarouselComponent) and not shape.carousel:
            return _format(f"{who} has no carousel: remove the carousel component")
        elif isinstance(component, LimitedTimeOfferComponent) and not shape.limited_time_offer:
            return _format(
                f"{who} has no limited-time offer: remove the limited_time_offer component"
            )
    return (
        _header_problem(who, shape, header)
        or _body_problem(who, shape, body)
        or _buttons_problem(who, shape, buttons)
    )


# What a status webhook's `event` makes of a template's status; others are the status itself.
_STATUS_AFTER_EVENT = {"REINSTATED": "APPROVED", "UNPAUSED": "APPROVED", "UNARCHIVED": "APPROVED"}
# Events that say something about a template without changing whether it can be sent.
_STATUS_KEPT_ON = frozenset({"FLAGGED", "LOCKED", "UNLOCKED"})


@dataclass
class _Entry:
    template: MessageTemplate
    shape: _Shape


class TemplateRegistry:
    """Template definitions keyed by ``(name, language)``, checked before every template send.

    Fill it with :meth:`add` (your definitions, or what :meth:`load_from_api` lists), keep it
    current with :meth:`apply` (status, quality and category webhooks), and pass it to a client
    (``WhatsApp(..., templates=registry)``): every template message is then checked by
    :meth:`check` before the request. A template whose status is unknown (``None``) counts as
    sendable. With ``require_registered=False`` templates missing from the registry are let
    through unchecked. Thread-safe: webhooks may update it while other threads send.
    """

    def __init__(
        self,
        templates: Iterable[TemplateDefinition | MessageTemplate] = (),
        *,
        require_registered: bool = True,
    ) -> None:
        self.require_registered = require_registered
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._lock = threading.Lock()
        for template in templates:
            self.add(template)

    # -- contents ------------------------------------------------------------------------------

    def add(
        self,
        template: TemplateDefinition | MessageTemplate,
        *,
        status: str | None = None,
        template_id: str | None = None,
    ) -> MessageTemplate:
        """Register (or replace) a template; ``status`` and ``template_id`` override its own."""
        if isinstance(template, TemplateDefinition):
            listed = MessageTemplate(
                id=template_id,
                name=template.name,
                language=template.language,
                status=status,
                category=template.category,
                parameter_format=template.parameter_format,
                components=list(template.components),
            )
        else:
            updates = {
                key: value
                for key, value in (("status", status), ("id", template_id))
                if value is not None
            }
            listed = template.model_copy(update=updates) if updates else template
        if not listed.name or not listed.language:
            raise MessageValidationError(
                "a registered template needs a name and a language (list templates with both "
                "fields)"
            )
        with self._lock:
            self._entries[listed.key] = _Entry(listed, _shape_of(listed))
        return listed

    def add_all(self, templates: Iterable[TemplateDefinition | MessageTemplate]) -> int:
        """Register every template of ``templates`` (e.g. a listing); return how many."""
        count = 0
        for template in templates:
            self.add(template)
            count += 1
        return count

    def load_from_api(self, resource: Templates, **filters: Any) -> int:
        """Register every template ``resource.list(**filters)`` lists; return how many.

        Leave ``fields`` out: the checks need each template's components and status.
        """
        return self.add_all(resource.list(**filters))

    async def aload_from_api(self, resource: AsyncTemplates, **filters: Any) -> int:
        """Async twin of :meth:`load_from_api`."""
        return self.add_all([template async for template in resource.list(**filters)])

    def get(self, name: str, language: str) -> MessageTemplate | None:
        """The template ``name`` in ``language``, or ``None``."""
        entry = self._entries.get((name, language))
        return entry.template if entry is not None else None

    def by_id(self, template_id: str) -> MessageTemplate | None:
        """The template with Meta's id ``template_id``, or ``None``."""
        for entry in list(self._entries.values()):
            if entry.template.id == template_id:
                return entry.template
        return None

    def languages(self, name: str) -> list[str]:
        """The languages ``name`` is registered in, sorted."""
        return sorted(lang for (other, lang) in list(self._entries) if other == name)

    def remove(self, name: str, language: str | None = None) -> int:
        """Forget ``name`` in ``language`` (every language when ``None``); return how many."""
        with self._lock:
            keys = [
                key
                for key in self._entries
                if key[0] == name and (language is None or key[1] == language)
            ]
            for key in keys:
                del self._entries[key]
        return len(keys)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[MessageTemplate]:
        return iter([entry.template for entry in list(self._entries.values())])

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    # -- webhooks ------------------------------------------------------------------------------

    def apply(self, event: Event) -> MessageTemplate | None:
        """Update a template from a status, quality or category webhook event.

        Returns the updated template, or ``None`` when the event is of another kind or about a
        template this registry does not hold. Status events set ``status`` (REJECTED with its
        ``reason`` in ``rejected_reason``; REINSTATED and UNPAUSED mean APPROVED; FLAGGED keeps
        the status); quality events set ``quality_score``; category events set ``category``.
        """
        if not isinstance(
            event, (TemplateStatusUpdate, TemplateQualityUpdate, TemplateCategoryUpdate)
        ):
            return None
        with self._lock:
            entry = self._find(
                event.message_template_name,
                event.message_template_language,
                event.message_template_id,
            )
            if entry is None:
                return None
            current = entry.template
            updates: dict[str, Any] = {}
            if current.id is None and event.message_template_id:
                updates["id"] = event.message_template_id
            if isinstance(event, TemplateStatusUpdate):
                happened = event.event.upper()
                if happened not in _STATUS_KEPT_ON:
                    status = _STATUS_AFTER_EVENT.get(happened, happened)
                    updates["status"] = status
                    updates["rejected_reason"] = event.reason if status == "REJECTED" else None
                category = (event.model_extra or {}).get("message_template_category")
                if isinstance(category, str) and category:
                    updates["category"] = category
            elif isinstance(event, TemplateQualityUpdate):
                if event.new_quality_score:
                    updates["quality_score"] = QualityScore(score=event.new_quality_score)
            elif event.new_category:
                updates["category"] = event.new_category
                updates["previous_category"] = event.previous_category or current.category
            updated = current.model_copy(update=updates)
            self._entries[updated.key] = _Entry(updated, entry.shape)
            return updated

    def _find(
        self, name: str | None, language: str | None, template_id: str | None
    ) -> _Entry | None:
        if name and language and (name, language) in self._entries:
            return self._entries[(name, language)]
        if template_id:
            for entry in self._entries.values():
                if entry.template.id == template_id:
                    return entry
        return None

    # -- checks --------------------------------------------------------------------------------

    def problem(self, message: TemplateMessage | Template) -> TemplateProblem | None:
        """What is wrong with ``message`` against its registered definition, or ``None``.

        Checks that the template exists in the message's language and is sendable (not PAUSED,
        DISABLED, REJECTED or PENDING), the header parameter against the header's format, the
        number (POSITIONAL) or names (NAMED) of body parameters and their kinds (currencies and
        dates need a ``fallback_value``), and every button component's index, sub_type and
        parameter.
        """
        template = message.template if isinstance(message, TemplateMessage) else message
        name, language = template.name, template.language.code
        entry = self._entries.get((name, language))
        if entry is None:
            languages = self.languages(name)
            if languages:
                return TemplateProblem(
                    "unknown_language",
                    f"no template {name!r} in language {language!r}; registered languages: "
                    f"{', '.join(languages)}",
                )
            if not self.require_registered:
                return None
            return TemplateProblem(
                "unknown_template",
                f"no template {name!r} is registered{self._suggestion(name)}: check the name, "
                "or add its definition to the registry",
            )
        return _message_problem(entry.template, entry.shape, template)

    def check(self, message: TemplateMessage | Template) -> None:
        """Raise :class:`~waflow.errors.TemplateError` naming the fix if :meth:`problem` finds one."""
        problem = self.problem(message)
        if problem is not None:
            raise TemplateError(problem.message)

    def _suggestion(self, name: str) -> str:
        names = sorted({key[0] for key in list(self._entries)})
        close = difflib.get_close_matches(name, names, n=1)
        return f" (did you mean {close[0]!r}?)" if close else ""


# -- files and sync ----------------------------------------------------------------------------

_SUFFIXES = (".json", ".yaml", ".yml")


def _read_document(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML is installed wherever the tests run
        raise ConfigError(
            f"{path}: reading YAML needs PyYAML (pip install pyyaml), or keep templates as JSON"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None


def load_template_files(path: str | os.PathLike[str]) -> list[TemplateDefinition]:
    """Read template definitions from a file or a folder of ``*.json``, ``*.yaml``, ``*.yml``.

    A file holds one definition (the body of a create request) or a list of them; folders are
    read recursively in path order, skipping hidden ones. JSON always works; YAML needs PyYAML.
    A definition that breaks a creation rule raises
    :class:`~waflow.errors.MessageValidationError` naming the file; an unreadable file, or the
    same name and language defined twice, raises :class:`~waflow.errors.ConfigError`.
    """
    root = Path(path)
    if root.is_file():
        files = [root]
    elif root.is_dir():
        files = sorted(
            file
            for file in root.rglob("*")
            if file.suffix.lower() in _SUFFIXES
            and file.is_file()
            and not any(part.startswith(".") for part in file.relative_to(root).parts)
        )
    else:
        raise ConfigError(f"no template files at {root}")
    definitions: list[TemplateDefinition] = []
    origin: dict[tuple[str, str], Path] = {}
    for file in files:
        document = _read_document(file)
        items = document if isinstance(document, list) else [document]
        for number, item in enumerate(items, 1):
            where = f"{file}" if len(items) == 1 else f"{file} (definition {number})"
            try:
                definition = TemplateDefinition.from_body(item)
            except MessageValidationError as exc:
                raise MessageValidationError(
                    f"{where}: {exc}", limit=exc.limit, field=exc.field
                ) from None
            if definition.key in origin:
                raise ConfigError(
                    f"{where}: template {definition.name!r} ({definition.language}) is already "
                    f"defined in {origin[definition.key]}"
                )
            origin[definition.key] = file
            definitions.append(definition)
    return definitions


SyncAction = Literal["create", "update", "unchanged", "delete"]


@dataclass(frozen=True)
class SyncEntry:
    """What :func:`sync_templates` did (or, in a dry run, would do) to one translation.

    ``error`` is Meta's refusal when the action failed.
    """

    action: SyncAction
    name: str
    language: str
    template_id: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the action succeeded (always, in a dry run)."""
        return self.error is None


@dataclass
class SyncReport:
    """The outcome of :func:`sync_templates`: one :class:`SyncEntry` per translation touched."""

    dry_run: bool
    entries: list[SyncEntry] = field(default_factory=list)

    def _of(self, action: SyncAction) -> list[SyncEntry]:
        return [entry for entry in self.entries if entry.action == action and entry.ok]

    @property
    def created(self) -> list[SyncEntry]:
        """Translations created (to be created, in a dry run)."""
        return self._of("create")

    @property
    def updated(self) -> list[SyncEntry]:
        """Translations whose components were edited."""
        return self._of("update")

    @property
    def unchanged(self) -> list[SyncEntry]:
        """Translations already as defined."""
        return self._of("unchanged")

    @property
    def deleted(self) -> list[SyncEntry]:
        """Translations deleted because no file defines them (only with ``prune=True``)."""
        return self._of("delete")

    @property
    def failed(self) -> list[SyncEntry]:
        """Actions Meta refused, with its error."""
        return [entry for entry in self.entries if not entry.ok]

    @property
    def ok(self) -> bool:
        """Whether nothing failed."""
        return not self.failed

    def summary(self) -> str:
        """One line per translation, for a command line: ``create order_update (de)``."""
        prefix = "would " if self.dry_run else ""
        lines = []
        for entry in self.entries:
            verb = entry.action if entry.action == "unchanged" else f"{prefix}{entry.action}"
            line = f"{verb} {entry.name} ({entry.language})"
            lines.append(f"{line}: FAILED: {entry.error}" if entry.error else line)
        return "\n".join(lines)


# Meta answers these with the flow's id; a file naming the flow otherwise is not a change.
_FLOW_REFERENCES = frozenset({"flow_name", "flow_json"})
_CASELESS = frozenset({"type", "format", "otp_type", "flow_action"})


def _matches(defined: Any, listed: Any) -> bool:
    """Whether everything ``defined`` sets equals ``listed`` (samples and case aside).

    Samples are not compared (Meta lists media samples as URLs, not the upload handles), and a
    listing may carry fields a definition leaves out.
    """
    if isinstance(defined, dict):
        if not isinstance(listed, dict):
            return False
        for key, value in defined.items():
            if key == "example" or key in _FLOW_REFERENCES:
                continue
            other = listed.get(key)
            if key in _CASELESS and isinstance(value, str) and isinstance(other, str):
                if value.upper() != other.upper():
                    return False
            elif not _matches(value, other):
                return False
        return True
    if isinstance(defined, list):
        return (
            isinstance(listed, list)
            and len(defined) == len(listed)
            and all(_matches(a, b) for a, b in zip(defined, listed, strict=True))
        )
    return bool(defined == listed)


def _dump_components(components: Sequence[Any]) -> list[Any]:
    return [component.model_dump(mode="json", exclude_none=True) for component in components]


@dataclass(frozen=True)
class _Step:
    action: SyncAction
    name: str
    language: str
    template_id: str | None
    definition: TemplateDefinition | None


def _plan(
    existing: Iterable[MessageTemplate], definitions: Iterable[TemplateDefinition], prune: bool
) -> list[_Step]:
    listed = {template.key: template for template in existing}
    steps: list[_Step] = []
    wanted: set[tuple[str, str]] = set()
    for definition in definitions:
        wanted.add(definition.key)
        current = listed.get(definition.key)
        if current is None:
            steps.append(_Step("create", *definition.key, None, definition))
        elif _matches(
            _dump_components(definition.components), _dump_components(current.components)
        ):
            steps.append(_Step("unchanged", *definition.key, current.id, definition))
        else:
            steps.append(_Step("update", *definition.key, current.id, definition))
    if prune:
        for key, template in listed.items():
            if key not in wanted:
                steps.append(_Step("delete", *key, template.id, None))
    return steps


def _perform(step: _Step, resource: Templates | AsyncTemplates) -> Any:
    """The call of ``step`` on ``resource`` (a value, or an awaitable for an async resource)."""
    if step.action == "create":
        assert step.definition is not None
        return resource.create(step.definition)
    if step.action == "update":
        assert step.definition is not None
        assert step.template_id is not None
        return resource.edit(step.template_id, components=step.definition.components)
    return resource.delete(step.name, template_id=step.template_id)


def _entry(step: _Step, outcome: Any = None, error: Exception | None = None) -> SyncEntry:
    template_id = outcome.id if isinstance(outcome, CreatedTemplate) else step.template_id
    return SyncEntry(
        step.action, step.name, step.language, template_id, str(error) if error else None
    )


def sync_templates(
    resource: Templates,
    definitions: Iterable[TemplateDefinition],
    *,
    dry_run: bool = False,
    prune: bool = False,
) -> SyncReport:
    """Make the account's templates match ``definitions`` (e.g. from :func:`load_template_files`).

    Missing translations are created, translations whose components differ are edited, others
    are reported unchanged. Templates no definition names are left alone unless ``prune=True``,
    which deletes them (that translation only). ``dry_run=True`` only lists and reports what
    would happen. A refused action is reported in ``failed`` and the others still run.
    """
    report = SyncReport(dry_run=dry_run)
    for step in _plan(resource.list(), definitions, prune):
        if dry_run or step.action == "unchanged":
            report.entries.append(_entry(step))
            continue
        try:
            report.entries.append(_entry(step, _perform(step, resource)))
        except APIError as exc:
            report.entries.append(_entry(step, error=exc))
    return report


async def sync_templates_async(
    resource: AsyncTemplates,
    definitions: Iterable[TemplateDefinition],
    *,
    dry_run: bool = False,
    prune: bool = False,
) -> SyncReport:
    """Async twin of :func:`sync_templates`, for ``AsyncWhatsApp(...).templates``."""
    report = SyncReport(dry_run=dry_run)
    existing = [template async for template in resource.list()]
    for step in _plan(existing, definitions, prune):
        if dry_run or step.action == "unchanged":
            report.entries.append(_entry(step))
            continue
        try:
            pending: Awaitable[Any] = _perform(step, resource)
            report.entries.append(_entry(step, await pending))
        except APIError as exc:
            report.entries.append(_entry(step, error=exc))
    return report
