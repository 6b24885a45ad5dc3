"""``waflow demo``: the shop bot, in-process, against the built-in fake of Meta's Graph API.

Two customers play the two journeys, and the conversation is printed in two columns, Messenger
on the left and WhatsApp on the right:

1. Lena starts on Messenger, picks a bike, taps her own phone number (her WhatsApp opt-in), gets
   the ``order_followup`` template on WhatsApp, taps "Ja, gerne", gets the bike as a product
   message, orders it, and gets the confirmation.
2. Tom starts on Messenger, picks a bike, asks for a link, sends the link's prefilled text (with its
   handoff code) on WhatsApp — no template needed, he wrote first —, and orders.

Nothing leaves the machine: SQLite is not even needed (an in-memory store), and the Graph API is
:class:`waflow.testing.FakeGraphAPI`, which validates every request like Meta would.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import textwrap
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TextIO
from urllib.parse import parse_qs, urlparse

from shop_bot.app import build_app
from shop_bot.config import ShopConfig, ShopInfo
from waflow import App
from waflow.config import Settings
from waflow.store import MemoryStore
from waflow.testing import FakeGraphAPI, FrozenClock, SentMessage
from waflow.whatsapp.templates import TemplateDefinition, TemplateRegistry

SHOP = "Lenas Radladen"
PRODUCTS = [
    ("city-7", "Stadtrad Lena", "499.00", "Leichtes Stadtrad, 7 Gänge"),
    ("trek-3", "Trekkingrad Berg", "899.00", "Für lange Touren, 24 Gänge"),
    ("kids-2", "Kinderrad Flitzer", "249.00", "20 Zoll, ab 6 Jahren"),
]
FOLLOWUP = {
    "name": "order_followup",
    "language": "de",
    "category": "UTILITY",
    "components": [
        {
            "type": "BODY",
            "text": "Hallo {{1}}, hier ist {{2}}. Sollen wir dir das {{3}} reservieren?",
            "example": {"body_text": [["Lena", SHOP, "Stadtrad Lena"]]},
        },
        {
            "type": "BUTTONS",
            "buttons": [
                {"type": "QUICK_REPLY", "text": "Ja, gerne"},
                {"type": "QUICK_REPLY", "text": "Nein, danke"},
            ],
        },
    ],
}


@dataclass
class Line:
    """One line of the transcript: on which side, said by whom, what."""

    channel: str
    who: str
    text: str


@dataclass
class Transcript:
    """Collects what happens on both channels, then prints it side by side."""

    lines: list[Line] = field(default_factory=list)

    def say(self, channel: str, who: str, text: str) -> None:
        self.lines.append(Line(channel, who, text))

    def render(self, out: TextIO, width: int) -> None:
        column = (width - 3) // 2
        out.write(f"{'Messenger':<{column}} | WhatsApp\n")
        out.write(f"{'-' * column}-+-{'-' * column}\n")
        for line in self.lines:
            wrapped: list[str] = []
            for number, paragraph in enumerate(f"{line.who}: {line.text}".splitlines()):
                indent = "" if number == 0 else "  "
                wrapped += textwrap.wrap(
                    paragraph, column, initial_indent=indent, subsequent_indent="  "
                ) or [""]
            for part in wrapped:
                left, right = (part, "") if line.channel == "messenger" else ("", part)
                out.write(f"{left:<{column}} | {right}\n".rstrip() + "\n")


def describe(message: SentMessage) -> str:
    """What a customer would see of a message the bot sent, in one line."""
    body = message.body
    if message.channel == "messenger":
        content = body.get("message", {})
        if "attachment" in content:
            payload = content["attachment"]["payload"]
            if payload.get("template_type") == "generic":
                cards = [
                    f"{e['title']} · {e.get('subtitle', '')} [{e['buttons'][0]['title']}]"
                    for e in payload["elements"]
                ]
                return "🛒 " + " | ".join(cards)
            buttons = " ".join(f"[{b['title']} → {_target(b)}]" for b in payload["buttons"])
            return f"{payload['text']} {buttons}"
        replies = content.get("quick_replies") or []
        chips = " ".join(
            "[📞 meine Nummer]"
            if r["content_type"] == "user_phone_number"
            else f"[{r.get('title')}]"
            for r in replies
        )
        return f"{content.get('text', '')} {chips}".strip()
    if message.type == "template":
        params = [
            p["text"] for c in body["template"].get("components", []) for p in c["parameters"]
        ]
        return (
            f"📄 Vorlage {body['template']['name']}: {' · '.join(params)} [Ja, gerne] [Nein, danke]"
        )
    if message.interactive_type == "product":
        action = body["interactive"]["action"]
        return f"🛍 Produkt {action['product_retailer_id']}: {body['interactive'].get('body', {}).get('text', '')}"
    if message.interactive_type == "product_list":
        return f"🛍 Produktliste: {body['interactive']['body']['text']}"
    return message.text or f"[{message.type}]"


def _target(button: dict[str, Any]) -> str:
    url = button.get("url")
    if not isinstance(url, str):
        return str(button.get("payload"))
    parsed = urlparse(url)
    text = parse_qs(parsed.query).get("text", [""])[0]
    return f"{parsed.netloc}{parsed.path} „{text}“" if text else url


class Demo:
    """The shop on the fakes, and the customers who talk to it.

    ``locale`` is the shop's language (de, en, fr); ``ads`` maps ad ids to products.
    """

    def __init__(self, *, locale: str = "de", ads: dict[str, str] | None = None) -> None:
        self.clock = FrozenClock("2026-03-02T09:00:00Z")
        self.fake = FakeGraphAPI(clock=self.clock, seed=7)
        for sku, name, price, description in PRODUCTS:
            self.fake.catalog.add(sku, name, price=Decimal(price), description=description)
        self.fake.templates.add(FOLLOWUP)
        registry = TemplateRegistry()
        registry.add(TemplateDefinition.from_body(FOLLOWUP))
        settings = Settings.from_env(
            {
                "WAFLOW_APP_SECRET": self.fake.app_secret,
                "WAFLOW_VERIFY_TOKEN": "demo-verify-token",
                "WAFLOW_CATALOG_ID": self.fake.catalog.catalog_id,
                "WAFLOW_DATASET_ID": self.fake.dataset_id,
                "WAFLOW_STORE": "memory://",
            }
        )
        config = ShopConfig(
            shop=ShopInfo(name=SHOP, locale=locale, whatsapp_number="+49 30 12345678"),
            ads=ads or {},
        )
        self.app: App = build_app(
            config,
            settings=settings,
            store=MemoryStore(),
            whatsapp=self.fake.async_whatsapp(templates=registry),
            messenger=self.fake.async_messenger(),
            conversions=self.fake.async_conversions(),
            registry=registry,
            clock=self.clock,
        )
        self.transcript = Transcript()

    async def deliver(self, body: dict[str, Any]) -> list[SentMessage]:
        """Deliver a webhook like Meta would, and return what the bot sent in response."""
        before = len(self.fake.sent)
        response = await self.app.dispatch(self.fake.webhook_request(body))
        if response.status != 200:
            raise RuntimeError(f"the shop answered {response.status}: {response.text}")
        await self.app.run_pending()
        replies = list(self.fake.sent[before:])
        for message in replies:
            self.transcript.say(message.channel, "Shop", describe(message))
        self.clock.advance(minutes=1)
        return replies

    async def phone_journey(self) -> None:
        psid, phone, wa_id = "6945398272183744", "+4915112345678", "4915112345678"
        self.fake.add_messenger_profile(psid, "Lena", "Berg")
        say = self.transcript.say
        say("messenger", "Lena", "Hallo!")
        await self.deliver(self.fake.inbound.messenger_text(psid, "Hallo!"))
        say("messenger", "Lena", "(tippt bei Stadtrad Lena auf [Ansehen])")
        await self.deliver(self.fake.inbound.messenger_postback(psid, "product:city-7", "Ansehen"))
        say("messenger", "Lena", f"(tippt auf ihre Nummer {phone})")
        await self.deliver(self.fake.inbound.messenger_phone_quick_reply(psid, phone))
        say("whatsapp", "Lena", "(tippt auf [Ja, gerne])")
        await self.deliver(
            self.fake.inbound.whatsapp_template_button(wa_id, "Ja, gerne", "Ja, gerne")
        )
        say("whatsapp", "Lena", "🧾 Bestellung: 1 × city-7 à 499,00 €")
        await self.deliver(
            self.fake.inbound.whatsapp_order(
                wa_id, self.fake.catalog.catalog_id, [("city-7", 1, 499.0, "EUR")]
            )
        )

    async def link_journey(self) -> None:
        psid, wa_id = "7012345678901234", "4917612345678"
        self.fake.add_messenger_profile(psid, "Tom", "Weber")
        say = self.transcript.say
        say("messenger", "Tom", "Hi, habt ihr Trekkingräder?")
        await self.deliver(self.fake.inbound.messenger_text(psid, "Hi, habt ihr Trekkingräder?"))
        say("messenger", "Tom", "(tippt bei Trekkingrad Berg auf [Ansehen])")
        await self.deliver(self.fake.inbound.messenger_postback(psid, "product:trek-3", "Ansehen"))
        say("messenger", "Tom", "(tippt auf [Lieber per Link])")
        replies = await self.deliver(
            self.fake.inbound.messenger_quick_reply(psid, "LINK", "Lieber per Link")
        )
        link = replies[-1].body["message"]["attachment"]["payload"]["buttons"][0]["url"]
        prefilled = parse_qs(urlparse(link).query)["text"][0]
        say("whatsapp", "Tom", f"(öffnet den Link und sendet) {prefilled}")
        await self.deliver(self.fake.inbound.whatsapp_text(wa_id, prefilled, name="Tom Weber"))
        say("whatsapp", "Tom", "🧾 Bestellung: 1 × trek-3 à 899,00 €")
        await self.deliver(
            self.fake.inbound.whatsapp_order(
                wa_id, self.fake.catalog.catalog_id, [("trek-3", 1, 899.0, "EUR")]
            )
        )


async def run_demo(out: TextIO, *, width: int | None = None) -> int:
    """Play both journeys and print them; 0 when every step got its answer."""
    width = width or max(100, min(shutil.get_terminal_size((120, 20)).columns, 160))
    for title, journey in (
        (
            "1 · Messenger → Telefonnummer und Opt-in → Vorlage auf WhatsApp → Bestellung",
            "phone_journey",
        ),
        (
            "2 · Messenger → wa.me-Link mit Code → WhatsApp ohne Vorlage → Bestellung",
            "link_journey",
        ),
    ):
        demo = Demo()
        await getattr(demo, journey)()
        out.write(f"\n{title}\n\n")
        demo.transcript.render(out, width)
        whatsapp = [m for m in demo.fake.sent if m.channel == "whatsapp"]
        problems = [r for r in demo.fake.requests if r.status_code >= 400]
        if not whatsapp or problems:
            out.write(f"\nSomething went wrong: {len(problems)} refused request(s)\n")
            return 1
    out.write(
        "\nBeide Journeys liefen gegen die eingebaute Graph-API-Fälschung; nichts verließ den Rechner.\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(run_demo(sys.stdout)))
