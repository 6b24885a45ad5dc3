"""Identity: phone numbers, handoff codes, linked ids, merges and consent records."""

from __future__ import annotations

from datetime import timedelta

import pytest

from waflow.flows.identity import (
    HANDOFF_ALPHABET,
    ConsentRecord,
    Customer,
    LinkedId,
    find_handoff_code,
    find_handoff_codes,
    new_handoff_code,
    normalize_phone,
)
from waflow.testing import FrozenClock


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+49 151 12345678", None, "+4915112345678"),
        ("4915112345678", None, "+4915112345678"),  # a WhatsApp id: E.164 without the plus
        ("0151 12345678", "DE", "+4915112345678"),
        ("0151 12345678", None, None),  # local without a region: unknown
        ("+1 (650) 555-1234", None, "+16505551234"),
        ("not a number", None, None),
        ("", None, None),
        ("+49 123", None, None),
        # Written the national way in a region, read there first, even when the digits would
        # also make a valid number of another country with a "+" in front:
        ("131 6386 0783", "CN", "+8613163860783"),
        ("(201) 517-8128", "US", "+12015178128"),
        ("4915112345678", "DE", "+4915112345678"),  # a WhatsApp id still reads as one
    ],
)
def test_phone_numbers_become_e164(raw: str, region: str | None, expected: str | None) -> None:
    assert normalize_phone(raw, region) == expected


def test_handoff_codes_are_short_unguessable_and_readable() -> None:
    codes = {new_handoff_code() for _ in range(2000)}
    assert len(codes) == 2000
    for code in list(codes)[:50]:
        assert len(code) == 9 and code[4] == "-"
        assert all(ch in HANDOFF_ALPHABET for ch in code.replace("-", ""))
        assert not set(code) & set("ILOU")


def test_codes_are_found_in_a_message_but_words_are_not_codes() -> None:
    text = "Hallo Lenas Radladen! Ich möchte auf WhatsApp weitermachen. Code: v0s0-vkq7"
    assert find_handoff_codes(text) == ["V0S0-VKQ7"]
    assert find_handoff_code("WHATSAPP WEITERMACHEN") is None
    assert find_handoff_code("ABCD-EFGH1") is None
    assert find_handoff_code(None) is None


def test_merging_two_records_of_one_person() -> None:
    clock = FrozenClock()
    fb = Customer(
        id="a", created_at=clock.now(), ids=[LinkedId(kind="psid", value="1", scope="page")]
    )
    fb.last_inbound["messenger:page"] = clock.now()
    wa = Customer(
        id="b",
        created_at=clock.now(),
        ids=[LinkedId(kind="wa_id", value="4915112345678")],
        name="Lena",
    )
    wa.last_inbound["whatsapp:pn"] = clock.advance(minutes=5)
    wa.record_consent(
        ConsentRecord(channel="whatsapp", granted=True, wording="ok", source="t", at=clock.now())
    )
    fb.merge(wa)
    assert {i.key for i in fb.ids} == {"psid:page:1", "wa_id:4915112345678"}
    assert fb.name == "Lena"
    assert set(fb.last_inbound) == {"messenger:page", "whatsapp:pn"}
    assert fb.opted_in("whatsapp")
    assert fb.whatsapp_id == "4915112345678"
    assert fb.psid("page") == "1"


def test_a_merge_orders_consents_by_time_and_a_tie_goes_to_the_merging_customer() -> None:
    clock = FrozenClock()
    at = clock.now()

    def record(granted: bool, when: object) -> ConsentRecord:
        return ConsentRecord(channel="whatsapp", granted=granted, wording="w", source="t", at=when)

    # The WhatsApp record said STOP earlier; the Messenger one opted in later: opted in.
    earlier_stop = Customer(id="wa", created_at=at)
    earlier_stop.record_consent(record(False, at))
    later_yes = Customer(id="fb", created_at=at)
    later_yes.record_consent(record(True, at + timedelta(minutes=1)))
    earlier_stop.merge(later_yes)
    assert earlier_stop.opted_in("whatsapp")

    # Same moment (a frozen clock, or one second of webhook resolution): the merging customer's
    # record, made by the handler that linked the two, is the later one.
    stop = Customer(id="wa", created_at=at)
    stop.record_consent(record(False, at))
    opt_in = Customer(id="fb", created_at=at)
    opt_in.record_consent(record(True, at))
    opt_in.merge(stop)
    assert opt_in.opted_in("whatsapp")
    assert [c.granted for c in opt_in.consents] == [False, True]


def test_the_latest_consent_record_counts() -> None:
    clock = FrozenClock()
    customer = Customer(id="c", created_at=clock.now())
    assert not customer.opted_in("whatsapp") and not customer.opted_out("whatsapp")
    customer.record_consent(
        ConsentRecord(channel="whatsapp", granted=True, wording="ja", source="t", at=clock.now())
    )
    customer.record_consent(
        ConsentRecord(
            channel="whatsapp",
            granted=False,
            wording="STOP",
            source="keyword",
            at=clock.now() + timedelta(days=1),
        )
    )
    assert customer.opted_out("whatsapp") and not customer.opted_in("whatsapp")
    assert not customer.opted_in("messenger")


def test_applied_events_are_remembered_but_bounded() -> None:
    customer = Customer(id="c", created_at=FrozenClock().now())
    for i in range(250):
        customer.mark_applied(f"e{i}")
    assert customer.was_applied("e249") and not customer.was_applied("e0")
    assert len(customer.applied) == 200
    assert Customer.from_document(customer.to_document(), 3).version == 3
