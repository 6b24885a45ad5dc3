"""Shop texts: jinja2 templates per locale, money and dates per locale, WhatsApp formatting, and
Meta's length limits.

A shop keeps its texts in a folder with one sub-folder per locale and one file per text::

    texts/
      de/welcome.j2         Hallo {{ name }}!
      de/product_card.j2    (overrides the card waflow ships)
      en/welcome.j2         Hello {{ name }}!

and renders them with :class:`Texts`::

    >>> texts = Texts("texts")                                        # doctest: +SKIP
    >>> texts.render("welcome", "de_AT", name="Lena")                 # doctest: +SKIP
    'Hallo Lena!'

A locale falls back to its language, then to the ``fallbacks`` given, then to the default locale
(``de_AT`` -> ``de`` -> ``en``). Templates render with ``StrictUndefined`` (a variable that was not
given raises :class:`~waflow.errors.RenderError` naming the template and the variable) and without
HTML escaping: this is chat text, ``<b>&`` stays as written.

Filters: ``money`` and ``date`` (Babel, in the locale asked for), ``bold``, ``italic``, ``strike`` and
``mono`` (WhatsApp's ``*…*``, ``_…_``, ``~…~`` and triple backticks). Meta's length limits are applied
by the policy chosen: ``"reject"`` raises :class:`~waflow.errors.MessageValidationError`,
``"truncate"`` cuts on a word boundary and appends "…" without splitting a character a reader sees
as one (emoji sequences, flags, combining accents).

:func:`product_card` and :func:`order_confirmation` render the templates waflow ships in ``de``,
``en`` and ``fr`` (``waflow/templates/texts``) from catalog data; a shop overrides them by putting a
file of the same name in its own folder.
"""

from __future__ import annotations

import functools
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date as _date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from types import TracebackType
from typing import Literal, Protocol, TypeAlias

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency, get_currency_precision
from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    PrefixLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    TemplatesNotFound,
    TemplateSyntaxError,
    Undefined,
    UndefinedError,
    pass_context,
)
from jinja2.loaders import BaseLoader
from jinja2.runtime import Context

from waflow.errors import ConfigError, MessageValidationError, RenderError
from waflow.messenger import messages as _messenger
from waflow.whatsapp import interactive as _interactive
from waflow.whatsapp.media_refs import CAPTION_MAX
from waflow.whatsapp.messages import TEXT_BODY_MAX

__all__ = [
    "ELLIPSIS",
    "FIELD_LIMITS",
    "LimitPolicy",
    "OrderData",
    "OrderItemData",
    "OrderLine",
    "ProductData",
    "TextField",
    "Texts",
    "enforce_limit",
    "order_confirmation",
    "product_card",
    "truncate",
]

#: What ``"truncate"`` appends to a cut text (one character, counted in the limit).
ELLIPSIS = "…"

#: ``"reject"`` raises :class:`~waflow.errors.MessageValidationError`; ``"truncate"`` shortens.
LimitPolicy = Literal["reject", "truncate"]

#: The fields whose limit :meth:`Texts.render` can apply by name (see :data:`FIELD_LIMITS`).
TextField = Literal[
    "text",
    "body",
    "caption",
    "footer",
    "header",
    "button_title",
    "list_button",
    "row_title",
    "row_description",
    "section_title",
    "cta_display_text",
    "flow_cta",
    "messenger_text",
    "messenger_button_text",
    "messenger_button_title",
    "quick_reply_title",
    "element_title",
    "element_subtitle",
]

#: Named fields -> (Meta's limit in characters, the name the message models use in their errors).
#: The numbers are the constants of the message models, so a text that passes here passes there.
FIELD_LIMITS: Mapping[str, tuple[int, str]] = {
    "text": (TEXT_BODY_MAX, "text body"),
    "body": (_interactive.BODY_MAX, "body text"),
    "caption": (CAPTION_MAX, "media caption"),
    "footer": (_interactive.FOOTER_MAX, "footer text"),
    "header": (_interactive.HEADER_TEXT_MAX, "header text"),
    "button_title": (_interactive.BUTTON_TITLE_MAX, "button title"),
    "list_button": (_interactive.LIST_BUTTON_MAX, "list button label"),
    "row_title": (_interactive.ROW_TITLE_MAX, "list row title"),
    "row_description": (_interactive.ROW_DESCRIPTION_MAX, "list row description"),
    "section_title": (_interactive.SECTION_TITLE_MAX, "section title"),
    "cta_display_text": (_interactive.CTA_DISPLAY_TEXT_MAX, "cta_url display_text"),
    "flow_cta": (_interactive.FLOW_CTA_MAX, "flow_cta"),
    "messenger_text": (_messenger.TEXT_MAX, "Messenger text"),
    "messenger_button_text": (
        _messenger.BUTTON_TEMPLATE_TEXT_MAX,
        "Messenger button template text",
    ),
    "messenger_button_title": (_messenger.BUTTON_TITLE_MAX, "Messenger button title"),
    "quick_reply_title": (_messenger.QUICK_REPLY_TITLE_MAX, "quick reply title"),
    "element_title": (_messenger.ELEMENT_TITLE_MAX, "generic template element title"),
    "element_subtitle": (_messenger.ELEMENT_SUBTITLE_MAX, "generic template element subtitle"),
}

