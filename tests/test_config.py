"""Settings come from WAFLOW_* variables, validated; a bad value names the variable at fault."""

from __future__ import annotations

import logging

import httpx
import pytest

from tests.graph_support import Script, sent
from waflow import AsyncWhatsApp, WhatsApp
from waflow.config import Settings
from waflow.errors import ConfigError
from waflow.store import open_store
from waflow.testing import FrozenClock

TOKEN = "EAAGconfig0token0value"
FULL_ENV = {
    "WAFLOW_GRAPH_URL": "http://127.0.0.1:8080/graph/",
    "WAFLOW_API_VERSION": "v23.0",
    "WAFLOW_ACCESS_TOKEN": TOKEN,
    "WAFLOW_PAGE_ACCESS_TOKEN": "EAAGpage0token0value",
    "WAFLOW_APP_SECRET": "app0secret0value",
    "WAFLOW_VERIFY_TOKEN": "verify0token0value",
    "WAFLOW_PHONE_NUMBER_ID": "106540352242922",
    "WAFLOW_WABA_ID": "102290129340398",
    "WAFLOW_PAGE_ID": "1122334455667788",
    "WAFLOW_CATALOG_ID": "987654321",
    "WAFLOW_DATASET_ID": "555666777",
    "WAFLOW_STORE": "redis://localhost:6379/0",
    "WAFLOW_SHOP_CONFIG": "shop.toml",
    "WAFLOW_LOG_LEVEL": "debug",
    "WAFLOW_THROUGHPUT": "1000",
}


def test_defaults_without_any_variable() -> None:
    settings = Settings.from_env({})

    assert settings.graph_url == "https://graph.facebook.com"
    assert settings.api_version == "v26.0"
    assert settings.access_token is None
    assert settings.page_access_token is None
    assert settings.app_secret is None
    assert settings.verify_token is None
    assert settings.phone_number_id is None
    assert settings.waba_id is None
    assert settings.page_id is None
    assert settings.catalog_id is None
    assert settings.dataset_id is None
    assert settings.store == "sqlite:///waflow.db"
    assert settings.shop_config is None
    assert settings.log_level == "INFO"
    assert settings.throughput == 80


def test_every_variable_is_read() -> None:
    settings = Settings.from_env(FULL_ENV)

    assert settings.graph_url == "http://127.0.0.1:8080/graph"
    assert settings.api_version == "v23.0"
    assert settings.access_token is not None
    assert settings.access_token.get_secret_value() == TOKEN
    assert settings.page_access_token is not None
    assert settings.page_access_token.get_secret_value() == "EAAGpage0token0value"
    assert settings.app_secret is not None
    assert settings.app_secret.get_secret_value() == "app0secret0value"
    assert settings.verify_token is not None
    assert settings.verify_token.get_secret_value() == "verify0token0value"
    assert settings.phone_number_id == "106540352242922"
    assert settings.waba_id == "102290129340398"
    assert settings.page_id == "1122334455667788"
    assert settings.catalog_id == "987654321"
    assert settings.dataset_id == "555666777"
    assert settings.store == "redis://localhost:6379/0"
    assert settings.shop_config == "shop.toml"
    assert settings.log_level == "DEBUG"
    assert settings.throughput == 1000


def test_every_setting_has_a_variable() -> None:
    assert {f"WAFLOW_{name.upper()}" for name in Settings.model_fields} == set(FULL_ENV)


@pytest.mark.parametrize("tier", ["20", "80", "1000", " 80 "])
def test_throughput_tiers_are_read_from_text(tier: str) -> None:
    assert Settings.from_env({"WAFLOW_THROUGHPUT": tier}).throughput == int(tier)


@pytest.mark.parametrize(
    "store",
    ["sqlite:///var/lib/shop.db", "redis://cache:6379/2", "rediss://cache:6380", "memory://"],
)
def test_store_urls_of_every_backend_are_accepted(store: str) -> None:
    assert Settings.from_env({"WAFLOW_STORE": store}).store == store


@pytest.mark.parametrize("store", ["sqlite://", "sqlite:///"])
def test_a_sqlite_url_without_a_file_is_refused_not_made_a_memory_database(store: str) -> None:
    # It would silently lose everything recorded at the next restart.
    with pytest.raises(ConfigError, match=r"WAFLOW_STORE.*names no file"):
        Settings.from_env({"WAFLOW_STORE": store})
    with pytest.raises(ConfigError, match="names no file"):
        open_store(store)
    assert open_store("sqlite://:memory:") is not None  # asked for by name: fine


def test_a_graph_url_with_a_port_that_is_not_a_number_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"WAFLOW_GRAPH_URL.*port that is not a number"):
        Settings.from_env({"WAFLOW_GRAPH_URL": "http://127.0.0.1:abc"})


def test_empty_variables_count_as_unset_and_values_are_stripped() -> None:
    settings = Settings.from_env(
        {"WAFLOW_ACCESS_TOKEN": "", "WAFLOW_PHONE_NUMBER_ID": " 106540352242922\n"}
    )

    assert settings.access_token is None
    assert settings.phone_number_id == "106540352242922"


