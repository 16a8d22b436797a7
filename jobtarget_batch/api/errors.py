"""Every API error has one JSON shape: `{"message", "code", "errors": {"field.path": [messages]}}`.

Django's ValidationError (what `full_clean` and the services raise) becomes a 400 with its field
messages, `ProcessRefused` a 409 with its reason, so views never translate errors themselves.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler

from processes.services import ProcessRefused

MAX_MESSAGE_FIELDS = 3
logger = logging.getLogger("jobtarget_batch.errors")


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


class TooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "too_large"


class ErrorSerializer(serializers.Serializer):
    """The body of every error response (documents the shape in the schema)."""

    message = serializers.CharField(help_text="What went wrong, in one sentence a person can act on.")
    code = serializers.CharField(help_text="A stable machine-readable code, e.g. invalid, not_found, refused.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages per input field; nested fields are joined with dots, e.g. runs.3.job.",
    )


def flatten_errors(detail, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as {"a.b.0.c": [messages]}; field-less messages under their parent."""
    key = prefix or api_settings.NON_FIELD_ERRORS_KEY
    if isinstance(detail, dict):
        flat: dict[str, list[str]] = {}
        for name, value in detail.items():
            name = str(name)
            if name == api_settings.NON_FIELD_ERRORS_KEY and prefix:
                child = prefix
            elif name == api_settings.NON_FIELD_ERRORS_KEY:
                child = ""
            else:
                child = f"{prefix}.{name}" if prefix else name
            for path, messages in flatten_errors(value, child).items():
                flat.setdefault(path, []).extend(messages)
        return flat
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return {key: [str(item) for item in detail]} if detail else {}
        flat = {}
        for index, item in enumerate(detail):
            for path, messages in flatten_errors(item, f"{prefix}.{index}" if prefix else str(index)).items():
                flat.setdefault(path, []).extend(messages)
        return flat
    return {key: [str(detail)]}


def validation_message(errors: dict[str, list[str]]) -> str:
    parts = []
    for path, messages in list(errors.items())[:MAX_MESSAGE_FIELDS]:
        first = messages[0] if messages else "invalid"
        parts.append(first if path == api_settings.NON_FIELD_ERRORS_KEY else f"{path}: {first}")
    more = len(errors) - MAX_MESSAGE_FIELDS
    suffix = f" (and {more} more)" if more > 0 else ""
    return "Invalid input: " + "; ".join(parts) + suffix if parts else "Invalid input."


def api_exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(detail=serializers.as_serializer_error(exc))
    elif isinstance(exc, ProcessRefused):
        exc = Conflict(exc.message, code=exc.code)
    elif isinstance(exc, RequestDataTooBig):
        exc = TooLarge(f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.")
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    response = exception_handler(exc, context)
    if response is None:
        # Anything DRF does not know is a bug: log it and answer in the one error shape.
        request = context.get("request")
        logger.error("Unhandled API error on %s %s", getattr(request, "method", "?"),
                     getattr(request, "path", "?"), exc_info=exc)
        return Response(
            {"message": "The server failed to answer this request; it has been logged. Try again or tell the "
             "operators.", "code": "server_error", "errors": {}},
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    if isinstance(exc, exceptions.ValidationError):
        errors = flatten_errors(exc.detail)
        body = {"message": validation_message(errors), "code": "invalid", "errors": errors}
    else:
        detail = getattr(exc, "detail", None)
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else None
        body = {
            "message": str(detail) if detail is not None else str(exc),
            "code": codes if isinstance(codes, str) else getattr(exc, "default_code", "error"),
            "errors": {},
        }
    response.data = body
    return response