#: An amount of money as catalogs and webhooks carry it (major units: 499.00, not cents).
Amount: TypeAlias = Decimal | int | float | str
#: A folder, as a string or a path.
StrPath: TypeAlias = str | os.PathLike[str]

# Name of the context variable holding the locale the filters format in. Public (documented) so a
# template can show it; prefixed so it cannot collide with a shop's own variables.
_LOCALE_VAR = "waflow_locale"
_TEMPLATE_SUFFIX = ".j2"
_LOCALE_RE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*")
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.-]*)*")
# A word-boundary cut may give back at most half of the room; past that (one long word, a URL)
# the text is cut inside the word instead of losing most of what would fit.
_MIN_WORD_CUT_SHARE = 0.5


# --- catalog data (structural, so this module does not depend on the catalog client) ----------


class ProductData(Protocol):
    """What :func:`product_card` and :func:`order_confirmation` read from a catalog product.

    Any object with these attributes fits: :class:`waflow.whatsapp.catalog.Product`, a model or
    dataclass of the shop's own, a :class:`types.SimpleNamespace`. The template also sees the
    object itself as ``product``, so it can use any further attribute the object has.

    The price is read from an ``amount`` attribute when the object has one that is not ``None``
    (the catalog's ``Product`` parses Meta's display text ``"€499.00"`` into it), else from
    ``price``, which must then be a number in major units (``499.00``, not cents).
    """

    @property
    def retailer_id(self) -> str | None:
        """The shop's id of the product (``product_retailer_id`` in orders)."""
        ...

    @property
    def name(self) -> str | None:
        """The product's name (required by the cards)."""
        ...

    @property
    def description(self) -> str | None:
        """The product's description, if any."""
        ...

    @property
    def price(self) -> Amount | None:
        """The price in major units of :attr:`currency` (see the class for ``amount``)."""
        ...

    @property
    def currency(self) -> str | None:
        """ISO 4217 code of the price (``"EUR"``)."""
        ...

    @property
    def url(self) -> str | None:
        """The product's page in the shop, if any."""
        ...


class OrderItemData(Protocol):
    """One line of an order, as in :class:`waflow.whatsapp.events.OrderItem`."""

    @property
    def product_retailer_id(self) -> str:
        """The ordered product's retailer id."""
        ...

    @property
    def quantity(self) -> int:
        """How many were ordered."""
        ...

    @property
    def item_price(self) -> Amount:
        """The unit price in major units."""
        ...

    @property
    def currency(self) -> str:
        """ISO 4217 code of the price."""
        ...


class OrderData(Protocol):
    """An order, as in :class:`waflow.whatsapp.events.Order` (its ``text``, if any, is the note)."""

    @property
    def items(self) -> Sequence[OrderItemData]:
        """The order's lines."""
        ...


@dataclass(frozen=True)
class OrderLine:
    """One line of an order as the ``order_confirmation`` template sees it (in ``lines``).

    ``name`` is the product's name, or its retailer id when the product is not among those given
    (a confirmation must go out even when the catalog copy is stale). ``total`` is
    ``quantity * unit_price``, computed in :class:`~decimal.Decimal`.
    """

    retailer_id: str
    name: str
    quantity: int
    unit_price: Decimal
    currency: str
    total: Decimal
    product: ProductData | None


# --- grapheme clusters and the limit policy ---------------------------------------------------

_ZWJ = "\u200d"


