"""The ``waflow`` command, run in-process with ``main([...])`` against the FakeGraphAPI.

Clients reach the fake through ``main``'s own seam (``env=`` and ``http_client=``): nothing global
is patched, and every command reads its settings exactly as it would from the environment.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from waflow import App, __version__
from waflow.cli import CommandError, load_asgi_app, main
from waflow.errors import ConfigError
from waflow.outbox import Outbox
from waflow.store import SQLiteStore
from waflow.store.base import Commit
from waflow.testing import FakeGraphAPI
from waflow.webhooks import sign, verify_signature
from waflow.whatsapp import build

from .engine_flows import ShopFlow

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "EAAG-cli-test-token-do-not-print"
APP_SECRET = "cli-test-app-secret-do-not-print"
CUSTOMER = "4915112345678"

ORDER_UPDATE: dict[str, Any] = {
    "name": "order_update",
    "language": "de",
    "category": "UTILITY",
    "components": [
        {
            "type": "BODY",
            "text": "Hallo {{1}}, deine Bestellung {{2}} ist unterwegs.",
            "example": {"body_text": [["Lena", "4711"]]},
        }
    ],
}
WELCOME: dict[str, Any] = {
    "name": "welcome",
    "language": "en_US",
    "category": "MARKETING",
    "components": [{"type": "BODY", "text": "Welcome to Lenas Radladen!"}],
}


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def fake() -> FakeGraphAPI:
    return FakeGraphAPI(access_token=TOKEN, app_secret=APP_SECRET)


@pytest.fixture
def env(fake: FakeGraphAPI) -> dict[str, str]:
    """The variables a shop would export, pointing at the fake's account."""
    return {
        "WAFLOW_ACCESS_TOKEN": TOKEN,
        "WAFLOW_APP_SECRET": APP_SECRET,
        "WAFLOW_PHONE_NUMBER_ID": fake.phone_number_id,
        "WAFLOW_WABA_ID": fake.waba_id,
        "WAFLOW_CATALOG_ID": fake.catalog_id,
        "WAFLOW_GRAPH_URL": fake.base_url,
    }


_USER_MODULES = frozenset({"shop_bot", "cli_app", "cli_flows"})


def _user_module(name: str) -> bool:
    return name.split(".")[0] in _USER_MODULES


