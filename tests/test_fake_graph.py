"""The FakeGraphAPI behaves like Meta where waflow's users rely on it."""

from __future__ import annotations

import httpx
import pytest

from waflow.errors import (
    AuthenticationError,
    InvalidRequestError,
    OutsideServiceWindowError,
    RateLimitError,
    ServerError,
)
from waflow.ratelimit import Pacer
from waflow.testing import FakeGraphAPI, FrozenClock

TO = "4915112345678"


def test_an_invalid_body_gets_metas_code_100() -> None:
    fake = FakeGraphAPI()
    with fake.client() as http:
        response = http.post(
            f"https://graph.facebook.com/v26.0/{fake.phone_number_id}/messages",
            json={"messaging_product": "whatsapp", "to": TO, "type": "text", "text": {"body": ""}},
            headers={"Authorization": f"Bearer {fake.access_token}"},
        )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 100
    assert "text body" in error["message"]
    assert fake.sent == []


def test_unmatched_routes_fail_closed_and_are_recorded() -> None:
    fake = FakeGraphAPI()
    with fake.client() as http:
        response = http.get(
            "https://graph.facebook.com/v26.0/123/unknown_edge",
            headers={"Authorization": f"Bearer {fake.access_token}"},
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 100
    assert [(r.method, r.path) for r in fake.unmatched] == [("GET", "/v26.0/123/unknown_edge")]


def test_a_wrong_token_gets_190() -> None:
    fake = FakeGraphAPI()
    with pytest.raises(AuthenticationError) as info:
        fake.whatsapp(access_token="stolen-or-stale").send_text(TO, "hi")
    assert info.value.code == 190


def test_sends_from_an_unknown_number_are_refused() -> None:
    fake = FakeGraphAPI()
    with pytest.raises(InvalidRequestError) as info:
        fake.whatsapp(phone_number_id="999").send_text(TO, "hi")
    assert info.value.code == 100


@pytest.mark.parametrize(
    "base_url", ["https://graph.facebok.com", "http://localhost:9999", "https://api.example.com"]
)
def test_a_client_pointed_at_another_host_is_not_answered_like_meta(base_url: str) -> None:
    # A typo in base_url must fail the user's test, not pass it.
    fake = FakeGraphAPI()
    with pytest.raises(InvalidRequestError) as info:
        fake.whatsapp(base_url=base_url).send_text(TO, "hi")
    assert (info.value.code, info.value.subcode) == (100, 33)
    assert fake.sent == []
    assert [r.method for r in fake.unmatched] == ["POST"]


def test_a_send_without_messaging_product_is_refused() -> None:
    fake = FakeGraphAPI()
    with fake.client() as http:
        response = http.post(
            f"https://graph.facebook.com/v26.0/{fake.phone_number_id}/messages",
            json={"to": TO, "type": "text", "text": {"body": "Hallo"}},
            headers={"Authorization": f"Bearer {fake.access_token}"},
        )
    assert response.status_code == 400
    assert "messaging_product is required" in response.json()["error"]["message"]
    assert fake.sent == []


def test_messages_to_business_scoped_user_ids_name_no_phone_number() -> None:
    fake = FakeGraphAPI()
    wa = fake.whatsapp()
    user, other = "DE.13491208655302741918", "AT.29381746502938475610"
    result = wa.send_text(user, "Hallo")
    wa.send_text(other, "Servus")
    assert result.wa_id is None  # no number was made up from the id's digits
    status = fake.deliver(result.message_id)["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert status.get("recipient_user_id") == user
    assert not status.get("recipient_id")
    assert fake.sent.to(user).texts() == ["Hallo"]  # not every user id's messages


def test_fail_next_190_answers_401_like_an_invalid_token() -> None:
    fake = FakeGraphAPI()
    fake.fail_next(190)
    with pytest.raises(AuthenticationError) as info:
        fake.whatsapp().send_text(TO, "hi")
    assert (info.value.status_code, info.value.code) == (401, 190)


def test_an_outage_lasts_its_virtual_duration() -> None:
    clock = FrozenClock()
    fake = FakeGraphAPI(clock=clock)
    wa = fake.whatsapp(max_retries=0)
    fake.outage(60)
    with pytest.raises(ServerError) as info:
        wa.send_text(TO, "during")
    assert info.value.status_code == 503
    assert info.value.maybe_sent is True
    clock.advance(59)
    with pytest.raises(ServerError):
        wa.send_text(TO, "still during")
    clock.advance(1)
    wa.send_text(TO, "after")
    assert fake.sent.texts() == ["after"]


def test_an_open_ended_outage_ends_with_its_block() -> None:
    fake = FakeGraphAPI()
    wa = fake.whatsapp(max_retries=0)
    with fake.outage(status=502, body=b"<html>Bad Gateway</html>"):
        with pytest.raises(ServerError) as info:
            wa.send_text(TO, "x")
        assert info.value.status_code == 502
    wa.send_text(TO, "y")
    assert fake.sent.texts() == ["y"]


def test_throughput_limit_accepts_exactly_the_rate_and_refuses_more() -> None:
    clock = FrozenClock()
    fake = FakeGraphAPI(clock=clock)
    fake.limit_throughput(80)
    paced = fake.whatsapp(pacer=Pacer(80, clock=clock))
    for i in range(240):
        paced.send_text(TO, str(i))
    assert len(fake.sent) == 240  # an exact 80/s pace is never refused

    unpaced = fake.whatsapp(max_retries=0)
    clock.advance(5)
    for i in range(80):
        unpaced.send_text(TO, str(i))
    with pytest.raises(RateLimitError) as info:
        unpaced.send_text(TO, "81st within the same second")
    assert info.value.code == 130429


def test_fail_next_with_a_path_only_hits_matching_requests() -> None:
    fake = FakeGraphAPI()
    wa = fake.whatsapp(max_retries=0)
    fake.fail_next(131026, path="/media$")
    wa.send_text(TO, "unaffected")
    assert len(fake.sent) == 1


def test_reset_forgets_everything_and_restarts_ids() -> None:
    fake = FakeGraphAPI(seed=3)
    wa = fake.whatsapp()
    first = wa.send_text(TO, "a").message_id
    fake.fail_next(100)
    fake.reset()
    assert fake.sent == [] and fake.requests == []
    assert wa.send_text(TO, "a").message_id == first


def test_plain_httpx_clients_can_use_the_fake_too() -> None:
    fake = FakeGraphAPI()
    client = httpx.Client(transport=fake.transport, base_url="https://graph.facebook.com")
    response = client.post(
        f"/v26.0/{fake.phone_number_id}/messages",
        json={"messaging_product": "whatsapp", "to": TO, "type": "text", "text": {"body": "raw"}},
        headers={"Authorization": f"Bearer {fake.access_token}"},
    )
    assert response.status_code == 200
    assert response.json()["messages"][0]["id"] == fake.sent.last.message_id


def test_buttons_from_plain_titles() -> None:
    fake = FakeGraphAPI()
    fake.whatsapp().send_buttons(TO, "Weiter?", ["Ja", "Nein"])
    buttons = fake.sent.last.body["interactive"]["action"]["buttons"]
    assert [b["reply"] for b in buttons] == [
        {"id": "Ja", "title": "Ja"},
        {"id": "Nein", "title": "Nein"},
    ]


def test_a_window_violation_can_come_on_the_status_as_at_meta() -> None:
    clock = FrozenClock()
    fake = FakeGraphAPI(clock=clock)
    fake.enforce_window(on_status=True)
    wa = fake.whatsapp()
    result = wa.send_text(TO, "Hallo nach drei Tagen")  # accepted: no error on the request
    assert len(fake.window_violations) == 1
    (body,) = fake.deliver_all()
    status = body["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert (status["id"], status["status"]) == (result.message_id, "failed")
    assert status["errors"][0]["code"] == 131047
    # Inside the window, the same send is delivered.
    fake.customer_wrote(fake.phone_number_id, TO)
    inside = wa.send_text(TO, "Danke!")
    delivered = fake.deliver(inside.message_id)["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert delivered["status"] == "delivered"
    # By default the request itself is refused.
    fake.enforce_window()
    clock.advance(hours=25)
    with pytest.raises(OutsideServiceWindowError):
        wa.send_text(TO, "Noch da?")


def test_the_pair_rate_limit_answers_131056_beyond_a_burst_to_one_customer() -> None:
    clock = FrozenClock()
    fake = FakeGraphAPI(clock=clock)
    fake.limit_pair_rate(burst=3, every=6.0)
    wa = fake.whatsapp(max_retries=0)
    for n in range(3):
        wa.send_text(TO, f"#{n}")
    with pytest.raises(RateLimitError) as info:
        wa.send_text(TO, "#3")
    assert info.value.code == 131056 and info.value.is_pair_rate_limit
    wa.send_text("4917612345678", "another customer is not held back")
    clock.advance(6)
    wa.send_text(TO, "#3, six seconds later")
    # waflow's client waits and tries again on 131056 (4 s, then 16 s), on the same clock.
    patient = fake.whatsapp()
    patient.send_text(TO, "#4")
    assert fake.sent.to(TO).texts()[-1] == "#4"
    fake.limit_pair_rate(None)
    for n in range(10):
        wa.send_text(TO, f"free {n}")


@pytest.mark.parametrize("written", ["+49 151 1234 5678", "+49-151-1234-5678", "+49.151.1234.5678"])
def test_a_phone_number_written_with_dots_is_still_a_phone_number(written: str) -> None:
    fake = FakeGraphAPI()
    result = fake.whatsapp().send_text(written, "Hallo")
    assert result.wa_id == "4915112345678"
    assert fake.sent.to("4915112345678").texts() == ["Hallo"]
