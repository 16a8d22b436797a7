"""Serializer pieces every resource uses: refusing unknown fields, and JSON that any database stores."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


class StrictFieldsMixin:
    """Unknown input fields are a 400, so a typo (`"enable": false`) is never silently ignored.

    Read-only fields (`id`, `created_at`) may be sent back unchanged and are ignored.
    """

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(str(name) for name in data if name not in self.fields)
            if unknown:
                raise serializers.ValidationError({name[:100]: ["Unknown field."] for name in unknown[:20]})
        return super().to_internal_value(data)


MAX_JSON_DEPTH = 32


class _Refused(Exception):
    def __init__(self, code: str) -> None:
        self.code = code


def _check_json(value, depth: int = 0) -> None:
    if depth > MAX_JSON_DEPTH:
        raise _Refused("depth")
    if isinstance(value, str):
        if "\x00" in value:
            raise _Refused("nul")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_json(key, depth + 1)
            _check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)


class JSONValueField(serializers.JSONField):
    """JSON as sent; NUL characters are refused because PostgreSQL's jsonb cannot store them.

    What the value must look like (object, list of requirements...) is checked by the model's
    `clean` or the service, the same checks the admin runs.
    """

    default_error_messages = {
        "nul": "Text may not contain NUL (\\u0000) characters.",
        "depth": f"JSON may be nested at most {MAX_JSON_DEPTH} levels deep.",
    }

    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        try:
            _check_json(data)
        except _Refused as refused:
            self.fail(refused.code)
        return data


@extend_schema_field({"type": "object", "additionalProperties": {}})
class JSONObjectField(JSONValueField):
    pass


@extend_schema_field({"type": "object", "additionalProperties": {"type": "string"}})
class StringMapField(JSONValueField):
    pass


@extend_schema_field({"type": "array", "items": {"type": "string"}})
class StringListField(JSONValueField):
    pass