@pytest.fixture(autouse=True)
def _isolated_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Commands put folders on sys.path and import user modules; each test starts without them
    (other tests put examples/ on sys.path and import the real shop_bot) and leaves none behind."""
    monkeypatch.setattr(
        sys, "path", [entry for entry in sys.path if not (Path(entry) / "shop_bot").is_dir()]
    )
    for name in [name for name in sys.modules if _user_module(name)]:
        monkeypatch.delitem(sys.modules, name)  # put back when the test ends
    yield
    for name in [name for name in sys.modules if _user_module(name)]:
        del sys.modules[name]


def run(capsys: pytest.CaptureFixture[str], *argv: str, **kwargs: Any) -> tuple[int, str, str]:
    code = main(list(argv), **kwargs)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_error_line(err: str, *fragments: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("waflow: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# -- global -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (("demo", "--width", "4"), "must be from 40 to 1000, not 4"),
        (("serve", "x:app", "--port", "99999"), "must be from 1 to 65535, not 99999"),
        (("serve", "x:app", "--port", "-5"), "must be from 1 to 65535, not -5"),
        (("outbox", "list", "--limit", "0"), "must be from 1 to 100000, not 0"),
        (("outbox", "list", "--limit", "many"), "not a whole number: 'many'"),
    ],
)
def test_numbers_out_of_range_are_usage_errors(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], fragment: str
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert fragment in err
    assert "Traceback" not in err


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert out.strip() == f"waflow {__version__}"


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys)
    assert code == 2
    assert "waflow: error:" in err


def test_unknown_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "send", "text", CUSTOMER, "hi", "--nope")
    assert code == 2
    assert "unrecognized arguments: --nope" in err


def test_python_dash_m_runs_the_same_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "waflow", "--version"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"waflow {__version__}"


# -- send -------------------------------------------------------------------------------------


def test_send_text_prints_the_message_id(
    capsys: pytest.CaptureFixture[str], fake: FakeGraphAPI, env: dict[str, str]
) -> None:
    code, out, err = run(
        capsys, "send", "text", CUSTOMER, "Ihr Rad ist fertig!", env=env, http_client=fake.client()
    )
    assert code == 0, err
    assert fake.sent.last.text == "Ihr Rad ist fertig!"
    assert fake.sent.last.to == CUSTOMER
    assert out.strip() == fake.sent.last.message_id


def test_send_template_fills_positional_parameters(
    capsys: pytest.CaptureFixture[str], fake: FakeGraphAPI, env: dict[str, str]
) -> None:
    fake.templates.add(ORDER_UPDATE)
    code, out, err = run(
        capsys,
        "send",
        "template",
        CUSTOMER,
        "order_update",
        "--language",
        "de",
        "--param",
        "Lena",
        "--param",
        "4711",
        env=env,
        http_client=fake.client(),
    )
    assert code == 0, err
    template = fake.sent.last.body["template"]
    assert template["name"] == "order_update"
    assert template["language"]["code"] == "de"
    assert [p["text"] for p in template["components"][0]["parameters"]] == ["Lena", "4711"]
    assert out.strip() == fake.sent.last.message_id


def test_send_template_takes_named_parameters(
    capsys: pytest.CaptureFixture[str], fake: FakeGraphAPI, env: dict[str, str]
) -> None:
    code, _, err = run(
        capsys,
        "send",
        "template",
        CUSTOMER,
        "shipping",
        "--named-param",
        "first_name=Lena",
        env=env,
        http_client=fake.client(),
    )
    assert code == 0, err
    parameter = fake.sent.last.body["template"]["components"][0]["parameters"][0]
    assert parameter == {"type": "text", "parameter_name": "first_name", "text": "Lena"}


def test_send_template_refused_by_meta_is_one_line(
    capsys: pytest.CaptureFixture[str], fake: FakeGraphAPI, env: dict[str, str]
) -> None:
    fake.templates.add(ORDER_UPDATE)
    code, out, err = run(
        capsys,
        "send",
        "template",
        CUSTOMER,
        "order_update",
        "--language",
        "de",
        "--param",
        "Lena",
        env=env,
        http_client=fake.client(),
    )
    assert code == 1
    assert out == ""
    assert_one_error_line(err, "TemplateError", "132000")


def test_send_product_uses_the_catalog_of_the_settings(
    capsys: pytest.CaptureFixture[str], fake: FakeGraphAPI, env: dict[str, str]
) -> None:
    code, out, err = run(
        capsys,
        "send",
        "product",
        CUSTOMER,
        "city-7",
        "--body",
        "Unser Stadtrad",
        env=env,
        http_client=fake.client(),
    )
    assert code == 0, err
    interactive = fake.sent.last.body["interactive"]
    assert interactive["type"] == "product"
    assert interactive["action"] == {
        "catalog_id": fake.catalog_id,
        "product_retailer_id": "city-7",
    }
    assert interactive["body"]["text"] == "Unser Stadtrad"
    assert out.strip() == fake.sent.last.message_id


def test_send_product_without_a_catalog_names_the_setting(
    capsys: pytest.CaptureFixture[str], fake: FakeGraphAPI, env: dict[str, str]
) -> None:
    del env["WAFLOW_CATALOG_ID"]
    code, _, err = run(
        capsys, "send", "product", CUSTOMER, "city-7", env=env, http_client=fake.client()
    )
    assert code == 1
    assert_one_error_line(err, "WAFLOW_CATALOG_ID", "--catalog-id")
    assert not fake.sent


def test_missing_credentials_are_one_line_naming_the_variables(
    capsys: pytest.CaptureFixture[str], fake: FakeGraphAPI
) -> None:
    code, out, err = run(capsys, "send", "text", CUSTOMER, "hi", env={}, http_client=fake.client())
    assert code == 1
    assert out == ""
    assert_one_error_line(err, "missing settings: WAFLOW_ACCESS_TOKEN, WAFLOW_PHONE_NUMBER_ID")


def test_malformed_setting_is_one_line(
    capsys: pytest.CaptureFixture[str], fake: FakeGraphAPI, env: dict[str, str]
) -> None:
    env["WAFLOW_API_VERSION"] = "26"
    code, _, err = run(capsys, "send", "text", CUSTOMER, "hi", env=env, http_client=fake.client())
    assert code == 1
    assert_one_error_line(err, "WAFLOW_API_VERSION", "must look like v26.0")


def test_a_rejected_token_is_reported_without_the_token(
    capsys: pytest.CaptureFixture[str], env: dict[str, str]
) -> None:
    other = FakeGraphAPI(access_token="the-only-token-the-fake-accepts")
    code, out, err = run(
        capsys, "send", "text", CUSTOMER, "hi", env=env, http_client=other.client()
    )
    assert code == 1
    assert_one_error_line(err, "AuthenticationError")
    assert TOKEN not in out + err


def test_debug_shows_the_exception_instead_of_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(ConfigError, match="WAFLOW_ACCESS_TOKEN"):
        main(["send", "text", CUSTOMER, "hi", "--debug"], env={})


# -- templates --------------------------------------------------------------------------------


def test_templates_list_prints_a_table(
    capsys: pytest.CaptureFixture[str], fake: FakeGraphAPI, env: dict[str, str]
) -> None:
    added = fake.templates.add(ORDER_UPDATE, quality_score="GREEN")
    fake.templates.add(WELCOME, status="PENDING")
    code, out, err = run(capsys, "templates", "list", env=env, http_client=fake.client())
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "LANGUAGE", "STATUS", "CATEGORY", "QUALITY", "ID"]
    assert lines[1].split() == ["order_update", "de", "APPROVED", "UTILITY", "GREEN", added.id]
    assert lines[2].split()[:4] == ["welcome", "en_US", "PENDING", "MARKETING"]
    # Columns line up: every row starts its second column at the same place.
    assert len({line.index(line.split()[1], len(line.split()[0])) for line in lines}) == 1


def test_templates_list_filters_by_status_in_any_case(
    capsys: pytest.CaptureFixture[str], fake: FakeGraphAPI, env: dict[str, str]
) -> None:
    fake.templates.add(ORDER_UPDATE)
    fake.templates.add(WELCOME, status="PENDING")
    code, out, _ = run(
        capsys, "templates", "list", "--status", "pending", env=env, http_client=fake.client()
    )
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["welcome"]


def test_templates_list_says_when_there_are_none(
    capsys: pytest.CaptureFixture[str], fake: FakeGraphAPI, env: dict[str, str]
) -> None:
    code, out, _ = run(capsys, "templates", "list", env=env, http_client=fake.client())
    assert code == 0
    assert out.strip() == "no templates"


def test_templates_need_the_business_account_id(
    capsys: pytest.CaptureFixture[str], fake: FakeGraphAPI, env: dict[str, str]
) -> None:
    del env["WAFLOW_WABA_ID"]
    code, _, err = run(capsys, "templates", "list", env=env, http_client=fake.client())
    assert code == 1
    assert_one_error_line(err, "missing setting: WAFLOW_WABA_ID")


def _template_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "templates"
    folder.mkdir()
    changed = json.loads(json.dumps(ORDER_UPDATE))
    changed["components"][0]["text"] = "Hallo {{1}}, deine Bestellung {{2}} ist da."
    (folder / "order_update.json").write_text(json.dumps(changed), encoding="utf-8")
    (folder / "welcome.json").write_text(json.dumps(WELCOME), encoding="utf-8")
    shipped = {**ORDER_UPDATE, "name": "shipped"}
    (folder / "shipped.json").write_text(json.dumps(shipped), encoding="utf-8")
    return folder


def test_templates_sync_reports_each_template_and_shows_progress(
    capsys: pytest.CaptureFixture[str],
    fake: FakeGraphAPI,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    fake.templates.add(ORDER_UPDATE)
    fake.templates.add(WELCOME)
    fake.templates.add({**WELCOME, "name": "old_promo"})
    folder = _template_folder(tmp_path)
    code, out, err = run(
        capsys, "templates", "sync", str(folder), env=env, http_client=fake.client()
    )
    assert code == 0, err
    assert out.splitlines() == [
        "update order_update (de)",  # files in path order
        "create shipped (de)",
        "unchanged welcome (en_US)",
        "1 created, 1 updated, 1 unchanged, 0 failed",
    ]
    progress = err.splitlines()
    assert progress[0] == f"3 templates defined in {folder}"
    assert "updating order_update (de) …" in progress
    assert "creating shipped (de) …" in progress
    assert fake.templates.get("shipped", "de") is not None
    assert fake.templates.get("old_promo", "en_US") is not None  # no --prune: left alone


def test_templates_sync_dry_run_changes_nothing(
    capsys: pytest.CaptureFixture[str],
    fake: FakeGraphAPI,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    fake.templates.add(ORDER_UPDATE)
    fake.templates.add({**WELCOME, "name": "old_promo"})
    folder = _template_folder(tmp_path)
    code, out, _ = run(
        capsys,
        "templates",
        "sync",
        str(folder),
        "--dry-run",
        "--prune",
        env=env,
        http_client=fake.client(),
    )
    assert code == 0
    assert "would delete old_promo (en_US)" in out
    assert out.splitlines()[-1] == (
        "2 would be created, 1 would be updated, 0 unchanged, 1 would be deleted, 0 failed"
    )
    assert fake.templates.get("shipped", "de") is None
    assert fake.templates.get("old_promo", "en_US") is not None
    assert all(request.method == "GET" for request in fake.requests)


def test_templates_sync_prune_deletes_what_no_file_defines(
    capsys: pytest.CaptureFixture[str],
    fake: FakeGraphAPI,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    fake.templates.add({**WELCOME, "name": "old_promo"})
    folder = _template_folder(tmp_path)
    code, out, err = run(
        capsys, "templates", "sync", str(folder), "--prune", env=env, http_client=fake.client()
    )
    assert code == 0, err
    assert "delete old_promo (en_US)" in out
    assert "deleting old_promo (en_US) …" in err
    assert fake.templates.get("old_promo", "en_US") is None


def test_templates_sync_exits_non_zero_when_meta_refuses_one(
    capsys: pytest.CaptureFixture[str],
    fake: FakeGraphAPI,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    listed = fake.templates.add(ORDER_UPDATE)
    folder = _template_folder(tmp_path)
    # Only the edit of order_update (POST /{template-id}) is refused; the creates go through.
    fake.fail_next(100, message="(#100) Invalid parameter", path=rf"/{listed.id}$")
    code, out, err = run(
        capsys, "templates", "sync", str(folder), env=env, http_client=fake.client()
    )
    assert code == 1
    assert "update order_update (de): FAILED: (#100) Invalid parameter" in out
    assert out.splitlines()[-1] == "2 created, 0 updated, 0 unchanged, 1 failed"
    assert "Traceback" not in err


def test_templates_sync_of_a_missing_folder_is_one_line(
    capsys: pytest.CaptureFixture[str],
    fake: FakeGraphAPI,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    code, _, err = run(
        capsys,
        "templates",
        "sync",
        str(tmp_path / "nowhere"),
        env=env,
        http_client=fake.client(),
    )
    assert code == 1
    assert_one_error_line(err, "no template files at", "nowhere")
    assert not fake.requests


def test_templates_sync_names_the_file_of_a_bad_definition(
    capsys: pytest.CaptureFixture[str],
    fake: FakeGraphAPI,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    bad = {**WELCOME, "name": "Bad Name"}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad), encoding="utf-8")
    code, _, err = run(capsys, "templates", "sync", str(path), env=env, http_client=fake.client())
    assert code == 1
    assert_one_error_line(err, "bad.json")


# -- webhook ----------------------------------------------------------------------------------


def test_webhook_sign_signs_the_exact_bytes_of_the_file(
    capsys: pytest.CaptureFixture[str], env: dict[str, str], tmp_path: Path
) -> None:
    body = b'{"object": "whatsapp_business_account",  "entry": []}\n'  # odd spacing kept
    path = tmp_path / "body.json"
    path.write_bytes(body)
    code, out, _ = run(capsys, "webhook", "sign", str(path), env=env)
    assert code == 0
    signature = out.strip()
    assert signature == sign(body, APP_SECRET)
    verify_signature(body, signature, APP_SECRET)


def test_webhook_sign_takes_the_secret_as_an_option(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "body.json"
    path.write_bytes(b"{}")
    code, out, _ = run(capsys, "webhook", "sign", str(path), "--secret", "another-secret", env={})
    assert code == 0
    assert out.strip() == sign(b"{}", "another-secret")


def test_webhook_sign_prints_a_curl_command(
    capsys: pytest.CaptureFixture[str], env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "my body.json"
    path.write_bytes(b"{}")
    code, out, _ = run(
        capsys, "webhook", "sign", str(path), "--curl", "http://127.0.0.1:8000/webhook", env=env
    )
    assert code == 0
    assert out.startswith("curl ")
    assert f"'X-Hub-Signature-256: {sign(b'{}', APP_SECRET)}'" in out
    assert f"--data-binary '@{path}'" in out
    assert "http://127.0.0.1:8000/webhook" in out


def test_webhook_sign_of_a_missing_file_is_one_line(
    capsys: pytest.CaptureFixture[str], env: dict[str, str], tmp_path: Path
) -> None:
    missing = tmp_path / "nope.json"
    code, _, err = run(capsys, "webhook", "sign", str(missing), env=env)
    assert code == 1
    assert_one_error_line(err, f"no such file: {missing}")


def test_webhook_sign_without_a_secret_names_the_setting(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "body.json"
    path.write_bytes(b"{}")
    code, _, err = run(capsys, "webhook", "sign", str(path), env={})
    assert code == 1
    assert_one_error_line(err, "WAFLOW_APP_SECRET", "--secret")


# -- outbox -----------------------------------------------------------------------------------


def _store_with_parked(fake: FakeGraphAPI, path: Path, count: int = 1) -> list[str]:
    """A SQLite store with ``count`` messages parked by Meta's 131026, and one sent."""

    async def fill() -> list[str]:
        store = SQLiteStore(path)
        outbox = Outbox(store, whatsapp=fake.whatsapp())
        items = [
            outbox.draft(
                build.text(f"49151000000{number:02d}", "Ihr Rad ist fertig!"),
                channel="whatsapp",
                business_id=fake.phone_number_id,
                customer=f"wa:49151000000{number:02d}",
            )
            for number in range(count + 1)
        ]
        await store.commit(Commit(outbox=items))
        fake.fail_next(131026, message="(#131026) Message undeliverable", times=count)
        report = await outbox.drain()
        assert report.parked == count and report.sent == 1
        parked = [item.id for item in await store.outbox_list("parked")]
        await store.close()
        return parked

    return asyncio.run(fill())


