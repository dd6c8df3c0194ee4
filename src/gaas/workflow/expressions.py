"""Conditions (`change.type == "normal"`) and message templates, both in Jinja2's sandbox.

Definitions and webhooks are written by administrators, not by us: the sandbox refuses attribute
access to Python internals, and a missing name is simply empty (falsy), so a condition on a field
an event does not carry is false rather than an error. Both are compiled once per text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

_ENV = SandboxedEnvironment(undefined=ChainableUndefined, autoescape=False, keep_trailing_newline=True)
MAX_LENGTH = 2000


class ExpressionError(ValueError):
    """A condition or template that does not compile or fails to evaluate."""


@lru_cache(maxsize=1024)
def compile_condition(expression: str) -> Callable[..., Any]:
    if len(expression) > MAX_LENGTH:
        raise ExpressionError(f"longer than {MAX_LENGTH} characters")
    try:
        return _ENV.compile_expression(expression, undefined_to_none=True)
    except TemplateError as exc:
        raise ExpressionError(str(exc)) from exc


def check_condition(expression: str) -> str | None:
    """The reason an expression cannot be used, or None."""
    try:
        compile_condition(expression)
    except ExpressionError as exc:
        return str(exc)
    return None


def evaluate(expression: str | None, namespace: Mapping[str, Any]) -> bool:
    """True when there is no condition; a condition that fails to evaluate is false."""
    if not expression:
        return True
    try:
        return bool(compile_condition(expression)(**namespace))
    except (TemplateError, TypeError, ValueError, ArithmeticError):
        return False


@lru_cache(maxsize=512)
def _template(source: str):
    try:
        return _ENV.from_string(source)
    except TemplateError as exc:
        raise ExpressionError(str(exc)) from exc


def check_template(source: str) -> str | None:
    try:
        _template(source)
    except ExpressionError as exc:
        return str(exc)
    return None


def render(source: str, namespace: Mapping[str, Any]) -> str:
    try:
        return _template(source).render(**namespace)
    except TemplateError as exc:
        raise ExpressionError(str(exc)) from exc
