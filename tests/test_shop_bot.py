"""The example shop bot, in-process on the fakes: its journeys, configuration and texts."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))

from shop_bot.config import ShopConfig  # noqa: E402
from shop_bot.demo import SHOP, Demo, run_demo  # noqa: E402

from waflow.errors import ConfigError  # noqa: E402
from waflow.store import Commit, Document  # noqa: E402, F401
from waflow.webhooks import parse  # noqa: E402

PSID = "6945398272183744"
PHONE = "+4915112345678"
WA_ID = "4915112345678"
AD_ID = "120226305854810726"


@pytest.fixture
def demo() -> Demo:
    shop = Demo(ads={AD_ID: "trek-3"})
    shop.fake.add_messenger_profile(PSID, "Lena", "Berg")
    return shop


def _payloads(message: Any) -> list[str]:
    payload = message.body["message"]["attachment"]["payload"]
    return [b["payload"] for e in payload["elements"] for b in e["buttons"]]


async def test_messenger_start_shows_the_catalog_with_retailer_ids(demo: Demo) -> None:
    replies = await demo.deliver(demo.fake.inbound.messenger_text(PSID, "Hallo!"))
    assert (
        replies[0].text == "Hallo Lena! Willkommen bei Lenas Radladen 🚲 Schau dir unsere Räder an:"
    )
    assert _payloads(replies[1]) == ["product:city-7", "product:trek-3", "product:kids-2"]
    # Prices in the shop's language, not in the catalog's ("€499.00" from Meta).
    subtitles = [
        e["subtitle"] for e in replies[1].body["message"]["attachment"]["payload"]["elements"]
    ]
    assert subtitles[0] == "499,00\xa0€"


async def test_phone_handoff_records_the_opt_in_and_sends_the_followup_template(demo: Demo) -> None:
    inbound = demo.fake.inbound
    await demo.deliver(inbound.messenger_text(PSID, "Hallo!"))
    (prompt,) = await demo.deliver(inbound.messenger_postback(PSID, "product:city-7", "Ansehen"))
    assert SHOP in (prompt.text or "") and "WhatsApp" in (prompt.text or "")
    assert prompt.body["message"]["quick_replies"][0] == {"content_type": "user_phone_number"}

    replies = await demo.deliver(inbound.messenger_phone_quick_reply(PSID, PHONE))
    template = next(m for m in replies if m.channel == "whatsapp")
    assert template.to == WA_ID
    assert template.body["template"]["name"] == "order_followup"
    params = [p["text"] for p in template.body["template"]["components"][0]["parameters"]]
    assert params == ["Lena", SHOP, "Stadtrad Lena"]  # first name, shop, product

    customer = await demo.app.engine.customer_for(parse(inbound.messenger_text(PSID, "x"))[0])  # type: ignore[union-attr]
    assert customer is not None and customer.opted_in("whatsapp")
    assert customer.consents[-1].wording == prompt.text
    assert customer.consents[-1].source == "messenger:user_phone_number"

    (product,) = await demo.deliver(
        inbound.whatsapp_template_button(WA_ID, "Ja, gerne", "Ja, gerne")
    )
    assert product.interactive_type == "product"
    assert product.body["interactive"]["action"]["product_retailer_id"] == "city-7"


async def test_link_handoff_needs_no_template(demo: Demo) -> None:
    inbound = demo.fake.inbound
    await demo.deliver(inbound.messenger_text(PSID, "Hallo!"))
    await demo.deliver(inbound.messenger_postback(PSID, "product:kids-2", "Ansehen"))
    (button,) = await demo.deliver(inbound.messenger_quick_reply(PSID, "LINK", "Lieber per Link"))
    url = button.body["message"]["attachment"]["payload"]["buttons"][0]["url"]
    assert url.startswith("https://wa.me/493012345678?text=")
    prefilled = parse_qs(urlparse(url).query)["text"][0]
    (product,) = await demo.deliver(inbound.whatsapp_text("4917612345678", prefilled))
    assert product.body["interactive"]["action"]["product_retailer_id"] == "kids-2"
    assert [m.type for m in demo.fake.sent.on("whatsapp")] == ["interactive"]  # no template


async def test_click_to_whatsapp_ad_to_order_to_one_purchase(demo: Demo) -> None:
    inbound = demo.fake.inbound
    referral = inbound.whatsapp_referral(source_id=AD_ID)
    replies = await demo.deliver(
        inbound.whatsapp_text(WA_ID, "Info?", name="Lena Berg", referral=referral)
    )
    assert replies[-1].body["interactive"]["action"]["product_retailer_id"] == "trek-3"
    order = inbound.whatsapp_order(
        WA_ID, demo.fake.catalog.catalog_id, [("trek-3", 1, 899.0, "EUR")]
    )
    (confirmation,) = await demo.deliver(order)
    assert "899,00\xa0€" in (confirmation.text or "")  # Babel's no-break space
    await demo.deliver(order)  # Meta delivers it again
    (purchase,) = demo.fake.conversion_events
    assert purchase["user_data"]["ctwa_clid"] == referral["ctwa_clid"]
    assert (
        purchase["custom_data"]["value"] == 899.0 and purchase["custom_data"]["currency"] == "EUR"
    )


async def test_opt_out_and_a_request_for_a_human(demo: Demo) -> None:
    inbound = demo.fake.inbound
    await demo.deliver(inbound.whatsapp_text(WA_ID, "Hallo"))
    (human,) = await demo.deliver(inbound.whatsapp_text(WA_ID, "Mensch"))
    assert "ein Mensch aus dem Team" in (human.text or "")
    assert (
        await demo.deliver(inbound.whatsapp_text(WA_ID, "Wann habt ihr offen?")) == []
    )  # a person answers
    (stopped,) = await demo.deliver(inbound.whatsapp_text(WA_ID, "STOP"))
    assert "keine Nachrichten mehr" in (stopped.text or "")
    customer = await demo.app.engine.customer_for(parse(inbound.whatsapp_text(WA_ID, "x"))[0])  # type: ignore[union-attr]
    assert customer is not None and customer.opted_out("whatsapp")


@pytest.mark.parametrize(
    ("locale", "greeting"),
    [
        ("de", "Hallo Lena! Willkommen bei Lenas Radladen"),
        ("en", "Hi Lena! Welcome to Lenas Radladen"),
        ("fr", "Bonjour Lena ! Bienvenue chez Lenas Radladen"),
    ],
)
async def test_texts_in_german_english_and_french(locale: str, greeting: str) -> None:
    shop = Demo(locale=locale)
    shop.fake.add_messenger_profile(PSID, "Lena")
    replies = await shop.deliver(shop.fake.inbound.messenger_text(PSID, "Hi"))
    assert (replies[0].text or "").startswith(greeting)


def test_config_file_errors_name_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="WAFLOW_SHOP_CONFIG: no such file"):
        ShopConfig.load(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[shop\nname = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        ShopConfig.load(broken)
    incomplete = tmp_path / "incomplete.toml"
    incomplete.write_text('[shop]\nname = "X"\n')
    with pytest.raises(ConfigError, match=r"shop\.whatsapp_number"):
        ShopConfig.load(incomplete)
    shipped = ShopConfig.from_env({})
    assert shipped.shop.name == "Lenas Radladen"
    assert shipped.whatsapp.followup_template.name == "order_followup"
    assert shipped.ads == {AD_ID: "city-7"}


async def test_the_demo_prints_both_journeys() -> None:
    out = io.StringIO()
    assert await run_demo(out, width=120) == 0
    text = out.getvalue()
    assert text.count("Messenger") >= 2 and "WhatsApp" in text
    assert "Vorlage order_followup" in text
    assert "Danke für deine Bestellung!" in text
    assert text.count("*Summe:") == 2


async def test_the_served_app_is_configured_by_the_environment_and_honours_the_log_level(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import logging

    from shop_bot.app import create_app

    from waflow import App

    monkeypatch.setattr(logging.getLogger("waflow"), "level", logging.NOTSET)
    env = {
        "WAFLOW_APP_SECRET": "app-secret-for-tests",
        "WAFLOW_VERIFY_TOKEN": "verify-token-for-tests",
        "WAFLOW_ACCESS_TOKEN": "EAAGtestTokenNotASecret",
        "WAFLOW_PHONE_NUMBER_ID": "106540352242922",
        "WAFLOW_CATALOG_ID": "194836987003835",
        "WAFLOW_STORE": f"sqlite:///{tmp_path / 'shop.db'}",
        "WAFLOW_LOG_LEVEL": "debug",
    }
    app = create_app(env)
    try:
        assert isinstance(app, App)
        assert app.engine is not None
        assert str(getattr(app.store, "path", "")) == str(tmp_path / "shop.db")
    finally:
        await app.store.close()
    assert logging.getLogger("waflow").level == logging.DEBUG
    missing = {k: v for k, v in env.items() if k != "WAFLOW_CATALOG_ID"}
    with pytest.raises(ConfigError, match="WAFLOW_CATALOG_ID"):
        create_app(missing)
