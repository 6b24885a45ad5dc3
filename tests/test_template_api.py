"""Template management through both clients against the fake: create, list over cursor pages,
get, edit, delete; and syncing a shop's folder of JSON and YAML template files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from waflow import AsyncWhatsApp, WhatsApp
from waflow.errors import (
    APIResponseValidationError,
    ConfigError,
    InvalidRequestError,
    MessageValidationError,
)
from waflow.graph import GraphRequest, GraphResponse
from waflow.testing import FakeGraphAPI, FrozenClock
from waflow.whatsapp.templates import (
    BodyDefinition,
    BodyExample,
    FooterDefinition,
    MessageTemplate,
    TemplateDefinition,
    TemplatePage,
    TemplateRegistry,
    load_template_files,
    next_page_request,
    parse_page,
    sync_templates,
    sync_templates_async,
)

WABA = "102290129340398"
TEMPLATES = f"/v26.0/{WABA}/message_templates"


def _definition(name: str, language: str = "de", category: str = "UTILITY") -> TemplateDefinition:
    return TemplateDefinition.from_body(
        {
            "name": name,
            "language": language,
            "category": category,
            "components": [
                {
                    "type": "BODY",
                    "text": "Hallo {{1}}, dein Rad ist fertig.",
                    "example": {"body_text": [["Lena"]]},
                },
                {"type": "FOOTER", "text": "Lenas Radladen"},
            ],
        }
    )


@pytest.fixture
def fake() -> FakeGraphAPI:
    return FakeGraphAPI(clock=FrozenClock())


def _calls(fake: FakeGraphAPI, method: str, path: str = TEMPLATES) -> list[Any]:
    return [r for r in fake.requests if r.method == method and r.path == path]


# -- sync client -----------------------------------------------------------------------------


def test_create_sends_the_definition_and_returns_id_status_category(fake: FakeGraphAPI) -> None:
    wa = fake.whatsapp()
    definition = _definition("bike_ready")

    created = wa.templates.create(definition)

    assert created.status == "PENDING" and created.category == "UTILITY"
    assert created.id.isdigit()
    (request,) = _calls(fake, "POST")
    assert request.json == definition.to_body()
    assert fake.templates.get("bike_ready", "de").id == created.id  # type: ignore[union-attr]


def test_create_of_an_existing_translation_is_refused_by_meta(fake: FakeGraphAPI) -> None:
    wa = fake.whatsapp()
    wa.templates.create(_definition("bike_ready"))
    with pytest.raises(InvalidRequestError) as caught:
        wa.templates.create(_definition("bike_ready"))
    assert (caught.value.code, caught.value.subcode) == (100, 2388024)
    wa.templates.create(_definition("bike_ready", "en"))  # another language is another translation


def test_the_fake_refuses_invalid_create_bodies_with_code_100(fake: FakeGraphAPI) -> None:
    # Bypass the client's own check to see what the fake (Meta) answers.
    with fake.client() as http:
        response = http.post(
            f"https://graph.facebook.com{TEMPLATES}",
            headers={"Authorization": f"Bearer {fake.access_token}"},
            json={"name": "Bad Name", "language": "de", "category": "UTILITY", "components": []},
        )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 100
    assert "lowercase letters, digits and underscores" in error["error_data"]["details"]
    assert len(fake.templates) == 0


def test_list_iterates_over_three_pages(fake: FakeGraphAPI) -> None:
    for n in range(7):
        fake.templates.add(_definition(f"notice_{n}"))
    wa = fake.whatsapp()

    listed = list(wa.templates.list(limit=3))

    assert [t.name for t in listed] == [f"notice_{n}" for n in range(7)]
    assert all(isinstance(t, MessageTemplate) and t.status == "APPROVED" for t in listed)
    pages = _calls(fake, "GET")
    assert len(pages) == 3
    assert [page.params.get("limit") for page in pages] == ["3", "3", "3"]
    assert "after" not in pages[0].params
    assert pages[1].params["after"] != pages[2].params["after"]


def test_list_fetches_a_page_only_when_needed(fake: FakeGraphAPI) -> None:
    for n in range(5):
        fake.templates.add(_definition(f"notice_{n}"))
    iterator = fake.whatsapp().templates.list(limit=2)
    assert fake.requests == []
    next(iterator)
    next(iterator)
    assert len(fake.requests) == 1


def test_list_filters_and_fields(fake: FakeGraphAPI) -> None:
    fake.templates.add(_definition("order_update", "de"))
    fake.templates.add(_definition("order_update", "en"))
    fake.templates.add(_definition("spring_sale", "de", "MARKETING"), status="PAUSED")
    wa = fake.whatsapp()

    assert [t.language for t in wa.templates.list(name="order_update")] == ["de", "en"]
    assert [t.name for t in wa.templates.list(status="PAUSED")] == ["spring_sale"]
    assert [t.key for t in wa.templates.list(category="UTILITY", language="en")] == [
        ("order_update", "en")
    ]
    (slim,) = wa.templates.list(name="spring", fields=["name", "status"])
    assert (slim.name, slim.status, slim.components, slim.language) == (
        "spring_sale",
        "PAUSED",
        [],
        "",
    )
    assert slim.id is not None  # Graph always answers the id
    assert _calls(fake, "GET")[-1].params["fields"] == "name,status"


def test_get_edit_and_delete(fake: FakeGraphAPI) -> None:
    wa = fake.whatsapp()
    created = wa.templates.create(_definition("bike_ready"))
    fake.templates.approve("bike_ready", "de")

    template = wa.templates.get(created.id)
    assert (template.name, template.status, template.body.text) == (  # type: ignore[union-attr]
        "bike_ready",
        "APPROVED",
        "Hallo {{1}}, dein Rad ist fertig.",
    )

    new_body = BodyDefinition(
        text="Hallo {{1}}, dein {{2}} ist fertig.",
        example=BodyExample(body_text=[["Lena", "Stadtrad"]]),
    )
    assert wa.templates.edit(created.id, components=[new_body, FooterDefinition(text="Lena")])
    (edit,) = _calls(fake, "POST", f"/v26.0/{created.id}")
    assert edit.json == {
        "components": [
            {
                "type": "BODY",
                "text": "Hallo {{1}}, dein {{2}} ist fertig.",
                "example": {"body_text": [["Lena", "Stadtrad"]]},
            },
            {"type": "FOOTER", "text": "Lena"},
        ]
    }
    edited = wa.templates.get(created.id)
    assert edited.status == "PENDING"  # edited content is reviewed again
    assert edited.body is not None and edited.body.text == "Hallo {{1}}, dein {{2}} ist fertig."
    assert wa.templates.edit(created.id, category="MARKETING")
    assert wa.templates.get(created.id).category == "MARKETING"

    assert wa.templates.delete("bike_ready")
    (delete,) = _calls(fake, "DELETE")
    assert delete.params == {"name": "bike_ready"}
    assert len(fake.templates) == 0


def test_delete_of_one_translation_by_its_id(fake: FakeGraphAPI) -> None:
    german = fake.templates.add(_definition("bike_ready", "de"))
    fake.templates.add(_definition("bike_ready", "en"))
    wa = fake.whatsapp()

    assert wa.templates.delete("bike_ready", template_id=german.id)

    assert _calls(fake, "DELETE")[0].params == {"name": "bike_ready", "hsm_id": german.id}
    assert [t.key for t in fake.templates] == [("bike_ready", "en")]
    with pytest.raises(InvalidRequestError):
        wa.templates.delete("no_such_template")


def test_an_unknown_template_id_is_meta_s_unsupported_request(fake: FakeGraphAPI) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        fake.whatsapp().templates.get("123456789")
    assert (caught.value.code, caught.value.subcode) == (100, 33)


def test_template_management_needs_the_waba_id(fake: FakeGraphAPI) -> None:
    wa = fake.whatsapp(waba_id=None)
    with pytest.raises(ConfigError, match="pass waba_id= to the client"):
        wa.templates.list()  # raised at the call, not at the first iteration
    with pytest.raises(ConfigError, match="WAFLOW_WABA_ID"):
        wa.templates.create(_definition("bike_ready"))
    assert fake.requests == []


def test_the_resource_follows_with_options(fake: FakeGraphAPI) -> None:
    fake.templates.add(_definition("bike_ready"))
    wa = fake.whatsapp().with_options(max_retries=0)
    assert [t.name for t in wa.templates.list()] == ["bike_ready"]


# -- async client ----------------------------------------------------------------------------


async def test_the_async_client_manages_templates_the_same_way(fake: FakeGraphAPI) -> None:
    for n in range(5):
        fake.templates.add(_definition(f"notice_{n}"))
    async with fake.async_whatsapp() as wa:
        created = await wa.templates.create(_definition("bike_ready"))
        listed = [t.name async for t in wa.templates.list(limit=2)]
        got = await wa.templates.get(created.id)
        edited = await wa.templates.edit(created.id, category="MARKETING")
        deleted = await wa.templates.delete("notice_0")

    assert listed == [*(f"notice_{n}" for n in range(5)), "bike_ready"]
    assert len(_calls(fake, "GET")) == 3
    assert got.name == "bike_ready" and edited and deleted
    assert fake.templates.get("bike_ready", "de").category == "MARKETING"  # type: ignore[union-attr]


async def test_the_async_registry_loads_from_the_api(fake: FakeGraphAPI) -> None:
    fake.templates.add(_definition("bike_ready"), status="PAUSED")
    registry = TemplateRegistry()
    async with fake.async_whatsapp() as wa:
        assert await registry.aload_from_api(wa.templates) == 1
    assert registry.get("bike_ready", "de").status == "PAUSED"  # type: ignore[union-attr]


def test_the_registry_loads_from_the_api_and_checks_sends(fake: FakeGraphAPI) -> None:
    fake.templates.add(_definition("bike_ready"))
    registry = TemplateRegistry()
    wa = fake.whatsapp(templates=registry)
    assert registry.load_from_api(wa.templates, status="APPROVED") == 1
    assert _calls(fake, "GET")[0].params["status"] == "APPROVED"
    with pytest.raises(Exception, match="takes 1 body parameter, got 0"):
        wa.send_template("4915112345678", "bike_ready", "de")
    wa.send_template("4915112345678", "bike_ready", "de", body=["Lena"])


# -- paging parser ---------------------------------------------------------------------------


def _page(data: dict[str, Any]) -> TemplatePage:
    return parse_page(GraphResponse(data, 200, {}))


def test_the_cursor_comes_from_the_cursors_or_the_next_url() -> None:
    item = {"id": "1", "name": "a", "language": "de"}
    both = _page({"data": [item], "paging": {"cursors": {"after": "QQ"}, "next": "https://x"}})
    assert both.after == "QQ"
    url_only = _page({"data": [item], "paging": {"next": "https://x/y?after=Qg&limit=3"}})
    assert url_only.after == "Qg"
    last = _page({"data": [item], "paging": {"cursors": {"after": "QQ", "before": "QQ"}}})
    assert last.after is None  # no `next`: the last page
    request = GraphRequest("GET", TEMPLATES, params={"after": "QQ"})
    assert next_page_request(request, both) is None  # a cursor that does not move ends paging
    with pytest.raises(APIResponseValidationError, match="without a `data` list"):
        _page({"paging": {}})


# -- files and sync --------------------------------------------------------------------------


def _write_shop_folder(root: Path) -> None:
    (root / "de").mkdir(parents=True)
    (root / "de" / "bike_ready.json").write_text(
        json.dumps(_definition("bike_ready").to_body()), encoding="utf-8"
    )
    (root / "seasonal.yaml").write_text(
        """
