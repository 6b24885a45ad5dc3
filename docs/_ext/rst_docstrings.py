"""A griffe extension for the API reference: waflow's docstrings in reST markup, shown as Markdown.

waflow's docstrings use the reST of Sphinx: roles (``:class:`~waflow.testing.FrozenClock```),
literal blocks after ``::`` and doctest examples (``>>> …``). mkdocstrings renders docstrings as
Markdown, where roles would show as text and ``>>>`` as nested quotes. This extension rewrites them
when the reference is built, and changes nothing in the code:

- a role becomes a link to the object's entry in the reference where there is one (an optional
  cross-reference of mkdocs-autorefs, which falls back to plain code without a warning);
  ``~`` shows the last name only, ``title <target>`` the title; relative names are looked up in the
  documented object's class or module;
- ``text::`` followed by an indented block becomes ``text:`` and the block stays code;
- a run of ``>>>`` lines and their output becomes a ``pycon`` code block.

Configured in mkdocs.yml (``extensions`` of the python handler); excluded from the site itself.
"""

from __future__ import annotations

import builtins
import html
import re
from typing import Any

import griffe

_ROLE = re.compile(
    r":(?:py:)?(?P<role>class|meth|func|mod|attr|data|exc|obj|const):"
    r"`(?P<tilde>~?)(?P<text>[^`<]+?)(?:\s*<(?P<target>[^`>]+)>)?`"
)
_CALLABLE_ROLES = {"meth", "func"}
#: Packages whose names are not looked up relative to waflow's objects.
_FOREIGN = {
    "httpx",
    "pydantic",
    "jinja2",
    "respx",
    "tenacity",
    "babel",
    "redis",
    "asyncio",
    "datetime",
}


def _candidates(identifier: str, obj: griffe.Object) -> list[str]:
    """Where a relative name may live: the documented object's class, then its module."""
    if identifier.startswith("waflow.") or identifier in vars(builtins):
        return [identifier]
    if identifier.split(".", 1)[0] in _FOREIGN:
        return [identifier]
    scopes = [obj if obj.kind in (griffe.Kind.CLASS, griffe.Kind.MODULE) else obj.parent]
    scopes.append(obj.module)
    found = [f"{scope.path}.{identifier}" for scope in scopes if scope is not None]
    return list(dict.fromkeys(found)) or [identifier]


def _role(match: re.Match[str], obj: griffe.Object) -> str:
    role, text, target = match["role"], match["text"].strip(), match["target"]
    if target is None:  # :class:`~a.b.C` or :class:`a.b.C`
        target = text.lstrip("!.")
        text = target.rsplit(".", 1)[-1] if match["tilde"] else target
    if role in _CALLABLE_ROLES and not text.endswith(")"):
        text += "()"
    # autorefs tries ``identifier``, then ``slug``; optional: no warning when neither is known.
    first, *rest = _candidates(target.lstrip("!.~"), obj)
    slug = f' slug="{html.escape(rest[0])}"' if rest else ""
    return (
        f'<autoref identifier="{html.escape(first)}"{slug} optional>'
        f"<code>{html.escape(text)}</code></autoref>"
    )


def _literal_blocks(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    for line in lines:
        stripped = line.rstrip()
        if stripped == "::":
            continue
        if stripped.endswith("::") and not stripped.endswith(":::"):
            line = stripped[:-1]
        out.append(line)
    return "\n".join(out)


def _doctests(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.lstrip().startswith(">>>"):
            out.append(line)
            index += 1
            continue
        indent = line[: len(line) - len(line.lstrip())]
        out.append(f"{indent}```pycon")
        while index < len(lines) and lines[index].strip():
            out.append(lines[index])
            index += 1
        out.append(f"{indent}```")
    return "\n".join(out)


def markdown(text: str, obj: griffe.Object) -> str:
    """``text``, a docstring of ``obj`` in reST markup, as the Markdown mkdocstrings expects."""
    text = _doctests(text)
    text = _literal_blocks(text)
    return _ROLE.sub(lambda match: _role(match, obj), text)


class RstDocstrings(griffe.Extension):
    """Rewrites every docstring once the package is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._rewrite(pkg, set())

    def _rewrite(self, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value, obj)
        for member in obj.members.values():
            if not member.is_alias:
                self._rewrite(member, seen)
