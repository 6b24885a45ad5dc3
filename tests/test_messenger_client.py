"""Messenger and AsyncMessenger against the FakeGraphAPI: every helper, through both clients."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from waflow import AsyncMessenger, Messenger, SendResult
from waflow.errors import (
    APIResponseValidationError,
    APIStatusError,
    AuthenticationError,
    ConfigError,
    InvalidRequestError,
    MessageValidationError,
    OutsideServiceWindowError,
    PermissionDeniedError,
)
from waflow.graph import GraphResponse
from waflow.messenger import build
from waflow.messenger.client import parse_send
from waflow.messenger.messages import Recipient
from waflow.testing import FakeGraphAPI, FrozenClock

PSID = "6783423498392"
TOKEN = "EAAGpage-secret-token-0042"
WA_ME = "https://wa.me/4930123456789?text=Code%20K7Q2"

# helper name -> (builder, positional args, keyword args, SentMessage.type)
CASES: dict[str, tuple[Any, tuple[Any, ...], dict[str, Any], str]] = {
    "send_text": (build.text, (PSID, "Hallo Lena!"), {"metadata": "outbox:1"}, "text"),
    "send_attachment": (
        build.attachment,
        (PSID, "image", "https://cdn.example.com/bike.jpg"),
        {"is_reusable": True},
        "attachment",
    ),
    "send_quick_replies": (
        build.quick_replies,
        (PSID, "Deine Nummer für WhatsApp?", ["user_phone_number", ("NO", "Nein danke")]),
        {},
        "quick_replies",
    ),
    "send_button_template": (
        build.button_template,
        (
            PSID,
            "Lieber auf WhatsApp weiter?",
            [build.url_button("Zu WhatsApp", WA_ME), build.postback_button("Hier", "STAY")],
        ),
        {"tag": "HUMAN_AGENT", "human_agent": True},
        "template",
    ),
    "send_generic_template": (
        build.generic_template,
        (
            PSID,
            [
                build.element(
                    "Stadtrad",
                    subtitle="ab 499 €",
                    image_url="https://cdn.example.com/bike.jpg",
                    default_url="https://shop.example.com/bike-7",
                    buttons=[build.postback_button("Kaufen", "BUY:bike-7")],
                ),
                build.element("Lastenrad", subtitle="ab 1.999 €"),
            ],
        ),
        {"notification_type": "NO_PUSH"},
        "template",
    ),
}


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make_client(fake: FakeGraphAPI, mode: str, **overrides: Any) -> Messenger | AsyncMessenger:
    return fake.messenger(**overrides) if mode == "sync" else fake.async_messenger(**overrides)


async def call(client: Messenger | AsyncMessenger, name: str, /, *args: Any, **kwargs: Any) -> Any:
    result = getattr(client, name)(*args, **kwargs)
    return await result if inspect.isawaitable(result) else result


def test_every_public_send_helper_is_covered() -> None:
    helpers = {name for name in dir(Messenger) if name.startswith("send_")}
    assert helpers == set(CASES)
    assert helpers == {name for name in dir(AsyncMessenger) if name.startswith("send_")}


@pytest.mark.parametrize("helper", sorted(CASES))
async def test_helper_sends_the_built_body_and_returns_a_send_result(
    helper: str, mode: str
) -> None:
    builder, args, kwargs, kind = CASES[helper]
    fake = FakeGraphAPI(seed=7)
    client = make_client(fake, mode)
    result = await call(client, helper, *args, **kwargs)

    assert isinstance(result, SendResult)
    sent = fake.sent.last
    assert sent.body == builder(*args, **kwargs).to_body()
    assert fake.requests[-1].path == f"/v26.0/{fake.page_id}/messages"
    assert (sent.channel, sent.sender_id, sent.to, sent.type) == (
        "messenger",
        fake.page_id,
        PSID,
        kind,
    )
    assert result.channel == "messenger"
    assert result.message_id == sent.message_id
    assert result.message_id.startswith("m_")
    assert result.recipient_id == PSID
    assert result.wa_id is None
    assert result.retries_taken == 0
    if helper == "send_attachment":
        assert result.raw["attachment_id"]  # is_reusable: Meta saved the file


async def test_send_takes_any_message_model(mode: str) -> None:
    fake = FakeGraphAPI()
    client = make_client(fake, mode)
    message = build.text(Recipient(user_ref="checkbox-ref-1"), "Danke!", messaging_type="UPDATE")
    result = await call(client, "send", message)
    assert fake.sent.last.to == "checkbox-ref-1"
    assert result.recipient_id is None  # Meta answers no recipient_id for user_ref sends
    assert fake.sent.on("messenger").texts() == ["Danke!"]


@pytest.mark.parametrize("action", ["mark_seen", "typing_on", "typing_off"])
async def test_sender_actions_are_answered_but_not_recorded_as_messages(
    action: str, mode: str
) -> None:
    fake = FakeGraphAPI()
    client = make_client(fake, mode)
    assert await call(client, "sender_action", PSID, action) is None
    assert fake.requests[-1].json == {"recipient": {"id": PSID}, "sender_action": action}
    assert fake.sent == []
    [recorded] = fake.sender_actions
    assert (recorded.sender_id, recorded.to, recorded.action) == (fake.page_id, PSID, action)


async def test_me_messages_reaches_the_page(mode: str) -> None:
    fake = FakeGraphAPI()
    client = make_client(fake, mode, page_id="me")
    await call(client, "send_text", PSID, "Hallo")
    await call(client, "sender_action", PSID, "typing_off")
    assert [r.path for r in fake.requests] == ["/v26.0/me/messages"] * 2
    assert fake.sent.last.sender_id == fake.page_id
    assert fake.sender_actions[-1].sender_id == fake.page_id


async def test_seeded_fakes_hand_out_the_same_mids(mode: str) -> None:
    runs = []
    for _ in range(2):
        fake = FakeGraphAPI(seed=42)
        client = make_client(fake, mode)
        runs.append([(await call(client, "send_text", PSID, str(i))).message_id for i in range(3)])
    assert runs[0] == runs[1]
    assert len(set(runs[0])) == 3


async def test_limits_fail_before_any_request(mode: str) -> None:
    fake = FakeGraphAPI()
    client = make_client(fake, mode)
    with pytest.raises(MessageValidationError, match=r"quick replies <= 13"):
        await call(client, "send_quick_replies", PSID, "Pick", {str(i): "T" for i in range(14)})
    with pytest.raises(MessageValidationError, match="HUMAN_AGENT"):
        await call(client, "send_text", PSID, "bot", tag="HUMAN_AGENT")
    assert fake.requests == []


def test_the_fake_answers_code_100_to_an_invalid_body() -> None:
    fake = FakeGraphAPI()
    body = {
        "recipient": {"id": PSID},
        "messaging_type": "RESPONSE",
        "message": {
            "attachment": {
                "type": "template",
                "payload": {
                    "template_type": "button",
                    "text": "Pick",
                    "buttons": [
                        {"type": "postback", "title": f"B{i}", "payload": "P"} for i in range(4)
                    ],
                },
            }
        },
    }
    with fake.client() as http:
        response = http.post(
            f"https://graph.facebook.com/v26.0/{fake.page_id}/messages",
            json=body,
            headers={"Authorization": f"Bearer {fake.access_token}"},
        )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 100
    assert "buttons <= 3" in error["message"]
    assert fake.sent == []


async def test_an_unknown_node_is_not_the_page(mode: str) -> None:
    fake = FakeGraphAPI()
    client = make_client(fake, mode, page_id="999999999")
    with pytest.raises(InvalidRequestError):
        await call(client, "send_text", PSID, "Hallo")
    assert fake.unmatched


def test_a_send_answer_without_message_id_is_a_response_validation_error() -> None:
    answer = GraphResponse({"recipient_id": PSID}, 200, {})
    with pytest.raises(APIResponseValidationError, match="message_id"):
        parse_send(answer)


# -- errors --------------------------------------------------------------------------------------


async def test_outside_the_window_is_outside_service_window_error(mode: str) -> None:
    fake = FakeGraphAPI(clock=FrozenClock())
    client = make_client(fake, mode)
    fake.fail_next(
        10, subcode=2018278, message="(#10) This message is sent outside of allowed window."
    )
    with pytest.raises(OutsideServiceWindowError) as info:
        await call(client, "send_text", PSID, "Noch da?")
    assert (info.value.code, info.value.subcode) == (10, 2018278)
    assert len(fake.requests) == 1  # only a change (a tag, a new customer message) helps
    assert fake.sent == []


async def test_code_10_without_the_window_subcode_is_a_permission_error(mode: str) -> None:
    fake = FakeGraphAPI()
    client = make_client(fake, mode)
    fake.fail_next(10, message="(#10) Application does not have permission for this action")
    with pytest.raises(PermissionDeniedError) as info:
        await call(client, "send_text", PSID, "Hallo")
    assert not isinstance(info.value, OutsideServiceWindowError)


async def test_a_5xx_is_retried_for_sender_actions_but_not_for_messages(mode: str) -> None:
    fake = FakeGraphAPI(clock=FrozenClock())
    client = make_client(fake, mode)
    fake.fail_next(status=503)
    await call(client, "sender_action", PSID, "typing_on")
    assert len(fake.requests) == 2

    fake.fail_next(status=503)
    with pytest.raises(APIStatusError) as info:
        await call(client, "send_text", PSID, "Hallo")
    assert info.value.maybe_sent is True  # the message may have arrived: the outbox decides
    assert len(fake.requests) == 3


async def test_the_page_token_never_shows(mode: str) -> None:
    fake = FakeGraphAPI(access_token=TOKEN, clock=FrozenClock())
    client = make_client(fake, mode)
    assert TOKEN not in repr(client)
    assert TOKEN not in repr(client.with_options(timeout=3))

    fake.fail_next(10, subcode=2018278)
    with pytest.raises(OutsideServiceWindowError) as window:
        await call(client, "send_text", PSID, "Hallo")
    wrong = client.with_options(access_token=TOKEN + "-revoked")
    with pytest.raises(AuthenticationError) as auth:
        await call(wrong, "send_text", PSID, "Hallo")
    for exc in (window.value, auth.value):
        assert TOKEN not in str(exc)
        assert TOKEN not in repr(exc)


# -- configuration -------------------------------------------------------------------------------


async def test_from_env_reads_the_page_settings(mode: str) -> None:
    fake = FakeGraphAPI(access_token=TOKEN)
    env = {
        "WAFLOW_PAGE_ACCESS_TOKEN": TOKEN,
        "WAFLOW_PAGE_ID": fake.page_id,
        "WAFLOW_GRAPH_URL": "https://graph.facebook.com",
        "WAFLOW_API_VERSION": "v25.0",
    }
    cls = Messenger if mode == "sync" else AsyncMessenger
    http = fake.client() if mode == "sync" else fake.async_client()
    client = cls.from_env(env, http_client=http)
    assert client.page_id == fake.page_id
    assert client.api_version == "v25.0"
    await call(client, "send_text", PSID, "Hallo")
    assert fake.requests[-1].path == f"/v25.0/{fake.page_id}/messages"


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"WAFLOW_PAGE_ID": "1122334455667788"}, "WAFLOW_PAGE_ACCESS_TOKEN"),
        # The WhatsApp token is not a Page token: it is never used in its place.
        (
            {"WAFLOW_ACCESS_TOKEN": "wa-token", "WAFLOW_PAGE_ID": "1122334455667788"},
            "WAFLOW_PAGE_ACCESS_TOKEN",
        ),
        ({"WAFLOW_PAGE_ACCESS_TOKEN": TOKEN}, "WAFLOW_PAGE_ID"),
    ],
)
@pytest.mark.parametrize("cls", [Messenger, AsyncMessenger])
def test_from_env_names_the_missing_variable(
    env: dict[str, str], missing: str, cls: type[Messenger] | type[AsyncMessenger]
) -> None:
    with pytest.raises(ConfigError, match=missing) as info:
        cls.from_env(env)
    assert TOKEN not in str(info.value)


@pytest.mark.parametrize("cls", [Messenger, AsyncMessenger])
def test_constructor_without_a_token_names_the_variable(
    cls: type[Messenger] | type[AsyncMessenger],
) -> None:
    with pytest.raises(ConfigError, match="WAFLOW_PAGE_ACCESS_TOKEN"):
        cls(access_token="", page_id="1122334455667788")
    with pytest.raises(ConfigError, match="WAFLOW_PAGE_ID"):
        cls(access_token=TOKEN, page_id="")


async def test_with_options_changes_the_version_and_shares_the_pool(mode: str) -> None:
    fake = FakeGraphAPI()
    client = make_client(fake, mode)
    other = client.with_options(api_version="v24.0", max_retries=0)
    assert other._graph.http is client._graph.http
    await call(other, "send_text", PSID, "Hallo")
    assert fake.requests[-1].path == f"/v24.0/{fake.page_id}/messages"
    assert client.api_version == "v26.0"


def test_sync_client_context_manager_closes_its_own_pool() -> None:
    with Messenger(access_token=TOKEN, page_id="1") as ms:
        http = ms._graph.http
    assert http.is_closed


async def test_async_client_context_manager_closes_its_own_pool() -> None:
    async with AsyncMessenger(access_token=TOKEN, page_id="1") as ms:
        http = ms._graph.http
    assert http.is_closed


def test_a_given_http_client_is_left_open() -> None:
    fake = FakeGraphAPI()
    http = fake.client()
    with fake.messenger(http_client=http):
        pass
    assert not http.is_closed
    http.close()


def test_whatsapp_and_messenger_share_one_fake() -> None:
    fake = FakeGraphAPI()
    fake.whatsapp().send_text("4915112345678", "WhatsApp")
    fake.messenger().send_text(PSID, "Messenger")
    assert fake.sent.on("whatsapp").texts() == ["WhatsApp"]
    assert fake.sent.on("messenger").texts() == ["Messenger"]
    assert fake.sent.to(PSID).texts() == ["Messenger"]
