"""HTTP-level guards: query strings and form posts pass the one input gate, and an unexpected error
under /api/ still answers in the API's JSON error shape (`{message, code, errors}`).

Everything below a view (serializers, forms, models) checks its own fields; this layer covers what
reaches the ORM without a form: admin search and filter parameters, action selections.
"""

from __future__ import annotations

import logging

from django.http import HttpResponseBadRequest, JsonResponse

from jobs.input_gate import text_problem

logger = logging.getLogger("jobtarget_batch.errors")

API_PREFIX = "/api/"


def api_error_response(*, status: int, message: str, code: str, errors: dict | None = None) -> JsonResponse:
    return JsonResponse({"message": message, "code": code, "errors": errors or {}}, status=status)


def server_error_response() -> JsonResponse:
    return api_error_response(
        status=500, code="server_error",
        message="The server failed to answer this request; it has been logged. Try again or tell the operators.",
    )


class InputGateMiddleware:
    """Refuse a request whose query string or form fields hold NUL or lone surrogates (400)."""

    FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        sources = [request.GET]
        if request.method == "POST" and request.content_type in self.FORM_TYPES:
            sources.append(request.POST)
        for source in sources:
            for key, values in source.lists():
                problem = text_problem(key)
                if problem:
                    return self._refuse(request, "", problem)
                for value in values:
                    problem = text_problem(value)
                    if problem:
                        return self._refuse(request, key, problem)
        return self.get_response(request)

    @staticmethod
    def _refuse(request, field: str, message: str):
        if request.path.startswith(API_PREFIX):
            return api_error_response(
                status=400, code="invalid", message=f"Invalid input: {message}",
                errors={field or "non_field_errors": [message]},
            )
        return HttpResponseBadRequest(f"Bad request: {message}", content_type="text/plain; charset=utf-8")


class ApiServerErrorMiddleware:
    """An exception escaping an /api/ view becomes a logged JSON 500, never Django's HTML page."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not request.path.startswith(API_PREFIX):
            return None
        logger.error("Unhandled error on %s %s", request.method, request.path, exc_info=exception)
        return server_error_response()
