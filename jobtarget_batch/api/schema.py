"""OpenAPI generation: every operation documents the error responses it can give, in one shape."""

from __future__ import annotations

from drf_spectacular import openapi
from drf_spectacular.utils import OpenApiResponse

from jobtarget_batch.api.errors import ErrorSerializer

ERROR_DESCRIPTIONS = {
    "400": "Invalid input: `errors` names each bad field.",
    "401": "No or invalid credentials (send `Authorization: Token <key>` or a session cookie).",
    "403": "Authenticated, but without the permission this needs.",
    "404": "No such object.",
    "409": "Refused in the current state; `message` says why.",
    "413": "The request body is larger than the server accepts.",
    "429": "Too many requests or failed sign-ins; retry after the seconds in the Retry-After header.",
}


class AutoSchema(openapi.AutoSchema):
    """Adds 400/401/403 (404 on object paths, 413 with a body) to every operation; views add 409."""

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        codes = ["400"]
        if not getattr(self.view, "public", False):
            codes += ["401", "403"]
        if "{" in self.path:
            codes.append("404")
        if self.method in ("POST", "PUT", "PATCH"):
            codes.append("413")
        if getattr(self.view, "throttle_classes", None):
            codes.append("429")
        for code in codes:
            if code not in responses:
                responses[code] = self._get_response_for_code(
                    OpenApiResponse(response=ErrorSerializer, description=ERROR_DESCRIPTIONS[code]), code,
                    direction=direction,
                )
        return responses


def error_response(code: int) -> OpenApiResponse:
    """For `@extend_schema(responses=...)`: an error response in the common shape."""
    return OpenApiResponse(response=ErrorSerializer, description=ERROR_DESCRIPTIONS[str(code)])


def security_schemes_token_first(result, generator, request, public):
    """Postprocessing hook: list token auth first, so Swagger UI's Authorize dialog offers it on
    top (drf-spectacular sorts the schemes by name, which put the session cookie first)."""
    schemes = result.get("components", {}).get("securitySchemes")
    if schemes and "tokenAuth" in schemes:
        result["components"]["securitySchemes"] = {
            "tokenAuth": schemes["tokenAuth"], **{name: scheme for name, scheme in schemes.items() if name != "tokenAuth"}
        }
    return result
