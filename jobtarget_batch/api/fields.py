"""Serializer pieces every resource uses: refusing unknown fields, and JSON that any database stores."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobs.input_gate import input_problem


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


class JSONValueField(serializers.JSONField):
    """JSON as sent, through the one input gate (jobs.input_gate): NUL, lone surrogates and deep
    nesting are refused with the gate's message.

    What the value must look like (object, list of requirements...) is checked by the model's
    `clean` or the service, the same checks the admin runs.
    """

    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        found = input_problem(data)
        if found:
            path, message = found
            raise serializers.ValidationError(f"{path}: {message}" if path else message, code="invalid_input")
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
