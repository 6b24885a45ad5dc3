"""The User Profile API: a Messenger customer's name, for greetings and templates."""

from __future__ import annotations

import pytest

from waflow.errors import InvalidRequestError
from waflow.testing import FakeGraphAPI

PSID = "6945398272183744"


def test_user_profile_reads_the_fields_the_page_may_see() -> None:
    fake = FakeGraphAPI()
    fake.add_messenger_profile(PSID, "Lena", "Berg", locale="de_DE")
    profile = fake.messenger().user_profile(PSID)
    assert (profile.id, profile.first_name, profile.last_name, profile.locale) == (
        PSID,
        "Lena",
        "Berg",
        None,
    )
    assert fake.requests[-1].params == {"fields": "first_name,last_name,profile_pic"}
    assert fake.messenger().user_profile(PSID, fields=("first_name", "locale")).locale == "de_DE"


async def test_async_user_profile_and_unknown_customers() -> None:
    fake = FakeGraphAPI()
    fake.add_messenger_profile(PSID, "Lena")
    fb = fake.async_messenger()
    assert (await fb.user_profile(PSID)).first_name == "Lena"
    with pytest.raises(InvalidRequestError):
        await fb.user_profile("1234567")
