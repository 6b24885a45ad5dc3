"""Shop texts (waflow.render): locales, strict variables, filters, Meta's limits, cards and orders.

Money is asserted exactly as Babel formats it: ``\\xa0`` is a no-break space, ``\\u202f`` a narrow
no-break space (French thousands).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import get_args

import pytest
from jinja2 import TemplateSyntaxError, UndefinedError

from waflow.errors import ConfigError, MessageValidationError, RenderError, WaflowError
from waflow.render import (
    ELLIPSIS,
    FIELD_LIMITS,
    TextField,
    Texts,
    enforce_limit,
    order_confirmation,
    product_card,
    truncate,
)
from waflow.whatsapp.events import Order
from waflow.whatsapp.interactive import BODY_MAX, BUTTON_TITLE_MAX, FOOTER_MAX
from waflow.whatsapp.messages import TEXT_BODY_MAX

NBSP = "\u00a0"
NNBSP = "\u202f"


def write(folder: Path, path: str, text: str) -> Path:
    file = folder / path
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(text, encoding="utf-8")
    return file


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    folder = tmp_path / "texts"
    write(folder, "en/welcome.j2", "Hello {{ name }}!\n")
    write(folder, "de/welcome.j2", "Hallo {{ name }}!\n")
    write(folder, "fr/welcome.j2", "Bonjour {{ name }}{{ '\u202f' }}!\n")
    return folder


@dataclass(frozen=True)
class Product:
    retailer_id: str
    name: str
    description: str | None
    price: Decimal | float | str
    currency: str
    url: str | None


GRINDER = Product(
    retailer_id="grinder",
    name="Kaffeemühle",
    description="Handmühle aus Buche.",
    price=Decimal("499"),
    currency="EUR",
    url="https://shop.example/grinder",
)
BEANS = Product(
    retailer_id="beans",
    name="Bohnen 1 kg",
    description=None,
    price=18.5,
    currency="EUR",
    url=None,
)


def webhook_order(*items: tuple[str, int, float], text: str | None = None) -> Order:
    """An order as `waflow.webhooks.parse` gives it (item_price is a JSON number)."""
    return Order.model_validate(
        {
            "catalog_id": "cat-1",
            "text": text,
            "product_items": [
                {
                    "product_retailer_id": rid,
                    "quantity": quantity,
                    "item_price": price,
                    "currency": "EUR",
                }
                for rid, quantity, price in items
            ],
        }
    )


# --- locales and lookup -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "expected"),
    [("de", "Hallo Lena!"), ("en", "Hello Lena!"), ("fr", f"Bonjour Lena{NNBSP}!")],
)
def test_text_renders_in_its_locale(shop: Path, locale: str, expected: str) -> None:
    assert Texts(shop).render("welcome", locale, name="Lena") == expected


def test_regional_locale_falls_back_to_its_language(shop: Path) -> None:
    texts = Texts(shop)
    assert texts.locale_chain("de_AT") == ("de_AT", "de", "en")
    assert texts.resolve("welcome", "de_AT") == "de/welcome.j2"
    assert texts.render("welcome", "de_AT", name="Lena") == "Hallo Lena!"
    # Meta's and browsers' spellings of the same locale.
    assert texts.render("welcome", "de-at", name="Lena") == "Hallo Lena!"


def test_unknown_language_falls_back_to_the_default_locale(shop: Path) -> None:
    texts = Texts(shop)
    assert texts.locale_chain("es") == ("es", "en")
    assert texts.render("welcome", "es", name="Lena") == "Hello Lena!"
    assert Texts(shop, default_locale="de").render("welcome", "es", name="Lena") == "Hallo Lena!"


def test_explicit_fallbacks_come_before_the_language_and_cycles_end(shop: Path) -> None:
    texts = Texts(shop, fallbacks={"de_CH": "fr", "ca": "es", "es": "ca"})
    assert texts.locale_chain("de_CH") == ("de_CH", "fr", "en")
    assert texts.render("welcome", "de_CH", name="Lena") == f"Bonjour Lena{NNBSP}!"
    assert texts.locale_chain("ca") == ("ca", "es")
    with pytest.raises(RenderError, match=r"looked for ca/welcome\.j2, es/welcome\.j2"):
        texts.render("welcome", "ca", name="Lena")


def test_unknown_text_names_what_was_looked_for(shop: Path) -> None:
    with pytest.raises(RenderError) as caught:
        Texts(shop).render("goodbye", "de_AT")
    message = str(caught.value)
    assert "no template 'goodbye' for locale 'de_AT'" in message
    assert "de_AT/goodbye.j2, de/goodbye.j2, en/goodbye.j2" in message
    assert str(shop) in message and "waflow's shipped texts" in message
    assert caught.value.template == "goodbye" and caught.value.locale == "de_AT"


@pytest.mark.parametrize("name", ["../secrets", "de/../../x", "", "a b"])
def test_text_names_cannot_leave_the_folder(shop: Path, name: str) -> None:
    with pytest.raises(RenderError, match="text name must look like"):
        Texts(shop).render(name, "de")


@pytest.mark.parametrize("locale", ["", "deutsch!", "../en", "d"])
def test_malformed_locale_is_a_config_error(shop: Path, locale: str) -> None:
    with pytest.raises(ConfigError, match="locale must be a locale such as 'de'"):
        Texts(shop).render("welcome", locale, name="Lena")


def test_bad_constructor_arguments_are_config_errors(shop: Path) -> None:
    with pytest.raises(ConfigError, match="limit_policy must be 'reject' or 'truncate'"):
        Texts(shop, limit_policy="shorten")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="default_locale"):
        Texts(shop, default_locale="english!")


# --- strict variables and syntax errors -------------------------------------------------------


def test_missing_variable_names_template_locale_and_variable(shop: Path) -> None:
    with pytest.raises(RenderError) as caught:
        Texts(shop).render("welcome", "de_AT")
    error = caught.value
    assert isinstance(error, WaflowError)
    assert isinstance(error.__cause__, UndefinedError)
    assert (error.template, error.locale, error.variable) == ("welcome", "de_AT", "name")
    assert (error.path, error.lineno) == ("de/welcome.j2", 1)
    assert error.filename == str(shop / "de" / "welcome.j2")
    assert str(error) == (
        f"template 'welcome' (de_AT, {shop / 'de' / 'welcome.j2'} line 1): "
        "variable 'name' is undefined; pass it to render() or guard it with `is defined`"
    )


def test_missing_attribute_is_named_as_the_template_wrote_it(shop: Path) -> None:
    write(shop, "en/offer.j2", "Today:\n{{ product.name }} for {{ product.prize }}\n")
    with pytest.raises(RenderError) as caught:
        Texts(shop).render("offer", "en", product={"name": "Grinder", "price": 5})
    assert caught.value.variable == "product.prize"
    assert caught.value.lineno == 2
    assert "variable 'product.prize' is undefined" in str(caught.value)


@pytest.mark.parametrize(
    ("expression", "variable"),
    [
        ("{{ product['prize'] }}", "product.prize"),
        ("{{ order.lines[3] }}", "order.lines[3]"),
        ("{{ order.customer.name }}", "order.customer"),
    ],
)
def test_missing_item_is_named_as_the_template_wrote_it(
    shop: Path, expression: str, variable: str
) -> None:
    write(shop, "en/item.j2", expression)
    with pytest.raises(RenderError) as caught:
        Texts(shop).render("item", "en", product={"price": 5}, order={"lines": ["a"]})
    assert caught.value.variable == variable


def test_missing_variable_given_to_a_filter_is_named(shop: Path) -> None:
    write(shop, "en/price.j2", "{{ amount | money('EUR') }}")
    with pytest.raises(RenderError, match="variable 'amount' is undefined") as caught:
        Texts(shop).render("price", "en")
    assert caught.value.variable == "amount"


def test_missing_variable_in_a_condition_is_an_error_not_false(shop: Path) -> None:
    write(shop, "en/vip.j2", "Hi{% if vip %} dear{% endif %}")
    with pytest.raises(RenderError, match="variable 'vip' is undefined"):
        Texts(shop).render("vip", "en")
    write(shop, "en/guarded.j2", "Hi{% if vip is defined and vip %} dear{% endif %}")
    assert Texts(shop).render("guarded", "en") == "Hi"


def test_syntax_error_names_file_and_line(shop: Path) -> None:
    broken = write(shop, "de/broken.j2", "Hallo\n\n{{ name }\n")
    with pytest.raises(RenderError) as caught:
        Texts(shop).render("broken", "de_AT", name="Lena")
    error = caught.value
    assert isinstance(error.__cause__, TemplateSyntaxError)
    assert (error.filename, error.lineno, error.path) == (str(broken), 3, "de/broken.j2")
    assert str(error).startswith(
        f"template 'broken' (de_AT): syntax error in {broken}, line 3: unexpected '}}'"
    )


def test_missing_include_is_a_render_error_with_the_line(shop: Path) -> None:
    write(shop, "en/signed.j2", "Thanks!\n{% include 'en/signature.j2' %}\n")
    with pytest.raises(RenderError, match=r"line 2\): uses template 'en/signature\.j2'"):
        Texts(shop).render("signed", "en")


def test_syntax_error_in_an_included_template_names_that_file(shop: Path) -> None:
    write(shop, "en/signed.j2", "Thanks!\n{% include 'en/signature.j2' %}\n")
    signature = write(shop, "en/signature.j2", "Your shop\n{% if %}\n")
    with pytest.raises(RenderError) as caught:
        Texts(shop).render("signed", "en")
    assert (caught.value.filename, caught.value.lineno) == (str(signature), 2)
    assert f"syntax error in {signature}, line 2" in str(caught.value)


def test_name_and_locale_are_free_as_variable_names(shop: Path) -> None:
    write(shop, "en/who.j2", "{{ name }} ({{ locale }}, formats in {{ waflow_locale }})")
    texts = Texts(shop)
    assert texts.render("who", "de_AT", name="Lena", locale="x") == "Lena (x, formats in de_AT)"
    assert texts.render("who", "en", {"name": "Ana", "locale": "y", "limit": 1}) == (
        "Ana (y, formats in en)"
    )


# --- chat text, not HTML ----------------------------------------------------------------------


def test_nothing_is_html_escaped(shop: Path) -> None:
    write(shop, "en/raw.j2", "<b>&</b> {{ who }}\n")
    assert Texts(shop).render("raw", "en", who="Tom & Jerry <3") == "<b>&</b> Tom & Jerry <3"


def test_none_renders_as_nothing_and_blank_lines_are_trimmed(shop: Path) -> None:
    write(shop, "en/note.j2", "\n\nNote: {{ note }}\n{% if extra %}\n{{ extra }}\n{% endif %}\n\n")
    assert Texts(shop).render("note", "en", note=None, extra="") == "Note:"


# --- filters ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("de", f"499,00{NBSP}€"),
        ("en", "€499.00"),
        ("fr", f"499,00{NBSP}€"),
        ("de_AT", f"€{NBSP}499,00"),
        ("es", f"499,00{NBSP}€"),  # English text (fallback), Spanish money: the customer's locale
    ],
)
def test_money_is_formatted_per_locale(shop: Path, locale: str, expected: str) -> None:
    write(shop, "en/price.j2", "{{ amount | money(currency) }}")
    assert Texts(shop).render("price", locale, amount=499, currency="EUR") == expected


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "expected"),
    [
        ("1234567.891", "EUR", "fr", f"1{NNBSP}234{NNBSP}567,89{NBSP}€"),
        ("1234567.891", "EUR", "de", f"1.234.567,89{NBSP}€"),
        (0.1, "EUR", "en", "€0.10"),
        (Decimal("1234.5"), "jpy", "en", "¥1,235"),  # the currency's digits, rounded half up
        ("0.125", "EUR", "en", "€0.13"),  # Babel alone would round half to even: €0.12
        (19, "CHF", "de", f"19,00{NBSP}CHF"),
    ],
)
def test_money_amounts_and_currencies(
    shop: Path, amount: object, currency: str, locale: str, expected: str
) -> None:
    write(shop, "en/price.j2", "{{ amount | money(currency) }}")
    assert Texts(shop).render("price", locale, amount=amount, currency=currency) == expected


def test_money_can_name_its_own_locale(shop: Path) -> None:
    write(shop, "en/price.j2", "{{ 499 | money('EUR', 'en') }} / {{ 499 | money('EUR') }}")
    assert Texts(shop).render("price", "de") == f"€499.00 / 499,00{NBSP}€"


def test_money_in_a_locale_babel_does_not_know_uses_the_chain(shop: Path) -> None:
    write(shop, "en/price.j2", "{{ 5 | money('EUR') }}")
    assert Texts(shop).render("price", "qqq") == "€5.00"


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{{ 'abc' | money('EUR') }}", "money needs a number, got 'abc'"),
        ("{{ true | money('EUR') }}", "money needs a number, got True"),
        ("{{ 5 | money('') }}", "money needs a currency code such as 'EUR'"),
        ("{{ 5 | money('EUR', 'no locale') }}", "locale must be a locale such as"),
        ("{{ 'soon' | date }}", "date needs a date or datetime, got 'soon'"),
    ],
)
def test_a_value_a_filter_cannot_format_names_template_and_line(
    shop: Path, template: str, problem: str
) -> None:
    write(shop, "en/bad.j2", "Hello\n" + template)
    with pytest.raises(RenderError) as caught:
        Texts(shop).render("bad", "en")
    assert caught.value.lineno == 2
    assert problem in str(caught.value)
    assert str(caught.value).startswith(f"template 'bad' (en, {shop / 'en' / 'bad.j2'} line 2): ")


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("de", "24.12.2026 / 24. Dezember 2026"),
        ("en", "Dec 24, 2026 / December 24, 2026"),
        ("fr", "24 déc. 2026 / 24 décembre 2026"),
    ],
)
def test_dates_are_formatted_per_locale(shop: Path, locale: str, expected: str) -> None:
    write(shop, "en/day.j2", "{{ day | date }} / {{ day | date('long') }}")
    assert Texts(shop).render("day", locale, day=date(2026, 12, 24)) == expected


@pytest.mark.parametrize(
    ("template", "value", "expected"),
    [
        ("{{ v | bold }}", "Sale", "*Sale*"),
        ("[{{ v | bold }}]", "  two words ", "[  *two words* ]"),  # markers touch the text
        ("[{{ v | bold }}]", "   ", "[   ]"),  # no `**` for blank text
        ("[{{ v | bold }}]", "", "[]"),
        ("{{ v | bold }}", 42, "*42*"),
        ("{{ v | bold }}", "line one\n\n  line two", "*line one*\n\n  *line two*"),
        ("[{{ v | italic }}]", " gratis ", "[ _gratis_ ]"),
        ("{{ v | strike }}", "59,00 €", "~59,00 €~"),
        ("{{ v | mono }}", "ORDER-42", "```ORDER-42```"),
        ("[{{ v | mono }}]", " a\nb ", "[ ```a\nb``` ]"),  # one block over several lines
        ("{{ v | bold }}", "<b>*&*</b>", "*<b>*&*</b>*"),  # escapes nothing
    ],
)
def test_whatsapp_formatting_filters(
    shop: Path, template: str, value: object, expected: str
) -> None:
    write(shop, "en/fmt.j2", template)
    assert Texts(shop).render("fmt", "en", v=value) == expected


def test_shops_can_add_their_own_filters(shop: Path) -> None:
    texts = Texts(shop)
    texts.environment.filters["shout"] = lambda value: str(value).upper()
    write(shop, "en/shout.j2", "{{ name | shout }}")
    assert texts.render("shout", "en", name="Lena") == "LENA"


# --- Meta's limits ----------------------------------------------------------------------------


def test_field_limits_are_the_message_models_constants() -> None:
    assert set(FIELD_LIMITS) == set(get_args(TextField))
    assert FIELD_LIMITS["text"] == (TEXT_BODY_MAX, "text body")
    assert FIELD_LIMITS["body"] == (BODY_MAX, "body text")
    assert FIELD_LIMITS["button_title"] == (BUTTON_TITLE_MAX, "button title")
    assert FIELD_LIMITS["footer"] == (FOOTER_MAX, "footer text")


def test_reject_policy_names_template_field_limit_and_length(shop: Path) -> None:
    write(shop, "de/button.j2", "{{ product }} jetzt bestellen")
    texts = Texts(shop)
    with pytest.raises(MessageValidationError) as caught:
        texts.render("button", "de_AT", product="Kaffeemühle", limit="button_title")
    error = caught.value
    assert (error.field, error.limit) == ("button title", "button title <= 20 characters")
    assert str(error) == (
        "template 'button' (de_AT, de/button.j2) is 27 characters long, over the limit for "
        "button title (limit: button title <= 20 characters); shorten the text or use "
        "limit_policy='truncate'"
    )
    # Within the limit nothing happens.
    assert texts.render("button", "de", product="Tee", limit="button_title") == (
        "Tee jetzt bestellen"
    )


def test_reject_policy_with_a_number(shop: Path) -> None:
    with pytest.raises(MessageValidationError, match="is 11 characters long") as caught:
        Texts(shop).render("welcome", "en", name="Lena", limit=10)
    assert caught.value.limit == "text <= 10 characters"


def test_truncate_policy_cuts_on_a_word_boundary(shop: Path) -> None:
    write(shop, "de/button.j2", "{{ product }} jetzt bestellen")
    texts = Texts(shop, limit_policy="truncate")
    title = texts.render("button", "de", product="Kaffeemühle", limit="button_title")
    assert title == "Kaffeemühle jetzt…"
    assert len(title) <= BUTTON_TITLE_MAX


def test_policy_can_be_chosen_per_call(shop: Path) -> None:
    texts = Texts(shop)  # rejects by default
    assert texts.render("welcome", "en", name="Lena", limit=8, limit_policy="truncate") == (
        "Hello…"
    )
    strict = Texts(shop, limit_policy="truncate")
    with pytest.raises(MessageValidationError):
        strict.render("welcome", "en", name="Lena", limit=8, limit_policy="reject")


def test_truncate_keeps_emoji_whole_at_the_cut(shop: Path) -> None:
    write(shop, "en/badge.j2", "{{ icons }}")
    texts = Texts(shop, limit_policy="truncate")
    # 👨‍👩‍👧 is five code points; a naive cut at 14 would leave "👨‍👩" behind.
    family = "👨\u200d👩\u200d👧"
    result = texts.render("badge", "en", icons="Neu: " + family * 3, limit=14)
    assert result == "Neu: " + family + ELLIPSIS


def test_unknown_limit_field_is_a_config_error(shop: Path) -> None:
    with pytest.raises(ConfigError, match="limit='buton_title' is not a known field"):
        Texts(shop).render("welcome", "en", name="Lena", limit="buton_title")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="at least 1 character"):
        Texts(shop).render("welcome", "en", name="Lena", limit=0)


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("Kurz", 20, "Kurz"),
        ("Genau zwanzig Zeich.", 20, "Genau zwanzig Zeich."),
        ("Unser Angebot der Woche: Kaffee", 20, "Unser Angebot der…"),
        ("Unser Angebot der Woche", 18, "Unser Angebot der…"),  # cut just before a space
        ("Angebot\nheute gültig", 9, "Angebot…"),  # a line break is a boundary too
        ("Zeile eins\r\nZeile zwei", 14, "Zeile eins…"),
        ("Supercalifragilisticexpialidocious", 20, "Supercalifragilisti…"),  # one long word
        ("Ja Supercalifragilistic", 20, "Ja Supercalifragili…"),  # boundary too early: cut word
        ("👍🏽👍🏽👍🏽", 4, "👍🏽…"),  # skin tone stays with its hand
        ("🇩🇪🇫🇷🇬🇧", 4, "🇩🇪…"),  # flags are pairs
        ("1️⃣2️⃣3️⃣", 5, "1️⃣…"),  # keycaps: digit + VS16 + U+20E3
        ("e\u0301" * 5, 4, "e\u0301" + ELLIPSIS),  # combining accent stays on its letter
        ("Family 👨\u200d👩\u200d👧 pack", 12, "Family…"),
        ("Hi there", 1, ELLIPSIS),
    ],
)
def test_truncate(text: str, limit: int, expected: str) -> None:
    result = truncate(text, limit)
    assert result == expected
    assert len(result) <= limit


def test_enforce_limit_outside_templates() -> None:
    name = "Handgefertigte Kaffeemühle aus Buche"
    assert enforce_limit(name, "row_title", policy="truncate") == "Handgefertigte…"
    with pytest.raises(MessageValidationError, match="product name is 36 characters long"):
        enforce_limit(name, "row_title", source="product name")


# --- product cards and order confirmations ---------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        (
            "de",
            "*Kaffeemühle*\nHandmühle aus Buche.\n\n"
            f"Preis: 499,00{NBSP}€\nhttps://shop.example/grinder",
        ),
        (
            "en",
            "*Kaffeemühle*\nHandmühle aus Buche.\n\nPrice: €499.00\nhttps://shop.example/grinder",
        ),
        (
            "fr",
            "*Kaffeemühle*\nHandmühle aus Buche.\n\n"
            f"Prix{NBSP}: 499,00{NBSP}€\nhttps://shop.example/grinder",
        ),
    ],
)
def test_product_card_per_locale(locale: str, expected: str) -> None:
    assert product_card(Texts(), GRINDER, locale) == expected


def test_product_card_without_description_or_link() -> None:
    assert product_card(Texts(), BEANS, "de") == f"*Bohnen 1 kg*\n\nPreis: 18,50{NBSP}€"


def test_product_card_of_a_plain_object_with_a_string_price() -> None:
    product = SimpleNamespace(
        retailer_id="tea", name="Tee", description="", price="4.5", currency="EUR", url=None
    )
    assert product_card(Texts(), product, "en") == "*Tee*\n\nPrice: €4.50"


def test_product_card_with_a_price_that_is_not_a_number() -> None:
    product = SimpleNamespace(
        retailer_id="tea", name="Tee", description=None, price="€4.50", currency="EUR", url=None
    )
    with pytest.raises(RenderError, match=r"price of product 'tea' needs a number, got '€4\.50'"):
        product_card(Texts(), product, "en")


def test_product_card_without_a_price_shows_none() -> None:
    product = SimpleNamespace(
        retailer_id="tea", name="Tee", description="Grün.", price=None, currency=None, url="u"
    )
    assert product_card(Texts(), product, "de") == "*Tee*\nGrün.\n\nu"


def test_product_card_refuses_a_product_without_name_or_currency() -> None:
    nameless = SimpleNamespace(
        retailer_id="tea", name=None, description=None, price=4, currency="EUR", url=None
    )
    with pytest.raises(RenderError, match="product 'tea' has no name"):
        product_card(Texts(), nameless, "de")
    no_currency = SimpleNamespace(
        retailer_id="tea", name="Tee", description=None, price=4, currency=None, url=None
    )
    with pytest.raises(RenderError, match="product 'tea' has a price but no currency"):
        product_card(Texts(), no_currency, "de")


def test_product_card_reads_a_parsed_amount_before_a_display_price() -> None:
    # As the catalog's Product: Meta's display text in `price`, the number in `amount`.
    product = SimpleNamespace(
        retailer_id="grinder",
        name="Kaffeemühle",
        description=None,
        price="€1,299.00",
        amount=Decimal("1299.00"),
        currency="EUR",
        url=None,
    )
    assert product_card(Texts(), product, "fr") == (
        f"*Kaffeemühle*\n\nPrix{NBSP}: 1{NNBSP}299,00{NBSP}€"
    )


def test_product_card_of_a_catalog_product() -> None:
    catalog = pytest.importorskip("waflow.whatsapp.catalog")
    product = catalog.Product.model_validate(
        {
            "id": "8839",
            "retailer_id": "grinder",
            "name": "Kaffeemühle",
            "price": "€1,299.00",
            "currency": "EUR",
            "url": "https://shop.example/grinder",
        }
    )
    assert product_card(Texts(), product, "de") == (
        f"*Kaffeemühle*\n\nPreis: 1.299,00{NBSP}€\nhttps://shop.example/grinder"
    )
    order = webhook_order(("grinder", 2, 1299.0), ("beans", 1, 18.5))
    assert order_confirmation(Texts(), order, [product], "en") == (
        "Thank you for your order!\n\n"
        "2 × Kaffeemühle (€1,299.00 each): €2,598.00\n"
        "1 × beans: €18.50\n\n"
        "*Total: €2,616.50*"
    )


def test_product_card_as_an_image_caption_is_limited() -> None:
    product = SimpleNamespace(**{**vars(GRINDER), "description": "Buche. " * 200})
    with pytest.raises(MessageValidationError, match="media caption <= 1024 characters"):
        product_card(Texts(), product, "de", limit="caption")


ORDER = webhook_order(("grinder", 2, 499.0), ("beans", 1, 18.5), ("filter", 3, 0.1), text="Bitte")


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        (
            "de",
            "Vielen Dank für Ihre Bestellung!\n\n"
            f"2 × Kaffeemühle (je 499,00{NBSP}€): 998,00{NBSP}€\n"
            f"1 × Bohnen 1 kg: 18,50{NBSP}€\n"
            f"3 × filter (je 0,10{NBSP}€): 0,30{NBSP}€\n\n"
            f"*Summe: 1.016,80{NBSP}€*\n\n"
            "Ihre Nachricht: Bitte",
        ),
        (
            "en",
            "Thank you for your order!\n\n"
            "2 × Kaffeemühle (€499.00 each): €998.00\n"
            "1 × Bohnen 1 kg: €18.50\n"
            "3 × filter (€0.10 each): €0.30\n\n"
            "*Total: €1,016.80*\n\n"
            "Your note: Bitte",
        ),
        (
            "fr",
            f"Merci pour votre commande{NNBSP}!\n\n"
            f"2 × Kaffeemühle (499,00{NBSP}€ l’unité){NBSP}: 998,00{NBSP}€\n"
            f"1 × Bohnen 1 kg{NBSP}: 18,50{NBSP}€\n"
            f"3 × filter (0,10{NBSP}€ l’unité){NBSP}: 0,30{NBSP}€\n\n"
            f"*Total{NBSP}: 1{NNBSP}016,80{NBSP}€*\n\n"
            f"Votre message{NBSP}: Bitte",
        ),
    ],
)
def test_order_confirmation_per_locale(locale: str, expected: str) -> None:
    # "filter" is not among the products: its line shows the retailer id. 3 x 0.1 is 0.30, not
    # the float 0.30000000000000004.
    assert order_confirmation(Texts(), ORDER, [GRINDER, BEANS], locale) == expected


def test_order_confirmation_takes_products_by_retailer_id_and_skips_an_empty_note() -> None:
    order = webhook_order(("grinder", 1, 499.0))
    assert order_confirmation(Texts(), order, {"grinder": GRINDER}, "de_AT") == (
        "Vielen Dank für Ihre Bestellung!\n\n"
        f"1 × Kaffeemühle: €{NBSP}499,00\n\n"
        f"*Summe: €{NBSP}499,00*"
    )


def test_order_confirmation_refuses_empty_and_mixed_currency_orders() -> None:
    with pytest.raises(RenderError, match="the order has no items"):
        order_confirmation(Texts(), webhook_order(), [], "de")
    mixed = Order.model_validate(
        {
            "catalog_id": "c",
            "product_items": [
                {"product_retailer_id": "a", "quantity": 1, "item_price": 1, "currency": "EUR"},
                {"product_retailer_id": "b", "quantity": 1, "item_price": 1, "currency": "USD"},
            ],
        }
    )
    with pytest.raises(RenderError, match="the order mixes currencies EUR, USD"):
        order_confirmation(Texts(), mixed, [], "de")


def test_shop_folder_overrides_a_shipped_template(shop: Path) -> None:
    write(
        shop,
        "de/product_card.j2",
        "{{ product.name | upper }} – nur {{ price | money(currency) }}!\n",
    )
    texts = Texts(shop)
    assert product_card(texts, GRINDER, "de") == f"KAFFEEMÜHLE – nur 499,00{NBSP}€!"
    # Locales the shop did not override keep waflow's card.
    assert texts.resolve("product_card", "de") == "de/product_card.j2"
    assert product_card(texts, GRINDER, "en").startswith("*Kaffeemühle*\n")
    # Without the shipped texts there is no card in English.
    with pytest.raises(RenderError, match="no template 'product_card' for locale 'en'"):
        product_card(Texts(shop, shipped=False), GRINDER, "en")


def test_shop_template_can_build_on_the_shipped_one(shop: Path) -> None:
    write(shop, "en/product_card.j2", "{% include 'waflow/en/product_card.j2' %}\n\nFree shipping!")
    card = product_card(Texts(shop), BEANS, "en")
    assert card == "*Bohnen 1 kg*\n\nPrice: €18.50\n\nFree shipping!"