def _extends(char: str) -> bool:
    """Whether ``char`` belongs to the character before it (it never starts a new cluster)."""
    code = ord(char)
    return (
        unicodedata.category(char) in ("Mn", "Me", "Mc")  # combining accents, keycap, vowel signs
        or char in (_ZWJ, "\u200c")
        or 0xFE00 <= code <= 0xFE0F  # variation selectors (emoji vs text style)
        or 0x1F3FB <= code <= 0x1F3FF  # skin tone modifiers
        or 0xE0020 <= code <= 0xE007F  # tag sequences (subdivision flags)
        or 0xE0100 <= code <= 0xE01EF  # variation selectors supplement
    )


def _is_regional_indicator(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def _cluster_ends(text: str) -> Iterator[int]:
    """The end offsets of ``text``'s user-perceived characters (extended grapheme clusters).

    A compact form of Unicode's UAX #29 rules that matter in chat text: CR LF, combining marks,
    ZWJ sequences (👨‍👩‍👧), variation selectors, skin tones (👍🏽), flags as regional indicator
    pairs (🇩🇪), tag sequences and keycaps. Python strings hold code points, so surrogate pairs
    cannot be split in the first place.
    """
    index, size = 0, len(text)
    while index < size:
        char = text[index]
        end = index + 1
        if char == "\r" and end < size and text[end] == "\n":
            end += 1
        elif unicodedata.category(char) not in ("Cc", "Zl", "Zp"):
            if _is_regional_indicator(char) and end < size and _is_regional_indicator(text[end]):
                end += 1
            while end < size and (
                _extends(text[end])
                # After a zero-width joiner the next emoji belongs to the same sequence.
                or (text[end - 1] == _ZWJ and not text[end].isspace() and text[end].isprintable())
            ):
                end += 1
        yield end
        index = end


def truncate(text: str, limit: int, *, ellipsis: str = ELLIPSIS) -> str:
    """``text`` cut to at most ``limit`` characters, ``ellipsis`` included, if it is longer.

    The cut falls after the last whole word that fits, unless that would give back more than half
    of the room (one long word, a URL), in which case it falls inside the word. It never splits a
    user-perceived character: an emoji sequence, a flag or a letter with combining accents is kept
    whole or dropped whole. Whitespace before the ellipsis is removed. Characters are counted as
    Meta's limits are checked by the message models (code points, ``len``).

    Raises :class:`ValueError` when ``limit`` cannot hold the ellipsis.
    """
    if len(text) <= limit:
        return text
    if limit < len(ellipsis):
        raise ValueError(f"limit {limit} cannot hold the ellipsis {ellipsis!r}")
    room = limit - len(ellipsis)
    cut = 0  # the end of the last whole cluster that fits
    word_cut = 0  # the end of the last word that fits (the start of the whitespace after it)
    for end in _cluster_ends(text):
        if end > room:
            # The cut is on a word boundary already when the next character is whitespace.
            if text[cut : cut + 1].isspace():
                word_cut = cut
            break
        if text[cut:end].isspace() and cut > 0 and not text[cut - 1].isspace():
            word_cut = cut
        cut = end
    if word_cut >= room * _MIN_WORD_CUT_SHARE:
        cut = word_cut
    return text[:cut].rstrip() + ellipsis


def enforce_limit(
    text: str,
    limit: int | TextField,
    *,
    policy: LimitPolicy = "reject",
    source: str = "text",
) -> str:
    """Apply ``policy`` to a ``text`` longer than ``limit`` (a number of characters or a field name).

    ``"reject"`` raises :class:`~waflow.errors.MessageValidationError` naming ``source`` (for example
    ``"template 'product_card' (de)"``), the field, the limit and the length; ``"truncate"`` returns
    :func:`truncate`'s cut. A text within the limit is returned as it is. An unknown field name or
    policy raises :class:`~waflow.errors.ConfigError`.
    """
    maximum, what = _resolve_limit(limit)
    if len(text) <= maximum:
        return text
    if policy == "truncate":
        return truncate(text, maximum)
    if policy != "reject":
        raise ConfigError(f"limit_policy must be 'reject' or 'truncate', got {policy!r}")
    rule = f"{what} <= {maximum} characters"
    raise MessageValidationError(
        f"{source} is {len(text)} characters long, over the limit for {what} "
        f"(limit: {rule}); shorten the text or use limit_policy='truncate'",
        limit=rule,
        field=what,
    )


def _resolve_limit(limit: int | str) -> tuple[int, str]:
    if isinstance(limit, bool) or not isinstance(limit, (int, str)):
        raise ConfigError(f"limit must be a number of characters or a field name, got {limit!r}")
    if isinstance(limit, int):
        if limit < 1:
            raise ConfigError(f"limit must be at least 1 character, got {limit}")
        return limit, "text"
    try:
        return FIELD_LIMITS[limit]
    except KeyError:
        known = ", ".join(sorted(FIELD_LIMITS))
        raise ConfigError(f"limit={limit!r} is not a known field; known fields: {known}") from None


# --- locales ----------------------------------------------------------------------------------


def _normalize_locale(value: str, *, argument: str = "locale") -> str:
    """``de-at`` -> ``de_AT``, ``zh-hant-tw`` -> ``zh_Hant_TW``; the folder names of a text folder."""
    if not isinstance(value, str) or not _LOCALE_RE.fullmatch(value):
        raise ConfigError(f"{argument} must be a locale such as 'de' or 'de_AT', got {value!r}")
    language, *rest = re.split(r"[-_]", value)
    parts = [language.lower()]
    for part in rest:
        if len(part) == 4 and part.isalpha():
            parts.append(part.title())  # script
        elif (len(part) == 2 and part.isalpha()) or (len(part) == 3 and part.isdigit()):
            parts.append(part.upper())  # region
        else:
            parts.append(part.lower())  # variant
    return "_".join(parts)


@functools.lru_cache(maxsize=256)
def _babel_locale(chain: tuple[str, ...]) -> str:
    """The first locale of ``chain`` Babel has data for (formatting must never fail on a locale)."""
    for candidate in chain:
        try:
            return str(Locale.parse(candidate))
        except (UnknownLocaleError, ValueError):
            continue
    return "en"


# --- filters ----------------------------------------------------------------------------------


class _FilterError(Exception):
    """A filter got a value it cannot format; :meth:`Texts.render` adds the template and line."""


def _defined(value: object) -> object:
    # StrictUndefined raises its UndefinedError (naming the variable) when turned into a string;
    # doing that first makes a missing variable fail as "undefined", not as "not an amount".
    if isinstance(value, Undefined):
        str(value)
        return ""
    return value


def _to_decimal(amount: object, what: str) -> Decimal:
    amount = _defined(amount)
    if isinstance(amount, Decimal):
        result = amount
    elif isinstance(amount, bool) or not isinstance(amount, (int, float, str)):
        raise _FilterError(f"{what} needs a number, got {amount!r}")
    else:
        try:
            # str() first: Decimal(0.1) would carry the binary float's 55 digits into the total.
            result = Decimal(str(amount).strip())
        except InvalidOperation:
            raise _FilterError(f"{what} needs a number, got {amount!r}") from None
    if not result.is_finite():
        raise _FilterError(f"{what} needs a finite number, got {amount!r}")
    return result


def _format_locale(context: Context, locale: str | None) -> str:
    if locale is not None:  # a locale the template names, e.g. money("EUR", "de")
        try:
            return _babel_locale((_normalize_locale(locale), "en"))
        except ConfigError as exc:
            raise _FilterError(str(exc)) from None
    value = context.get(_LOCALE_VAR)
    return value if isinstance(value, str) else "en"


@pass_context
def _money_filter(
    context: Context, amount: object, currency: object, locale: str | None = None
) -> str:
    """``{{ 499 | money("EUR") }}`` -> ``499,00 €`` in ``de``, ``€499.00`` in ``en``."""
    value = _to_decimal(amount, "money")
    code = _defined(currency)
    if not isinstance(code, str) or not code.strip():
        raise _FilterError(f"money needs a currency code such as 'EUR', got {code!r}")
    code = code.strip().upper()
    # Shops round half up (0.125 -> 0.13); Babel would round half to even (0.12).
    exponent = Decimal(1).scaleb(-get_currency_precision(code))
    try:
        value = value.quantize(exponent, rounding=ROUND_HALF_UP)
    except InvalidOperation:  # more digits than decimal's context holds
        raise _FilterError(f"money cannot format {amount!r}: too many digits") from None
    return format_currency(value, code, locale=_format_locale(context, locale))


@pass_context
def _date_filter(
    context: Context, value: object, format: str = "medium", locale: str | None = None
) -> str:
    """``{{ day | date }}`` -> ``24.12.2026`` in ``de``; ``format`` is Babel's (``"long"``, ``"d. MMMM"``)."""
    day = _defined(value)
    if not isinstance(day, _date):  # a datetime is a date too; its own calendar day is shown
        raise _FilterError(f"date needs a date or datetime, got {day!r}")
    return format_date(day, format=format, locale=_format_locale(context, locale))


def _wrap(value: object, marker: str, *, per_line: bool) -> str:
    # WhatsApp only formats when the markers touch the text (`*a*`, never `* a *`), so whitespace
    # around the text moves outside the markers, and blank text gets none (`**` would show as is).
    text = str(_defined(value))
    lines = text.split("\n") if per_line else [text]
    wrapped = []
    for line in lines:
        core = line.strip()
        if not core:
            wrapped.append(line)
            continue
        start = len(line) - len(line.lstrip())
        wrapped.append(f"{line[:start]}{marker}{core}{marker}{line[start + len(core) :]}")
    return "\n".join(wrapped)


def _bold_filter(value: object) -> str:
    """``{{ name | bold }}`` -> ``*name*``; each line on its own (the markers do not span lines)."""
    return _wrap(value, "*", per_line=True)


def _italic_filter(value: object) -> str:
    """``{{ name | italic }}`` -> ``_name_``; each line on its own."""
    return _wrap(value, "_", per_line=True)


def _strike_filter(value: object) -> str:
    """``{{ old_price | strike }}`` -> ``~old_price~``; each line on its own."""
    return _wrap(value, "~", per_line=True)


def _mono_filter(value: object) -> str:
    """``{{ code | mono }}`` -> ````` ```code``` `````; one block, which may span lines."""
    return _wrap(value, "```", per_line=False)


def _finalize(value: object) -> object:
    # `{{ product.description }}` of a product without one must not show "None" to a customer.
    return "" if value is None else value


# --- the environment --------------------------------------------------------------------------


class Texts:
    """A shop's texts: jinja2 templates in ``<folder>/<locale>/<name>.j2``, rendered per locale.

    ``folder`` is the shop's folder (or several, searched in order; ``None`` for only the shipped
    texts). With ``shipped=True`` waflow's own templates (``product_card``, ``order_confirmation``
    in ``de``, ``en``, ``fr``) come after the shop's folders, so a shop file of the same name and
    locale overrides them; they stay reachable as ``waflow/<locale>/<name>.j2`` for
    ``{% include %}`` and ``{% extends %}``.

    A locale falls back step by step until a template is found: an explicit entry of ``fallbacks``
    first, else the locale without its last part (``de_AT`` -> ``de``), else ``default_locale``.
    So with the defaults ``de_AT`` -> ``de`` -> ``en`` and ``es`` -> ``en``; with
    ``fallbacks={"de_CH": "fr"}``, ``de_CH`` -> ``fr`` -> ``en``.

    ``limit_policy`` says what :meth:`render` does with a text over the limit it is asked to keep:
    ``"reject"`` (raise :class:`~waflow.errors.MessageValidationError`) or ``"truncate"`` (see
    :func:`truncate`). Compiled templates are cached by the one jinja2 environment of this object
    (:attr:`environment`); ``auto_reload`` re-reads a template whose file changed.

    Raises :class:`~waflow.errors.ConfigError` for a malformed locale or an unknown policy.
    """

    def __init__(
        self,
        folder: StrPath | Sequence[StrPath] | None = None,
        *,
        default_locale: str = "en",
        fallbacks: Mapping[str, str] | None = None,
        limit_policy: LimitPolicy = "reject",
        shipped: bool = True,
        auto_reload: bool = True,
    ) -> None:
        if limit_policy not in ("reject", "truncate"):
            raise ConfigError(f"limit_policy must be 'reject' or 'truncate', got {limit_policy!r}")
        self._default_locale = _normalize_locale(default_locale, argument="default_locale")
        self._fallbacks = {
            _normalize_locale(key, argument="fallbacks"): _normalize_locale(
                value, argument="fallbacks"
            )
            for key, value in (fallbacks or {}).items()
        }
        self._limit_policy: LimitPolicy = limit_policy
        if folder is None:
            folders: list[StrPath] = []
        elif isinstance(folder, (str, os.PathLike)):
            folders = [folder]
        else:
            folders = list(folder)
        self._folders = tuple(os.fspath(path) for path in folders)
        loaders: list[BaseLoader] = []
        if self._folders:
            loaders.append(FileSystemLoader(self._folders, encoding="utf-8"))
        if shipped:
            package = PackageLoader("waflow", "templates/texts")
            # Also as "waflow/<locale>/<name>.j2": a shop's own product_card.j2 can include or
            # extend the shipped one, which its plain name would not reach (the shop's comes first).
            loaders += [package, PrefixLoader({"waflow": package})]
        self._shipped = shipped
        self._environment = Environment(
            loader=ChoiceLoader(loaders),
            undefined=StrictUndefined,
            # Chat text, not HTML: "<b>&" must reach the customer as written. Nothing rendered
            # here goes into a web page, so there is no markup to inject into.
            autoescape=False,  # noqa: S701
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=auto_reload,
            finalize=_finalize,
        )
        self._environment.filters.update(
            money=_money_filter,
            date=_date_filter,
            bold=_bold_filter,
            italic=_italic_filter,
            strike=_strike_filter,
            mono=_mono_filter,
        )

    @property
    def environment(self) -> Environment:
        """The jinja2 environment: add your own filters or globals here (``filters["x"] = f``)."""
        return self._environment

    @property
    def default_locale(self) -> str:
        """The locale every chain ends in."""
        return self._default_locale

    @property
    def limit_policy(self) -> LimitPolicy:
        """What :meth:`render` does with an over-long text unless told otherwise."""
        return self._limit_policy

    def __repr__(self) -> str:
        return (
            f"Texts(folders={list(self._folders)!r}, default_locale={self._default_locale!r}, "
            f"limit_policy={self._limit_policy!r}, shipped={self._shipped!r})"
        )

    def locale_chain(self, locale: str) -> tuple[str, ...]:
        """The locales tried for ``locale``, nearest first: ``"de-AT"`` -> ``("de_AT", "de", "en")``.

        Raises :class:`~waflow.errors.ConfigError` for a string that is not a locale.
        """
        chain: list[str] = []
        current = _normalize_locale(locale)
        while current not in chain:  # a cycle in `fallbacks` ends where it repeats
            chain.append(current)
            if current in self._fallbacks:
                current = self._fallbacks[current]
            elif "_" in current:
                current = current.rsplit("_", 1)[0]
            else:
                current = self._default_locale
        return tuple(chain)

    def resolve(self, name: str, locale: str) -> str:
        """The template :meth:`render` would use for ``name`` in ``locale``, e.g. ``"de/welcome.j2"``.

        Raises :class:`~waflow.errors.RenderError` when no locale of the chain has it, or when the
        template found does not compile.
        """
        return self._template(name, locale).name or ""

    def render(
        self,
        name: str,
        locale: str,
        variables: Mapping[str, object] | None = None,
        /,
        *,
        limit: int | TextField | None = None,
        limit_policy: LimitPolicy | None = None,
        **more: object,
    ) -> str:
        """Render text ``name`` for ``locale`` with ``variables`` and ``**more``, stripped of
        surrounding whitespace.

        ``name`` and ``locale`` are positional, so templates are free to use variables of those
        names; variables called ``limit`` or ``limit_policy`` go in the ``variables`` mapping.
        ``limit`` is a number of characters or a field name of :data:`FIELD_LIMITS` (``"text"``,
        ``"body"``, ``"button_title"``, …); ``None`` checks no length. ``limit_policy`` overrides
        the policy of this object for this call. Money and dates are formatted in ``locale``
        (``de_AT`` formats the Austrian way even when the text comes from ``de/``); templates see it
        as ``waflow_locale``.

        Raises :class:`~waflow.errors.RenderError` (unknown text, syntax error, undefined variable,
        a value a filter cannot format) and, under ``"reject"``,
        :class:`~waflow.errors.MessageValidationError` for a text over ``limit``.
        """
        chain = self.locale_chain(locale)
        template = self._template(name, locale)
        context: dict[str, object] = dict(variables or {})
        context.update(more)
        context[_LOCALE_VAR] = _babel_locale(chain)
        try:
            text = template.render(context)
        except UndefinedError as exc:
            raise self._undefined_error(exc, name, locale, template) from exc
        except TemplateSyntaxError as exc:  # from an `{% include %}` compiled while rendering
            raise self._syntax_error(exc, name, locale) from exc
        except (_FilterError, TemplateError) as exc:
            filename, lineno = _template_frame(exc.__traceback__)
            where = _where(template.name, filename, lineno)
            if isinstance(exc, TemplateNotFound):  # {% include %}, {% extends %}, {% import %}
                problem = f"uses template {exc.message or exc.name!r}, which does not exist"
            else:
                problem = str(exc)
            raise RenderError(
                f"template {name!r} ({locale}, {where}): {problem}",
                template=name,
                locale=locale,
                path=template.name,
                filename=filename,
                lineno=lineno,
            ) from exc
        text = text.strip()
        if limit is None:
            return text
        return enforce_limit(
            text,
            limit,
            policy=limit_policy or self._limit_policy,
            source=f"template {name!r} ({locale}, {template.name})",
        )

    # -- internals -----------------------------------------------------------------------------

    def _template(self, name: str, locale: str) -> Template:
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or ".." in name.split("/"):
            raise RenderError(
                f"text name must look like 'product_card' or 'orders/shipped', got {name!r}",
                template=str(name),
                locale=locale,
            )
        file_name = name if name.endswith(_TEMPLATE_SUFFIX) else name + _TEMPLATE_SUFFIX
        paths = [f"{candidate}/{file_name}" for candidate in self.locale_chain(locale)]
        try:
            # jinja2 tries them in order and caches what it compiled, keyed by path.
            return self._environment.select_template(paths)
        except TemplatesNotFound:
            places = [repr(folder) for folder in self._folders]
            if self._shipped:
                places.append("waflow's shipped texts")
            raise RenderError(
                f"no template {name!r} for locale {locale!r}: looked for {', '.join(paths)} in "
                f"{', '.join(places) or 'no folder'}",
                template=name,
                locale=locale,
            ) from None
        except TemplateSyntaxError as exc:
            raise self._syntax_error(exc, name, locale) from exc

    @staticmethod
    def _syntax_error(exc: TemplateSyntaxError, name: str, locale: str) -> RenderError:
        filename = exc.filename or exc.name
        return RenderError(
            f"template {name!r} ({locale}): syntax error in {filename}, line {exc.lineno}: "
            f"{exc.message}",
            template=name,
            locale=locale,
            path=exc.name,
            filename=exc.filename,
            lineno=exc.lineno,
        )

    def _undefined_error(
        self, exc: UndefinedError, name: str, locale: str, template: Template
    ) -> RenderError:
        filename, lineno = _template_frame(exc.__traceback__)
        source_line = _source_line(filename, lineno)
        variable = _undefined_variable(exc.message or "", source_line)
        where = _where(template.name, filename, lineno)
        what = f"variable {variable!r} is undefined" if variable else str(exc.message)
        return RenderError(
            f"template {name!r} ({locale}, {where}): {what}; pass it to render() or guard it "
            "with `is defined`",
            template=name,
            locale=locale,
            path=template.name,
            filename=filename,
            lineno=lineno,
            variable=variable,
        )


def _template_frame(tb: TracebackType | None) -> tuple[str | None, int | None]:
    """File and line of the innermost template frame of a traceback jinja2 rewrote."""
    found: tuple[str | None, int | None] = (None, None)
    while tb is not None:
        # jinja2 re-raises template errors from fake frames whose globals carry this key and
        # whose file and line are the template's own (jinja2.debug.fake_traceback).
        if "__jinja_exception__" in tb.tb_frame.f_globals:
            found = (tb.tb_frame.f_code.co_filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


def _where(path: str | None, filename: str | None, lineno: int | None) -> str:
    place = filename or path or "<template>"
    return place if lineno is None else f"{place} line {lineno}"


def _source_line(filename: str | None, lineno: int | None) -> str:
    if not filename or lineno is None or not os.path.isfile(filename):
        return ""
    try:
        with open(filename, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if number == lineno:
                    return line
    except (OSError, UnicodeDecodeError):
        return ""
    return ""


_UNDEFINED_NAME = re.compile(r"'(?P<name>.+)' is undefined")
_NO_ATTRIBUTE = re.compile(r".+ has no attribute '(?P<name>.+)'")
_NO_ELEMENT = re.compile(r".+ has no element (?P<name>.+)")
_PATH = r"[A-Za-z_][\w.]*"


def _undefined_variable(message: str, source_line: str) -> str | None:
    """The undefined name in jinja2's message, as the template wrote it where the line tells.

    jinja2 says ``'dict object' has no attribute 'prize'``; the template line ``{{ product.prize }}``
    turns that into ``product.prize``.
    """
    if match := _UNDEFINED_NAME.fullmatch(message):
        return match["name"]
    if match := _NO_ATTRIBUTE.fullmatch(message):
        attribute = match["name"]
        escaped = re.escape(attribute)
        written = re.search(rf"({_PATH})\.{escaped}(?!\w)", source_line) or re.search(
            rf"({_PATH})\[\s*['\"]{escaped}['\"]\s*\]", source_line
        )
        return f"{written[1]}.{attribute}" if written else attribute
    if match := _NO_ELEMENT.fullmatch(message):
        element = match["name"]
        written = re.search(rf"({_PATH})\[\s*{re.escape(element)}\s*\]", source_line)
        return f"{written[1]}[{element}]" if written else f"[{element}]"
    return None


# --- product cards and order confirmations ----------------------------------------------------


def product_card(
    texts: Texts,
    product: ProductData,
    locale: str,
    *,
    limit: int | TextField | None = "text",
    template: str = "product_card",
    variables: Mapping[str, object] | None = None,
) -> str:
    """A product's card for a chat: name, description, price in the locale's format, link.

    Renders ``template`` (the shipped ``product_card`` unless the shop's folder has its own) with
    ``product`` (the object itself), ``price`` (a :class:`~decimal.Decimal`, or ``None`` for a
    product without one: the shipped cards then show no price), ``currency`` and any
    ``variables``. ``limit`` defaults to a text message's 4096 characters; use ``"caption"`` for
    the caption of the product's image.

    Raises :class:`~waflow.errors.RenderError` for a product without a name, a price that is not a
    number or has no currency, and as :meth:`Texts.render` does.
    """
    label = f"product {product.retailer_id!r}"
    if not product.name:
        raise RenderError(
            f"template {template!r} ({locale}): {label} has no name; fetch the catalog's "
            "products with their name",
            template=template,
            locale=locale,
        )
    price = _product_price(product, template, locale)
    if price is not None and not product.currency:
        raise RenderError(
            f"template {template!r} ({locale}): {label} has a price but no currency",
            template=template,
            locale=locale,
        )
    context = dict(variables or {})
    context.update(product=product, price=price, currency=product.currency)
    return texts.render(template, locale, context, limit=limit)


def order_confirmation(
    texts: Texts,
    order: OrderData,
    products: Mapping[str, ProductData] | Iterable[ProductData],
    locale: str,
    *,
    limit: int | TextField | None = "text",
    template: str = "order_confirmation",
    variables: Mapping[str, object] | None = None,
) -> str:
    """The confirmation of an order from the catalog: each line, the total, the customer's note.

    ``products`` (a mapping by retailer id, or any iterable of products) give the lines their
    names; a line whose product is missing shows its retailer id. The template sees ``order``,
    ``lines`` (:class:`OrderLine` each), ``total`` (a :class:`~decimal.Decimal`, summed exactly),
    ``currency``, ``item_count`` (the sum of quantities), ``note`` (the order's ``text`` or
    ``None``) and any ``variables``.

    Raises :class:`~waflow.errors.RenderError` for an order without items, with several currencies
    or with a price that is not a number, and as :meth:`Texts.render` does.
    """
    if isinstance(products, Mapping):
        by_id: dict[str, ProductData] = dict(products)
    else:
        by_id = {
            product.retailer_id: product for product in products if product.retailer_id is not None
        }
    lines: list[OrderLine] = []
    for item in order.items:
        unit_price = _amount(
            item.item_price, f"price of {item.product_retailer_id!r}", template, locale
        )
        product = by_id.get(item.product_retailer_id)
        lines.append(
            OrderLine(
                retailer_id=item.product_retailer_id,
                name=(product.name if product is not None else None) or item.product_retailer_id,
                quantity=item.quantity,
                unit_price=unit_price,
                currency=item.currency,
                total=unit_price * item.quantity,
                product=product,
            )
        )
    if not lines:
        raise RenderError(
            f"template {template!r} ({locale}): the order has no items to confirm",
            template=template,
            locale=locale,
        )
    currencies = sorted({line.currency for line in lines})
    if len(currencies) > 1:
        raise RenderError(
            f"template {template!r} ({locale}): the order mixes currencies "
            f"{', '.join(currencies)}; one total cannot be formed",
            template=template,
            locale=locale,
        )
    context = dict(variables or {})
    context.update(
        order=order,
        lines=lines,
        total=sum((line.total for line in lines), Decimal(0)),
        currency=currencies[0],
        item_count=sum(line.quantity for line in lines),
        note=getattr(order, "text", None) or None,
    )
    return texts.render(template, locale, context, limit=limit)


def _product_price(product: ProductData, template: str, locale: str) -> Decimal | None:
    # Duck-typed on purpose: the catalog's Product keeps Meta's display text in `price` and the
    # parsed number in `amount`; a shop's own model usually has only a numeric `price`.
    amount = getattr(product, "amount", None)
    value = amount if amount is not None else product.price
    if value is None:
        return None
    return _amount(value, f"price of product {product.retailer_id!r}", template, locale)


def _amount(value: object, what: str, template: str, locale: str) -> Decimal:
    try:
        return _to_decimal(value, what)
    except _FilterError as exc:
        raise RenderError(
            f"template {template!r} ({locale}): {exc}", template=template, locale=locale
        ) from exc