def test_variables_of_other_programs_are_ignored(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="waflow"):
        settings = Settings.from_env({"PATH": "/usr/bin", "ACCESS_TOKEN": "x"})

    assert settings == Settings()
    assert caplog.records == []


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WAFLOW_GRAPH_URL", "graph.facebook.com"),
        ("WAFLOW_GRAPH_URL", "ftp://graph.facebook.com"),
        ("WAFLOW_GRAPH_URL", "https://"),
        ("WAFLOW_GRAPH_URL", "https://graph facebook.com"),
        ("WAFLOW_API_VERSION", "26.0"),
        ("WAFLOW_API_VERSION", "v26"),
        ("WAFLOW_API_VERSION", "latest"),
        ("WAFLOW_PHONE_NUMBER_ID", "+49 151 1234567"),
        ("WAFLOW_PHONE_NUMBER_ID", "12a"),
        ("WAFLOW_WABA_ID", "waba"),
        ("WAFLOW_PAGE_ID", "-1"),
        ("WAFLOW_CATALOG_ID", "1.5"),
        ("WAFLOW_DATASET_ID", "١٢٣"),
        ("WAFLOW_STORE", "postgres://db/shop"),
        ("WAFLOW_STORE", "waflow.db"),
        ("WAFLOW_LOG_LEVEL", "verbose"),
        ("WAFLOW_THROUGHPUT", "50"),
        ("WAFLOW_THROUGHPUT", "eighty"),
    ],
)
def test_malformed_value_raises_config_error_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({variable: value})


def test_all_malformed_variables_are_named_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"WAFLOW_API_VERSION": "26", "WAFLOW_THROUGHPUT": "50"})

    assert "WAFLOW_API_VERSION" in str(info.value)
    assert "WAFLOW_THROUGHPUT" in str(info.value)


def test_ids_must_be_digits_only_when_set_directly() -> None:
    with pytest.raises(ValueError, match="numeric"):
        Settings(phone_number_id="106540352242922\n")


def test_require_names_every_missing_variable() -> None:
    settings = Settings.from_env({"WAFLOW_PHONE_NUMBER_ID": "106540352242922"})

    with pytest.raises(ConfigError) as info:
        settings.require("access_token", "phone_number_id", "app_secret")

    message = str(info.value)
    assert "WAFLOW_ACCESS_TOKEN" in message
    assert "WAFLOW_APP_SECRET" in message
    assert "WAFLOW_PHONE_NUMBER_ID" not in message


def test_require_passes_when_everything_is_set() -> None:
    settings = Settings.from_env(FULL_ENV)
    assert settings.require("access_token", "phone_number_id", "waba_id") is None
    with pytest.raises(ConfigError):  # the same call fails once one of them is missing
        Settings.from_env({**FULL_ENV, "WAFLOW_WABA_ID": ""}).require("waba_id")


def test_unknown_variable_is_warned_about_with_a_suggestion(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="waflow"):
        Settings.from_env({"WAFLOW_ACESS_TOKEN": TOKEN})

    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.name == "waflow.config"
    assert "WAFLOW_ACESS_TOKEN" in record.getMessage()
    assert "did you mean WAFLOW_ACCESS_TOKEN?" in record.getMessage()
    assert TOKEN not in record.getMessage()


def test_unknown_variable_without_a_close_match_is_still_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="waflow"):
        Settings.from_env({"WAFLOW_X": "1"})

    [record] = caplog.records
    assert "WAFLOW_X is not a waflow setting" in record.getMessage()


def test_variables_read_by_waflow_tooling_are_not_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="waflow"):
        Settings.from_env({"WAFLOW_REQUIRE_REDIS": "1"})

    assert caplog.records == []


@pytest.mark.parametrize("client", [WhatsApp, AsyncWhatsApp])
def test_client_from_env_without_token_names_the_variable(
    client: type[WhatsApp] | type[AsyncWhatsApp],
) -> None:
    with pytest.raises(ConfigError, match="WAFLOW_ACCESS_TOKEN"):
        client.from_env({"WAFLOW_PHONE_NUMBER_ID": "106540352242922"})


def test_client_from_env_without_phone_number_id_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="WAFLOW_PHONE_NUMBER_ID"):
        WhatsApp.from_env({"WAFLOW_ACCESS_TOKEN": TOKEN})


def test_client_from_env_uses_url_version_and_token() -> None:
    script = Script(sent())
    env = {
        "WAFLOW_ACCESS_TOKEN": TOKEN,
        "WAFLOW_PHONE_NUMBER_ID": "106540352242922",
        "WAFLOW_GRAPH_URL": "http://127.0.0.1:8080/graph",
        "WAFLOW_API_VERSION": "v23.0",
        "WAFLOW_THROUGHPUT": "20",
    }
    wa = WhatsApp.from_env(
        env, http_client=httpx.Client(transport=httpx.MockTransport(script)), clock=FrozenClock()
    )

    wa.send_text("4915112345678", "Hallo!")

    [request] = script.requests
    assert str(request.url) == "http://127.0.0.1:8080/graph/v23.0/106540352242922/messages"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert wa.api_version == "v23.0"


def test_client_from_env_paces_at_the_configured_throughput() -> None:
    script = Script(sent())
    clock = FrozenClock()
    env = {"WAFLOW_ACCESS_TOKEN": TOKEN, "WAFLOW_PHONE_NUMBER_ID": "106540352242922"}
    wa = WhatsApp.from_env(
        {**env, "WAFLOW_THROUGHPUT": "20"},
        http_client=httpx.Client(transport=httpx.MockTransport(script)),
        clock=clock,
    )

    for _ in range(3):
        wa.send_text("4915112345678", "Hallo!")

    assert clock.sleeps == [pytest.approx(1 / 20)] * 2


def test_keyword_arguments_override_the_environment() -> None:
    script = Script(sent())
    env = {"WAFLOW_ACCESS_TOKEN": TOKEN, "WAFLOW_PHONE_NUMBER_ID": "106540352242922"}
    wa = WhatsApp.from_env(
        env,
        api_version="v24.0",
        http_client=httpx.Client(transport=httpx.MockTransport(script)),
        clock=FrozenClock(),
        throughput=None,
    )

    wa.send_text("4915112345678", "Hallo!")

    assert script.requests[0].url.path == "/v24.0/106540352242922/messages"