def test_outbox_list_shows_parked_messages_with_their_error(
    capsys: pytest.CaptureFixture[str], fake: FakeGraphAPI, tmp_path: Path
) -> None:
    db = tmp_path / "waflow.db"
    parked = _store_with_parked(fake, db)
    code, out, err = run(capsys, "outbox", "list", env={"WAFLOW_STORE": f"sqlite:///{db}"})
    assert code == 0, err
    header, row = out.splitlines()
    assert header.split() == ["ID", "CUSTOMER", "CHANNEL", "ATTEMPTS", "CREATED", "LAST", "ERROR"]
    assert row.startswith(parked[0])
    assert "wa:4915100000000" in row
    assert "whatsapp" in row
    assert "RecipientError: (#131026) Message undeliverable" in row


def test_outbox_list_by_state_and_store_option(
    capsys: pytest.CaptureFixture[str], fake: FakeGraphAPI, tmp_path: Path
) -> None:
    db = tmp_path / "shop.db"
    _store_with_parked(fake, db)
    code, out, _ = run(capsys, "outbox", "list", "--state", "sent", "--store", f"sqlite:///{db}")
    assert code == 0
    rows = out.splitlines()[1:]
    assert len(rows) == 1
    assert "wa:4915100000001" in rows[0]
    code, out, _ = run(capsys, "outbox", "list", "--state", "pending", "--store", f"sqlite:///{db}")
    assert code == 0
    assert out.strip() == "no pending messages"


