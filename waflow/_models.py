"""Base classes of every pydantic model in waflow, outbound and inbound.

Outbound models (what waflow sends) forbid unknown fields, so a typo fails before the request, and
turn every validation failure into :class:`~waflow.errors.MessageValidationError`, naming the field
and, for Meta's limits, the limit. Inbound models (what Meta sends) keep unknown fields, so nothing
Meta adds is lost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence, Sized
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, ValidationInfo
from typing_extensions import Self

from waflow.errors import MessageValidationError

__all__ = [
    "InboundModel",
    "JsonObject",
    "OutboundModel",
    "check_count",
    "check_length",
    "check_unique",
    "violation",
]


def violation(message: str, *, limit: str | None = None, field: str | None = None) -> Exception:
    """A :class:`MessageValidationError` to ``raise`` from a validator (it is not wrapped)."""
    return MessageValidationError(message, limit=limit, field=field)


def check_length(value: str | None, maximum: int, what: str, *, minimum: int = 0) -> None:
    """Raise unless ``minimum <= len(value) <= maximum`` (``None`` passes)."""
    if value is None:
        return
    if len(value) > maximum:
        raise violation(
            f"{what} must be at most {maximum} characters, got {len(value)}",
            limit=f"{what} <= {maximum} characters",
            field=what,
        )
    if len(value) < minimum:
        raise violation(
            f"{what} must not be empty" if minimum == 1 else f"{what} needs {minimum}+ characters",
            limit=f"{what} >= {minimum} characters",
            field=what,
        )


def check_count(items: Sized | None, maximum: int, what: str, *, minimum: int = 0) -> None:
    """Raise unless ``minimum <= len(items) <= maximum`` (``None`` counts as empty)."""
    count = 0 if items is None else len(items)
    if count > maximum:
        raise violation(
            f"at most {maximum} {what} allowed, got {count}",
            limit=f"{what} <= {maximum}",
            field=what,
        )
    if count < minimum:
        raise violation(
            f"at least {minimum} {what} required, got {count}",
            limit=f"{what} >= {minimum}",
            field=what,
        )


def check_unique(values: Sequence[str], what: str) -> None:
    """Raise if ``values`` holds a duplicate."""
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise violation(
                f"{what} must be unique, {value!r} appears twice",
                limit=f"{what} unique",
                field=what,
            )
        seen.add(value)


def _check_finite(value: Any, what: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise violation(
            f"{what} holds {value}: JSON has no NaN or Infinity",
            limit="finite numbers",
            field=what,
        )
    if isinstance(value, dict):
        for item in value.values():
            _check_finite(item, what)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_finite(item, what)


def _finite_json(value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
    _check_finite(value, info.field_name or "payload")
    return value


#: A free-form JSON object of a payload (flow data, payment settings): any keys and values, but,
#: like every number of an outbound model, no NaN or Infinity, which JSON cannot carry.
JsonObject = Annotated[dict[str, Any], AfterValidator(_finite_json)]


def _describe(exc: ValidationError, model: str) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        location = ".".join(str(part) for part in error["loc"])
        where = f"{model}.{location}" if location else model
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def _converted(exc: ValidationError, model: str) -> MessageValidationError:
    return MessageValidationError(f"invalid {model}: {_describe(exc, model)}")


class OutboundModel(BaseModel):
    """A payload waflow sends: strict, no unknown fields, Meta's limits checked on construction.

    Every failure is a :class:`~waflow.errors.MessageValidationError` (never a bare pydantic error),
    and its message never repeats the offending value (it may be a phone number).
    """

    # No NaN or Infinity: JSON cannot carry them (json.dumps refuses, pydantic would write null).
    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, validate_default=False, allow_inf_nan=False
    )

    # The conversion happens where a model is entered (its constructor, model_validate), not in a
    # validator on every nested model: building a message stays cheap, and a nested model's
    # failure surfaces through the outermost entry point.
    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _converted(exc, type(self).__name__) from None

    @classmethod
    def model_validate(
        cls,
        obj: Any,
        *,
        strict: bool | None = None,
        extra: Literal["allow", "ignore", "forbid"] | None = None,
        from_attributes: bool | None = None,
        context: Any | None = None,
        by_alias: bool | None = None,
        by_name: bool | None = None,
    ) -> Self:
        """Validate ``obj``; failures raise :class:`~waflow.errors.MessageValidationError`."""
        try:
            return super().model_validate(
                obj,
                strict=strict,
                extra=extra,
                from_attributes=from_attributes,
                context=context,
                by_alias=by_alias,
                by_name=by_name,
            )
        except ValidationError as exc:
            raise _converted(exc, cls.__name__) from None

    def dump(self) -> dict[str, Any]:
        """This payload as Meta expects it: JSON types, unset optional fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def dump_json(self, *, exclude: set[str] | None = None) -> bytes:
        """:meth:`dump` (less the top-level keys in ``exclude``) as compact UTF-8 JSON.

        Encoded by pydantic's serializer straight from the model, without the intermediate dict and
        ``json.dumps`` of the ``dump()`` route: it is what a send POSTs, on every send.
        """
        return self.__pydantic_serializer__.to_json(
            self, by_alias=True, exclude_none=True, exclude=exclude
        )


class InboundModel(BaseModel):
    """A payload Meta sends: unknown fields are kept (``model_extra``), nothing is lost."""

    # Meta writes some ids as numbers in one payload and strings in another: accept both.
    model_config = ConfigDict(
        extra="allow", populate_by_name=True, frozen=True, coerce_numbers_to_str=True
    )