- name: spring_sale
  language: de
  category: MARKETING
  components:
    - type: HEADER
      format: TEXT
      text: Frühling bei Lenas Radladen
    - type: BODY
      text: "Hallo {{1}}, alle Räder {{2}} günstiger!"
      example:
        body_text: [["Lena", "10 %"]]
    - type: BUTTONS
      buttons:
        - type: QUICK_REPLY
          text: Zeig mir mehr
- name: spring_sale
  language: en
  category: MARKETING
  components:
    - type: BODY
      text: "Hi {{1}}, every bike {{2}} off!"
      example:
        body_text: [["Lena", "10 %"]]
""",
        encoding="utf-8",
    )
    (root / ".drafts").mkdir()
    (root / ".drafts" / "wip.json").write_text("{not json", encoding="utf-8")
    (root / "README.md").write_text("Our templates", encoding="utf-8")


def test_load_template_files_reads_json_and_yaml_recursively(tmp_path: Path) -> None:
    _write_shop_folder(tmp_path)
    definitions = load_template_files(tmp_path)
    assert [d.key for d in definitions] == [
        ("bike_ready", "de"),
        ("spring_sale", "de"),
        ("spring_sale", "en"),
    ]
    assert load_template_files(tmp_path / "de" / "bike_ready.json")[0].name == "bike_ready"


def test_load_template_files_names_the_file_of_a_broken_definition(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text(
        json.dumps({**_definition("x").to_body(), "name": "Bad Name"}), encoding="utf-8"
    )
    with pytest.raises(MessageValidationError, match=r"bad\.json: template name 'Bad Name'"):
        load_template_files(tmp_path)
    (tmp_path / "bad.json").write_text("{oops", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.json: not valid JSON"):
        load_template_files(tmp_path)


def test_load_template_files_refuses_a_translation_defined_twice(tmp_path: Path) -> None:
    body = json.dumps(_definition("bike_ready").to_body())
    (tmp_path / "a.json").write_text(body, encoding="utf-8")
    (tmp_path / "b.json").write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"'bike_ready' \(de\) is already defined in .*a\.json"):
        load_template_files(tmp_path)
    with pytest.raises(ConfigError, match="no template files at"):
        load_template_files(tmp_path / "missing")


def _existing(fake: FakeGraphAPI) -> None:
    """The account before the sync: one translation as defined, one outdated, one not in files."""
    fake.templates.add(_definition("bike_ready"))
    outdated = TemplateDefinition.from_body(
        {
            "name": "spring_sale",
            "language": "de",
            "category": "MARKETING",
            "components": [{"type": "BODY", "text": "Frühling!"}],
        }
    )
    fake.templates.add(outdated)
    fake.templates.add(_definition("old_notice"))


def test_a_dry_run_reports_without_changing_anything(fake: FakeGraphAPI, tmp_path: Path) -> None:
    _write_shop_folder(tmp_path)
    _existing(fake)
    wa = fake.whatsapp()

    report = sync_templates(wa.templates, load_template_files(tmp_path), dry_run=True, prune=True)

    assert [(e.action, e.name, e.language) for e in report.entries] == [
        ("unchanged", "bike_ready", "de"),
        ("update", "spring_sale", "de"),
        ("create", "spring_sale", "en"),
        ("delete", "old_notice", "de"),
    ]
    assert report.summary().splitlines() == [
        "unchanged bike_ready (de)",
        "would update spring_sale (de)",
        "would create spring_sale (en)",
        "would delete old_notice (de)",
    ]
    assert {r.method for r in fake.requests} == {"GET"}
    assert len(fake.templates) == 3


def test_sync_creates_missing_edits_changed_and_keeps_the_rest(
    fake: FakeGraphAPI, tmp_path: Path
) -> None:
    _write_shop_folder(tmp_path)
    _existing(fake)
    wa = fake.whatsapp()
    outdated_id = fake.templates.get("spring_sale", "de").id  # type: ignore[union-attr]

    report = sync_templates(wa.templates, load_template_files(tmp_path))

    assert report.ok and not report.dry_run
    assert [e.name for e in report.unchanged] == ["bike_ready"]
    assert [(e.name, e.template_id) for e in report.updated] == [("spring_sale", outdated_id)]
    (created,) = report.created
    assert created.language == "en" and created.template_id is not None
    assert report.deleted == []
    assert fake.templates.get("old_notice", "de") is not None  # never deleted without prune
    spring = fake.templates.get("spring_sale", "de")
    assert spring is not None and spring.header is not None
    assert spring.header.text == "Frühling bei Lenas Radladen"
    # A second sync finds nothing to do.
    again = sync_templates(wa.templates, load_template_files(tmp_path))
    assert [e.action for e in again.entries] == ["unchanged"] * 3


def test_sync_prunes_only_when_asked_and_reports_failures(
    fake: FakeGraphAPI, tmp_path: Path
) -> None:
    _write_shop_folder(tmp_path)
    _existing(fake)
    wa = fake.whatsapp()
    outdated_id = fake.templates.get("spring_sale", "de").id  # type: ignore[union-attr]
    fake.fail_next(100, path=rf"/{outdated_id}$", message="(#100) Invalid parameter")

    # The edit fails; the create and the delete still run.
    report = sync_templates(wa.templates, load_template_files(tmp_path), prune=True)

    (failed,) = report.failed
    assert (failed.action, failed.name, failed.language) == ("update", "spring_sale", "de")
    assert failed.error is not None and "code 100" in failed.error
    assert not report.ok
    assert [e.name for e in report.created] == ["spring_sale"]
    assert [e.name for e in report.deleted] == ["old_notice"]
    assert fake.templates.get("old_notice", "de") is None
    assert "update spring_sale (de): FAILED" in report.summary()


async def test_sync_through_the_async_client(fake: FakeGraphAPI, tmp_path: Path) -> None:
    _write_shop_folder(tmp_path)
    _existing(fake)
    async with fake.async_whatsapp() as wa:
        dry = await sync_templates_async(wa.templates, load_template_files(tmp_path), dry_run=True)
        report = await sync_templates_async(wa.templates, load_template_files(tmp_path))
    assert [e.action for e in dry.entries] == ["unchanged", "update", "create"]
    assert [e.action for e in report.entries] == ["unchanged", "update", "create"]
    assert report.ok and len(fake.templates) == 4


def test_listed_media_samples_do_not_count_as_changes(fake: FakeGraphAPI) -> None:
    body: dict[str, Any] = {
        "name": "bike_photo",
        "language": "de",
        "category": "MARKETING",
        "components": [
            {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["4::aW1h"]}},
            {"type": "BODY", "text": "Dein neues Rad!"},
        ],
    }
    listed = {**body, "components": [dict(body["components"][0]), body["components"][1]]}
    # Meta lists the sample as a URL of its CDN, not as the upload handle.
    listed["components"][0]["example"] = {"header_handle": ["https://scontent.example/a.jpg"]}
    fake.templates.add(MessageTemplate.model_validate(listed))
    report = sync_templates(fake.whatsapp().templates, [TemplateDefinition.from_body(body)])
    assert [e.action for e in report.entries] == ["unchanged"]


def test_clients_are_typed_with_their_resources(fake: FakeGraphAPI) -> None:
    # The resources hang off both clients, sharing the client's connection pool.
    assert isinstance(fake.whatsapp(), WhatsApp)
    assert isinstance(fake.async_whatsapp(), AsyncWhatsApp)
    assert isinstance(fake.client(), httpx.Client)