def test_outbox_list_cuts_long_errors_unless_full(
    capsys: pytest.CaptureFixture[str], fake: FakeGraphAPI, tmp_path: Path
) -> None:
    db = tmp_path / "waflow.db"
    long_error = "(#131026) " + "undeliverable " * 20

    async def fill() -> None:
        store = SQLiteStore(db)
        outbox = Outbox(store, whatsapp=fake.whatsapp())
        item = outbox.draft(
            build.text(CUSTOMER, "hi"),
            channel="whatsapp",
            business_id=fake.phone_number_id,
            customer=f"wa:{CUSTOMER}",
        )
        await store.commit(Commit(outbox=[item]))
        fake.fail_next(131026, message=long_error)
        await outbox.drain()
        await store.close()

    asyncio.run(fill())
    url = f"sqlite:///{db}"
    _, short, _ = run(capsys, "outbox", "list", "--store", url)
    assert short.splitlines()[1].endswith("…")
    _, full, _ = run(capsys, "outbox", "list", "--store", url, "--full")
    assert long_error.strip() in full


def test_outbox_retry_puts_a_parked_message_back_in_line(
    capsys: pytest.CaptureFixture[str], fake: FakeGraphAPI, tmp_path: Path
) -> None:
    db = tmp_path / "waflow.db"
    (item_id,) = _store_with_parked(fake, db)
    code, out, _ = run(capsys, "outbox", "retry", item_id, "--store", f"sqlite:///{db}")
    assert code == 0
    assert out.strip() == f"{item_id}: back in line"

    async def state() -> str:
        store = SQLiteStore(db)
        item = await store.outbox_get(item_id)
        await store.close()
        assert item is not None
        return item.state

    assert asyncio.run(state()) == "pending"
    # A second retry finds nothing parked, and says so.
    code, out, _ = run(capsys, "outbox", "retry", item_id, "--store", f"sqlite:///{db}")
    assert code == 1
    assert out.strip() == f"{item_id}: not parked (pending)"


