"""The only request format is JSON, and every parsed body passes the one input gate
(jobs.input_gate): NUL, lone surrogates or nesting too deep anywhere in it is a 400 naming where."""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError, ValidationError

from jobs.input_gate import ENVELOPE_DEPTH, MAX_JSON_DEPTH, input_problem


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the document is nested too deeply.") from None
        except UnicodeDecodeError:
            raise ParseError("JSON parse error - the body is not UTF-8 text.") from None
        # Stored values may nest MAX_JSON_DEPTH levels (their fields check that); the body adds its own.
        found = input_problem(data, max_depth=MAX_JSON_DEPTH + ENVELOPE_DEPTH)
        if found:
            # Keyed by the body's field, as serializer errors are; the rest of the path in the message.
            path, message = found
            field, _, inner = path.partition(".") if isinstance(data, dict) else ("", "", path)
            raise ValidationError(
                {field or "non_field_errors": [f"{inner}: {message}" if inner else message]}, code="invalid_input"
            )
        return data
