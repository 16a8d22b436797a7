"""`Idempotency-Key` on the API's run, bulk-run and rerun endpoints.

A client that sends the same key again (a retry after a timeout, a double click in an integration)
gets the first answer again, with `Idempotent-Replayed: true`, and starts nothing more. The key is
recorded in the same transaction as the runs it started, so a crash between the two cannot leave
runs without their key or a key without its runs. Records live JTB_IDEMPOTENCY_SECONDS (24 h).
"""

from __future__ import annotations

import functools
import hashlib
import json

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from processes.models import IdempotencyRecord

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 200


class KeyConflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "idempotency_conflict"


def _fingerprint(request) -> str:
    try:
        body = json.dumps(request.data, sort_keys=True, default=str)
    except (TypeError, ValueError):
        body = repr(request.data)
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def _key(request) -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not key.strip() or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationError({HEADER: [f"Must be 1 to {MAX_KEY_LENGTH} printable characters, e.g. a UUID."]})
    return key


def idempotent(view):
    """Wrap a DRF view method that starts runs: replay the first answer for a repeated key."""

    @functools.wraps(view)
    def wrapper(self, request, *args, **kwargs):
        key = _key(request)
        if key is None:
            return view(self, request, *args, **kwargs)
        fingerprint = _fingerprint(request)
        cutoff = timezone.now() - timezone.timedelta(seconds=settings.JTB_IDEMPOTENCY_SECONDS)
        IdempotencyRecord.objects.filter(user=request.user, key=key, created_at__lt=cutoff).delete()
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(user=request.user, key=key, fingerprint=fingerprint)
                response = view(self, request, *args, **kwargs)
                if status.is_success(response.status_code):
                    record.status_code = response.status_code
                    record.body = json.loads(JSONRenderer().render(response.data))
                    record.save(update_fields=["status_code", "body"])
                else:  # errors are not remembered: the client may fix the request and retry
                    transaction.set_rollback(True)
                return response
        except IntegrityError:
            pass  # the key was used before (or is being used right now)
        first = IdempotencyRecord.objects.filter(user=request.user, key=key).first()
        if first is None or first.status_code is None:
            raise KeyConflict(f"A request with this {HEADER} is still in progress; retry in a moment.")
        if first.fingerprint != fingerprint:
            raise KeyConflict(f"This {HEADER} was used for a different request; use a new key for a new request.")
        replay = Response(first.body, status=first.status_code)
        replay[REPLAYED_HEADER] = "true"
        return replay

    return wrapper
