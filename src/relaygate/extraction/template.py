"""Prompt templates rendered in a sandboxed Jinja2 environment: an event's data cannot reach
Python internals through a template, and a template cannot call arbitrary attributes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import TemplateError, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

_ENVIRONMENT = SandboxedEnvironment(autoescape=False, keep_trailing_newline=True)


class TemplateRenderError(ValueError):
    """The template failed while rendering an event (a sandbox refusal, a bad filter call)."""


def check_template(source: str) -> None:
    """Raise ``ValueError`` naming the line of a syntax error."""
    try:
        _ENVIRONMENT.parse(source)
    except TemplateSyntaxError as exc:
        raise ValueError(f"template syntax error at line {exc.lineno}: {exc.message}") from None


class PromptTemplate:
    def __init__(self, source: str) -> None:
        check_template(source)
        self._template = _ENVIRONMENT.from_string(source)

    def render(self, variables: Mapping[str, Any]) -> str:
        try:
            return self._template.render(dict(variables))
        except TemplateError as exc:
            raise TemplateRenderError(f"the prompt template failed: {exc}") from None
