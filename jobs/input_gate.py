"""The one gate every text and JSON value passes before it is stored: API bodies, admin forms,
schedules, environments, run parameters.

A value is refused when it holds a NUL character (PostgreSQL cannot store it), a lone UTF-16
surrogate (no database driver can encode it, and a committed one breaks every page that reads the
row) or JSON nested deeper than MAX_JSON_DEPTH (recursion in every reader). Pure code: no models,
no settings, so the API parser, the serializer fields, the admin forms and the models' `clean` all
call the same function and give the same message.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

# How deep a stored JSON value (parameters, environment, tags) may nest.
MAX_JSON_DEPTH = 32
# A request body wraps stored values in a few levels of its own (`{"runs": [{"parameters": ...}]}`).
ENVELOPE_DEPTH = 8

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")

NUL_MESSAGE = "Text may not contain NUL (\\u0000) characters."
SURROGATE_MESSAGE = "Text may not contain lone UTF-16 surrogates (e.g. \\udc00); send valid Unicode."
DEPTH_MESSAGE = f"JSON may be nested at most {MAX_JSON_DEPTH} levels deep."


def text_problem(text: str) -> str | None:
    """Why `text` cannot be stored, or None."""
    if "\x00" in text:
        return NUL_MESSAGE
    if _LONE_SURROGATE.search(text):
        return SURROGATE_MESSAGE
    return None


def input_problem(value, *, max_depth: int = MAX_JSON_DEPTH) -> tuple[str, str] | None:
    """The first problem in a text or JSON value as (dotted path inside it, message), or None.

    Iterative, so a document nested a million levels deep costs no Python stack.
    """
    stack: list[tuple[object, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if depth > max_depth:
            return path, DEPTH_MESSAGE
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                return path, problem
        elif isinstance(item, dict):
            for key, child in item.items():
                key_text = str(key)
                child_path = f"{path}.{key_text}" if path else key_text
                problem = text_problem(key_text)
                if problem:
                    # The key itself cannot be echoed back safely; name its parent.
                    return path, problem
                stack.append((child, child_path, depth + 1))
        elif isinstance(item, (list, tuple)):
            for index, child in enumerate(item):
                stack.append((child, f"{path}.{index}" if path else str(index), depth + 1))
    return None


def validate_input(value, *, what: str = "The value"):
    """Raise ValidationError naming `what` when the value cannot be stored; return it unchanged."""
    found = input_problem(value)
    if found:
        path, message = found
        where = f" (at {path})" if path else ""
        raise ValidationError(f"{what}{where}: {message}", code="invalid_input")
    return value
