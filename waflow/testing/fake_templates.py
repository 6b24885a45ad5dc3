"""The message templates of :class:`~waflow.testing.FakeGraphAPI` (``fake.templates``).

It serves what :mod:`waflow.whatsapp.templates` uses, the way Meta shapes it:

- ``GET /{waba-id}/message_templates`` with ``name``, ``status``, ``category``, ``language``,
  ``fields``, ``limit`` (default 25) and ``after``; cursor paging in which only pages with a
  successor carry ``paging.next``;
- ``POST /{waba-id}/message_templates``: the body is validated with waflow's own
  :class:`~waflow.whatsapp.templates.TemplateDefinition` and refused with Graph code 100 when it
  breaks a rule; a new translation starts in :attr:`FakeTemplates.initial_status` (PENDING);
- ``GET /{template-id}``, ``POST /{template-id}`` (edit: components go back to review, as at
  Meta), ``DELETE /{waba-id}/message_templates?name=…[&hsm_id=…]``.

Template *sends* (``POST /{phone-number-id}/messages``) are checked against the registered
templates with the same :meth:`~waflow.whatsapp.templates.TemplateRegistry.problem` the clients
use, answered with Meta's codes: 132001 (no such template in that language, or not approved),
132000 (parameter count), 132012 (parameter format), 132015 (paused), 132016 (disabled).
Enforcement is on as soon as one template is registered, so tests that never register one send
any template as before; set :attr:`FakeTemplates.enforce` to force it on or off.

Status, quality and category changes (:meth:`FakeTemplates.set_status`, …) update the fake and
return the webhook body Meta would POST about them. Choices where Meta's documentation is silent
(marked so a reader can revisit them): ``name`` filters by substring; templates are listed in
the order they were added; a duplicate create answers code 100 with subcode 2388024.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import httpx
import respx

from waflow.errors import MessageValidationError
from waflow.testing.inbound import WebhookBody
from waflow.webhooks import parse
from waflow.whatsapp.messages import TemplateMessage
from waflow.whatsapp.templates import (
    MessageTemplate,
    QualityScore,
    TemplateDefinition,
    TemplateEdit,
    TemplateRegistry,
)

if TYPE_CHECKING:
    from waflow.testing.fake_graph import FakeGraphAPI

__all__ = ["FakeTemplates"]

_VERSION = r"/v\d+\.\d+"
_DEFAULT_PAGE_SIZE = 25
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# Fields a listing answers when a request names none.
_DEFAULT_FIELDS = (
    "name",
    "parameter_format",
    "components",
    "language",
    "status",
    "category",
    "sub_category",
    "previous_category",
    "rejected_reason",
    "quality_score",
    "id",
)
# Meta's titles of the template errors a send can meet.
_SEND_ERRORS = {
    132000: "(#132000) Number of parameters does not match the expected number of params",
    132001: "(#132001) Template name does not exist in the translation",
    132012: "(#132012) Parameter format does not match format in the created template",
    132015: "(#132015) Template is Paused",
    132016: "(#132016) Template is Disabled",
}
_DUPLICATE_SUBCODE = 2388024

RouteFactory = Callable[..., respx.Route]


def _graph_error(status: int, message: str, **kwargs: Any) -> httpx.Response:
    # Imported here: fake_graph imports this module, and its error shape is the one to reuse.
    from waflow.testing.fake_graph import graph_error

    return graph_error(status, message, **kwargs)


def _invalid(details: str, *, subcode: int | None = None) -> httpx.Response:
    return _graph_error(400, "(#100) Invalid parameter", code=100, subcode=subcode, details=details)


def _cursor(template_id: str) -> str:
    return base64.urlsafe_b64encode(template_id.encode()).decode().rstrip("=")


def _uncursor(cursor: str) -> str:
    padded = cursor + "=" * (-len(cursor) % 4)
    try:
        return base64.urlsafe_b64decode(padded.encode()).decode()
    except ValueError:
        return ""


class FakeTemplates:
    """The fake's template store and its checks of template sends.

    ``registry`` holds every translation (a :class:`~waflow.whatsapp.templates.TemplateRegistry`
    keyed by name and language, with Meta's id, status, quality and category). Add templates with
    :meth:`add` (APPROVED unless told otherwise) or through the API (``wa.templates.create``).
    """

    def __init__(self, fake: FakeGraphAPI) -> None:
        self._fake = fake
        self.reset()

    def reset(self) -> None:
        """Forget every template; restart the id sequence; enforcement back to automatic."""
        with self._fake._lock:
            self._rng = random.Random(f"templates:{self._fake.seed}")
            self.registry = TemplateRegistry()
            #: ``None``: check template sends once a template is registered; True/False: always/never.
            self.enforce: bool | None = None
            #: The status of a translation created (or whose components were edited) through the API.
            self.initial_status = "PENDING"

    # -- state ---------------------------------------------------------------------------------

    @property
    def enforcing(self) -> bool:
        """Whether template sends are checked now."""
        return self.enforce if self.enforce is not None else len(self.registry) > 0

    def add(
        self,
        definition: TemplateDefinition | MessageTemplate | Mapping[str, Any],
        status: str = "APPROVED",
        *,
        template_id: str | None = None,
        quality_score: str | None = None,
    ) -> MessageTemplate:
        """Register a template (a definition, a listed template or a create body) as Meta would
        hold it, with ``status``; return it with its id."""
        if isinstance(definition, Mapping):
            definition = TemplateDefinition.from_body(definition)
        with self._fake._lock:
            template_id = template_id or (
                definition.id if isinstance(definition, MessageTemplate) else None
            )
            added = self.registry.add(
                definition, status=status, template_id=template_id or self._new_id()
            )
            if quality_score is not None:
                added = self.registry.add(
                    added.model_copy(update={"quality_score": QualityScore(score=quality_score)})
                )
            return added

    def get(self, name: str, language: str) -> MessageTemplate | None:
        """The translation ``name`` in ``language``, as the fake holds it now."""
        return self.registry.get(name, language)

    def __iter__(self) -> Iterator[MessageTemplate]:
        return iter(self.registry)

    def __len__(self) -> int:
        return len(self.registry)

    def _new_id(self) -> str:
        return str(self._rng.randrange(10**14, 10**15))

    def _require(self, name: str, language: str) -> MessageTemplate:
        template = self.registry.get(name, language)
        if template is None:
            raise KeyError(f"the fake has no template {name!r} ({language})")
        return template

    # -- lifecycle webhooks --------------------------------------------------------------------

    def _webhook(self, field: str, value: dict[str, Any]) -> WebhookBody:
        seconds = int((self._fake.clock.now() - _EPOCH).total_seconds())
        body: WebhookBody = {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": self._fake.waba_id,
                    "time": seconds,
                    "changes": [{"value": value, "field": field}],
                }
            ],
        }
        # The fake changes its own state through the same path an app's registry takes.
        with self._fake._lock:
            for event in parse(body):
                self.registry.apply(event)
        return body

    def _about(self, template: MessageTemplate) -> dict[str, Any]:
        return {
            "message_template_id": int(template.id) if template.id else None,
            "message_template_name": template.name,
            "message_template_language": template.language,
        }

    def set_status(
        self, name: str, language: str, status: str, *, reason: str | None = None
    ) -> WebhookBody:
        """Change a translation's status (APPROVED, REJECTED with ``reason``, PAUSED, DISABLED, …)
        and return the ``message_template_status_update`` webhook body announcing it."""
        template = self._require(name, language)
        value = {
            "event": status,
            **self._about(template),
            "reason": reason or "NONE",
            "message_template_category": template.category,
        }
        return self._webhook("message_template_status_update", value)

    def approve(self, name: str, language: str) -> WebhookBody:
        """Approve a translation; return the webhook body."""
        return self.set_status(name, language, "APPROVED")

    def set_quality(self, name: str, language: str, score: str) -> WebhookBody:
        """Change a translation's quality score (GREEN, YELLOW, RED); return the
        ``message_template_quality_update`` webhook body."""
        template = self._require(name, language)
        previous = template.quality_score.score if template.quality_score else "UNKNOWN"
        value = {
            "previous_quality_score": previous,
            "new_quality_score": score,
            **self._about(template),
        }
        return self._webhook("message_template_quality_update", value)

    def set_category(self, name: str, language: str, category: str) -> WebhookBody:
        """Change a translation's category; return the ``template_category_update`` body."""
        template = self._require(name, language)
        value = {
            **self._about(template),
            "previous_category": template.category,
            "new_category": category,
        }
        return self._webhook("template_category_update", value)

    # -- sends ---------------------------------------------------------------------------------

    def check_send(self, message: TemplateMessage) -> httpx.Response | None:
        """Meta's error answer to a template send that does not fit its template, or ``None``."""
        if not self.enforcing:
            return None
        problem = self.registry.problem(message)
        if problem is None:
            return None
        code = problem.meta_code
        return _graph_error(400, _SEND_ERRORS[code], code=code, details=problem.message)

    # -- routes --------------------------------------------------------------------------------

    def install_routes(self, route: RouteFactory) -> None:
        """Add the template routes to a respx router (before any catch-all ``GET /{id}``)."""
        collection = rf"^{_VERSION}/(?P<node>\d+)/message_templates$"
        route(method="GET", path__regex=collection).mock(side_effect=self._list)
        route(method="POST", path__regex=collection).mock(side_effect=self._create)
        route(method="DELETE", path__regex=collection).mock(side_effect=self._delete)
        # A pattern of its own (respx merges equal patterns): the catalog also serves GET /{id}.
        single = rf"^{_VERSION}/(?P<template_id>\d+)$"
        route(method="GET", path__regex=single).mock(side_effect=self._get)
        route(method="POST", path__regex=single).mock(side_effect=self._edit)

    @staticmethod
    def _fields(request: httpx.Request) -> tuple[str, ...]:
        text = request.url.params.get("fields")
        if not text:
            return _DEFAULT_FIELDS
        names = [name.strip() for name in text.split(",") if name.strip()]
        return tuple(dict.fromkeys([*names, "id"]))  # Graph always answers the id

    @staticmethod
    def _read(template: MessageTemplate, fields: tuple[str, ...]) -> dict[str, Any]:
        data = template.model_dump(mode="json", exclude_none=True)
        return {name: data[name] for name in fields if name in data}

    def _list(self, request: httpx.Request, node: str) -> httpx.Response | None:
        if node != self._fake.waba_id:
            return None  # not this account: the fake's catch-all answers
        params = request.url.params
        limit_text = params.get("limit")
        if limit_text is not None and (not limit_text.isdigit() or int(limit_text) < 1):
            return _invalid("Param limit must be a positive integer")
        limit = int(limit_text) if limit_text else _DEFAULT_PAGE_SIZE
        name = params.get("name")
        matching = [
            template
            for template in self.registry
            if (name is None or name.lower() in template.name.lower())
            and all(
                params.get(key) is None or (getattr(template, key) or "") == params.get(key)
                for key in ("status", "category", "language")
            )
        ]
        start = 0
        after = params.get("after")
        if after is not None:
            ids = [template.id for template in matching]
            position = _uncursor(after)
            if position not in ids:
                return _invalid("Invalid cursor (after)")
            start = ids.index(position) + 1
        page = matching[start : start + limit]
        fields = self._fields(request)
        body: dict[str, Any] = {"data": [self._read(template, fields) for template in page]}
        if page:
            paging: dict[str, Any] = {
                "cursors": {
                    "before": _cursor(page[0].id or ""),
                    "after": _cursor(page[-1].id or ""),
                }
            }
            if start + limit < len(matching):
                paging["next"] = str(
                    request.url.copy_set_param("after", _cursor(page[-1].id or ""))
                )
            body["paging"] = paging
        return httpx.Response(200, json=body)

    def _create(self, request: httpx.Request, node: str) -> httpx.Response | None:
        if node != self._fake.waba_id:
            return None
        try:
            definition = TemplateDefinition.from_body(json.loads(request.content))
        except ValueError:
            return _invalid("Invalid JSON in request body")
        except MessageValidationError as exc:
            return _invalid(str(exc))
        if self.registry.get(*definition.key) is not None:
            return _invalid(
                f"Content in this language already exists: {definition.name} "
                f"({definition.language})",
                subcode=_DUPLICATE_SUBCODE,
            )
        created = self.add(definition, self.initial_status)
        return httpx.Response(
            200,
            json={"id": created.id, "status": created.status, "category": created.category},
        )

    def _delete(self, request: httpx.Request, node: str) -> httpx.Response | None:
        if node != self._fake.waba_id:
            return None
        name = request.url.params.get("name")
        if not name:
            return _graph_error(400, "(#100) The parameter name is required", code=100)
        template_id = request.url.params.get("hsm_id")
        removed = 0
        for template in list(self.registry):
            if template.name == name and (template_id is None or template.id == template_id):
                removed += self.registry.remove(template.name, template.language)
        if not removed:
            return _invalid(f"Message template {name!r} not found")
        return httpx.Response(200, json={"success": True})

    def _get(self, request: httpx.Request, template_id: str) -> httpx.Response | None:
        template = self.registry.by_id(template_id)
        if template is None:
            return None  # not a template: media, products, … answer it
        return httpx.Response(200, json=self._read(template, self._fields(request)))

    def _edit(self, request: httpx.Request, template_id: str) -> httpx.Response | None:
        template = self.registry.by_id(template_id)
        if template is None:
            return None
        try:
            edit = TemplateEdit.model_validate(json.loads(request.content))
        except ValueError:
            return _invalid("Invalid JSON in request body")
        except MessageValidationError as exc:
            return _invalid(str(exc))
        updates: dict[str, Any] = {}
        if edit.components is not None:
            updates["components"] = edit.components
            updates["status"] = self.initial_status  # edited content is reviewed again
        if edit.category is not None:
            updates["category"] = edit.category
        self.registry.add(template.model_copy(update=updates))
        return httpx.Response(200, json={"success": True})