def test_outbox_retry_all_shows_progress_per_message(
    capsys: pytest.CaptureFixture[str], fake: FakeGraphAPI, tmp_path: Path
) -> None:
    db = tmp_path / "waflow.db"
    parked = _store_with_parked(fake, db, count=3)
    code, out, _ = run(capsys, "outbox", "retry", "--all", "--store", f"sqlite:///{db}")
    assert code == 0
    assert out.splitlines() == [
        f"[{n}/3] {item_id}: back in line" for n, item_id in enumerate(parked, 1)
    ]
    code, out, _ = run(capsys, "outbox", "retry", "--all", "--store", f"sqlite:///{db}")
    assert code == 0
    assert out.strip() == "no parked messages"


def test_outbox_retry_of_an_unknown_id_fails(
    capsys: pytest.CaptureFixture[str], fake: FakeGraphAPI, tmp_path: Path
) -> None:
    db = tmp_path / "waflow.db"
    _store_with_parked(fake, db)
    code, out, _ = run(capsys, "outbox", "retry", "no-such-id", "--store", f"sqlite:///{db}")
    assert code == 1
    assert out.strip() == "no-such-id: no such message"


def test_outbox_retry_needs_ids_or_all(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "outbox", "retry", "--store", "memory://")
    assert code == 2
    assert_one_error_line(err, "pass message ids or --all")


