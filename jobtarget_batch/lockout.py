"""What a locked-out sign-in sees (django-axes' AXES_LOCKOUT_CALLABLE): 429 Too Many Requests with
Retry-After, in the API's JSON error shape under /api/ and as a short page in the admin."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse

from jobtarget_batch.middleware import API_PREFIX, api_error_response


def lockout_seconds() -> int:
    return int(settings.AXES_COOLOFF_TIME.total_seconds())


def lockout_message() -> str:
    minutes = max(1, lockout_seconds() // 60)
    return (f"Too many failed sign-ins for this user from this address: try again in {minutes} minutes, "
            "or ask an administrator to unlock the account.")


def lockout_response(request, original_response=None, credentials=None) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        response = api_error_response(status=429, code="locked_out", message=lockout_message())
    else:
        response = HttpResponse(
            f"<!doctype html><title>Sign-in locked</title><h1>Sign-in locked</h1><p>{lockout_message()}</p>",
            status=429, content_type="text/html; charset=utf-8",
        )
    response["Retry-After"] = str(lockout_seconds())
    return response