def test_outbox_of_a_missing_database_does_not_create_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = tmp_path / "typo.db"
    code, _, err = run(capsys, "outbox", "list", env={"WAFLOW_STORE": f"sqlite:///{db}"})
    assert code == 1
    assert_one_error_line(err, f"no store at {db}", "WAFLOW_STORE")
    assert not db.exists()


def test_outbox_with_an_unknown_store_scheme_is_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, "outbox", "list", "--store", "postgres://db/shop")
    assert code == 1
    assert_one_error_line(err, "postgres://db/shop")


def test_store_password_is_redacted_from_errors(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # An unreachable redis (port 1 on loopback refuses at once) with a password in its URL.
    url = "redis://:store-password-do-not-print@127.0.0.1:1/0"
    code, out, err = run(capsys, "outbox", "list", "--store", url)
    assert code == 1
    assert "store-password-do-not-print" not in out + err
    assert_one_error_line(err, "store redis://:***@127.0.0.1:1/0: ConnectionError")


# -- flow -------------------------------------------------------------------------------------


def test_flow_diagram_prints_the_mermaid_of_the_flow(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(
        capsys, "flow", "diagram", "tests.engine_flows:ShopFlow", "--app-dir", str(ROOT)
    )
    assert code == 0
    assert out == ShopFlow.mermaid()
    assert out.startswith("stateDiagram-v2\n")


def test_flow_diagram_of_an_unknown_flow_lists_the_flows_there(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(
        capsys, "flow", "diagram", "tests.engine_flows:ShopFlw", "--app-dir", str(ROOT)
    )
    assert code == 1
    assert_one_error_line(err, "no flow 'ShopFlw' in 'tests.engine_flows'", "ShopFlow")


def test_flow_diagram_of_a_missing_module_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "flow", "diagram", "cli_flows:Shop", "--app-dir", str(tmp_path))
    assert code == 1
    assert_one_error_line(err, "cannot import 'cli_flows'", "--app-dir")


def test_flow_diagram_refuses_what_is_not_a_flow(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write(
        tmp_path / "cli_flows.py",
        """
        from waflow.flows import Flow, State

        class Base(Flow, abstract=True):
            pass

        class Shop(Flow):
            start = State(initial=True)
            done = State(final=True)

            start.to("done")

        NOT_A_FLOW = 42
        """,
    )
    code, _, err = run(
        capsys, "flow", "diagram", "cli_flows:NOT_A_FLOW", "--app-dir", str(tmp_path)
    )
    assert code == 1
    assert_one_error_line(err, "not a Flow class")
    code, _, err = run(capsys, "flow", "diagram", "cli_flows:Base", "--app-dir", str(tmp_path))
    assert code == 1
    assert_one_error_line(err, "Base is an abstract flow")
    code, _, err = run(capsys, "flow", "diagram", "cli_flows:Nope", "--app-dir", str(tmp_path))
    assert_one_error_line(err, "flows there: Shop")


def test_flow_module_that_fails_to_import_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write(tmp_path / "cli_flows.py", "raise RuntimeError('broken on purpose')\n")
    code, _, err = run(capsys, "flow", "diagram", "cli_flows:Shop", "--app-dir", str(tmp_path))
    assert code == 1
    assert_one_error_line(err, "importing 'cli_flows' failed: RuntimeError: broken on purpose")


def test_flow_spec_without_a_colon_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, "flow", "diagram", "tests.engine_flows.ShopFlow")
    assert code == 2
    assert_one_error_line(err, "module:attribute")


# -- demo -------------------------------------------------------------------------------------

STAND_IN_DEMO = """
from typing import TextIO

async def run_demo(out: TextIO, *, width: int | None = None) -> int:
    out.write(f"{'Messenger':<20}| WhatsApp\\n")
    out.write(f"width={width}\\n")
    return 0
"""


def test_demo_runs_the_shop_bot_of_the_app_dir(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write(tmp_path / "shop_bot" / "__init__.py", "")
    write(tmp_path / "shop_bot" / "demo.py", STAND_IN_DEMO)
    code, out, err = run(capsys, "demo", "--app-dir", str(tmp_path), "--width", "100")
    assert code == 0, err
    assert out.splitlines() == [f"{'Messenger':<20}| WhatsApp", "width=100"]


def test_demo_passes_on_the_exit_status_of_the_demo(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write(tmp_path / "shop_bot" / "__init__.py", "")
    write(
        tmp_path / "shop_bot" / "demo.py",
        "async def run_demo(out, *, width=None):\n    return 3\n",
    )
    code, _, _ = run(capsys, "demo", "--app-dir", str(tmp_path))
    assert code == 3


def test_demo_without_the_example_says_where_to_run_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(capsys, "demo", "--app-dir", str(tmp_path))
    assert code == 2
    assert out == ""
    assert_one_error_line(err, "shop_bot", "waflow checkout", "--app-dir")


def test_demo_reports_a_broken_import_inside_the_example(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write(tmp_path / "shop_bot" / "__init__.py", "")
    write(tmp_path / "shop_bot" / "demo.py", "import no_such_dependency_xyz\n")
    code, _, err = run(capsys, "demo", "--app-dir", str(tmp_path))
    assert code == 1
    assert_one_error_line(err, "no_such_dependency_xyz")
    assert "waflow checkout" not in err


def test_ctrl_c_is_one_line_and_exit_130(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write(tmp_path / "shop_bot" / "__init__.py", "")
    write(
        tmp_path / "shop_bot" / "demo.py",
        "async def run_demo(out, *, width=None):\n    raise KeyboardInterrupt\n",
    )
    code, _, err = run(capsys, "demo", "--app-dir", str(tmp_path))
    assert code == 130
    assert_one_error_line(err, "interrupted")


def test_an_unexpected_error_is_one_line_pointing_at_debug(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write(tmp_path / "shop_bot" / "__init__.py", "")
    write(
        tmp_path / "shop_bot" / "demo.py",
        "async def run_demo(out, *, width=None):\n    raise RuntimeError('boom\\nsecond line')\n",
    )
    code, _, err = run(capsys, "demo", "--app-dir", str(tmp_path))
    assert code == 1
    assert_one_error_line(err, "unexpected RuntimeError: boom; second line", "--debug")


@pytest.mark.skipif(
    not (ROOT / "examples" / "shop_bot" / "demo.py").exists(),
    reason="the shop bot example is not in this checkout",
)
def test_demo_plays_the_real_shop_bot(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "demo", "--app-dir", str(ROOT / "examples"), "--width", "120")
    assert code == 0, err
    assert "Messenger" in out
    assert "WhatsApp" in out


# -- serve ------------------------------------------------------------------------------------

APP_MODULE = """
from waflow import App
from waflow.store import MemoryStore

app = App(app_secret="serve-test-secret", verify_token="serve-test-token", store=MemoryStore())

async def plain(scope, receive, send):
    pass

NOT_AN_APP = 42
"""


def test_serve_resolves_an_app_to_its_asgi_callable(tmp_path: Path) -> None:
    write(tmp_path / "cli_app.py", APP_MODULE)
    resolved = load_asgi_app("cli_app:app", app_dir=str(tmp_path))
    app = sys.modules["cli_app"].app
    assert isinstance(app, App)
    assert resolved == app.asgi


def test_serve_takes_any_other_asgi_callable_as_it_is(tmp_path: Path) -> None:
    write(tmp_path / "cli_app.py", APP_MODULE)
    assert load_asgi_app("cli_app:plain", app_dir=str(tmp_path)) is sys.modules["cli_app"].plain
    assert (
        load_asgi_app("cli_app:app.asgi", app_dir=str(tmp_path)) == sys.modules["cli_app"].app.asgi
    )


def test_serve_refuses_what_is_not_an_app(tmp_path: Path) -> None:
    write(tmp_path / "cli_app.py", APP_MODULE)
    with pytest.raises(CommandError, match="is a int, not a waflow App or an ASGI app"):
        load_asgi_app("cli_app:NOT_AN_APP", app_dir=str(tmp_path))
    with pytest.raises(CommandError, match="has no attribute 'nope'") as missing:
        load_asgi_app("cli_app:nope", app_dir=str(tmp_path))
    assert missing.value.code == 1
    with pytest.raises(CommandError, match="module:attribute") as malformed:
        load_asgi_app("cli_app", app_dir=str(tmp_path))
    assert malformed.value.code == 2


def test_serve_of_a_bad_module_path_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "serve", "cli_app:app", "--app-dir", str(tmp_path))
    assert code == 1
    assert_one_error_line(err, "cannot import 'cli_app'")


def test_serve_without_uvicorn_says_what_to_install(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # makes `import uvicorn` fail
    code, _, err = run(capsys, "serve", "cli_app:app")
    assert code == 1
    assert_one_error_line(err, "pip install 'waflow[server]'")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["cli_app:app", "cli_app:app.asgi"])
def test_serve_answers_the_webhook_handshake_and_stops_on_ctrl_c(tmp_path: Path, spec: str) -> None:
    write(tmp_path / "cli_app.py", APP_MODULE)
    port = _free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("WAFLOW_")}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "waflow",
            "serve",
            spec,
            "--port",
            str(port),
            "--app-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/webhook"
        params = {
            "hub.mode": "subscribe",
            "hub.verify_token": "serve-test-token",
            "hub.challenge": "4711",
        }
        deadline = time.monotonic() + 15
        while True:
            try:
                response = httpx.get(url, params=params, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.05)
        assert response.status_code == 200
        assert response.text == "4711"
    finally:
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=15)
    assert server.returncode == 0, err
    assert f"serving {spec} on http://127.0.0.1:{port}/webhook" in err
    assert "Traceback" not in err


# -- secrets ----------------------------------------------------------------------------------


def test_no_command_prints_a_secret(
    capsys: pytest.CaptureFixture[str],
    fake: FakeGraphAPI,
    env: dict[str, str],
    tmp_path: Path,
) -> None:
    fake.templates.add(ORDER_UPDATE)
    body = tmp_path / "body.json"
    body.write_bytes(b"{}")
    db = tmp_path / "waflow.db"
    _store_with_parked(fake, db)
    env = {
        **env,
        "WAFLOW_VERIFY_TOKEN": "verify-token-do-not-print",
        "WAFLOW_STORE": f"sqlite:///{db}",
    }
    commands = [
        ["send", "text", CUSTOMER, "hi"],
        ["send", "template", CUSTOMER, "order_update", "--language", "de", "--param", "x"],
        ["send", "product", CUSTOMER, "city-7"],
        ["templates", "list"],
        ["templates", "sync", str(_template_folder(tmp_path))],
        ["webhook", "sign", str(body)],
        ["webhook", "sign", str(body), "--curl", "http://127.0.0.1:8000/webhook"],
        ["outbox", "list"],
        ["outbox", "retry", "--all"],
        ["serve", "cli_app:app", "--app-dir", str(tmp_path)],
    ]
    secrets = [TOKEN, APP_SECRET, "verify-token-do-not-print"]
    for command in commands:
        main(command, env=env, http_client=fake.client())
        # Meta refusing the token: its error must not carry it either.
        main(
            command,
            env={**env, "WAFLOW_ACCESS_TOKEN": TOKEN + "-revoked"},
            http_client=fake.client(),
        )
    captured = capsys.readouterr()
    for secret in secrets:
        assert secret not in captured.out
        assert secret not in captured.err


def test_serve_on_a_port_in_use_exits_with_a_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write(tmp_path / "cli_app.py", APP_MODULE)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        code, _, err = run(
            capsys, "serve", "cli_app:app", "--port", port, "--app-dir", str(tmp_path)
        )
    assert code == 1  # returned by main, not a SystemExit out of it
    assert f"could not start on 127.0.0.1:{port}" in err
