"""Sending: every byte that leaves the system for an alert goes out through this module.

E-mail through Django's mail backend; webhooks as a JSON POST signed with HMAC-SHA256 of the exact
body (`X-JTB-Signature: sha256=<hex>`); Slack incoming webhooks as `{"text": ...}`. Nothing here
touches the database: the caller records the outcome.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import send_mail

from alerts.messages import Message

SIGNATURE_HEADER = "X-JTB-Signature"
# How much of a receiver's error answer is kept in the delivery log.
_ERROR_BODY_CHARS = 500


@dataclass(frozen=True)
class SendResult:
    ok: bool
    # False for answers that will not change on a retry (400, 401, 404...): stop trying.
    retryable: bool = True
    status_code: int | None = None
    error: str = ""
    duration_ms: int = 0


@dataclass(frozen=True)
class Target:
    kind: str
    url: str = ""
    secret: str = ""
    emails: tuple[str, ...] = ()


def signature_for(secret: str, body: bytes) -> str:
    """The X-JTB-Signature value a receiver recomputes to check the POST came from us."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def channel_send(*, target: Target, message: Message, delivery_id: int) -> SendResult:
    started = time.monotonic()
    if target.kind == "email":
        result = _send_email(target, message)
    elif target.kind == "slack":
        body = json.dumps(message.slack_payload()).encode()
        result = _post(target.url, body, headers={})
    elif target.kind == "webhook":
        body = json.dumps(message.webhook_payload(delivery_id=delivery_id), separators=(",", ":")).encode()
        headers = {"X-JTB-Event": message.event, "X-JTB-Delivery": str(delivery_id)}
        if target.secret:
            headers[SIGNATURE_HEADER] = signature_for(target.secret, body)
        result = _post(target.url, body, headers=headers)
    else:
        result = SendResult(ok=False, retryable=False, error=f"unknown channel kind {target.kind!r}")
    return SendResult(**{**result.__dict__, "duration_ms": int((time.monotonic() - started) * 1000)})


def _send_email(target: Target, message: Message) -> SendResult:
    if not target.emails:
        return SendResult(ok=False, retryable=False, error="no e-mail addresses")
    try:
        send_mail(message.title, message.text, settings.DEFAULT_FROM_EMAIL, list(target.emails))
    except Exception as exc:  # SMTP errors come in many classes; all are worth a retry
        return SendResult(ok=False, error=f"{type(exc).__name__}: {exc}")
    return SendResult(ok=True)


def _post(url: str, body: bytes, *, headers: dict[str, str]) -> SendResult:
    request = urllib.request.Request(
        url, data=body, method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "JobTarget-Batch-Alerts/1", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.JTB_ALERT_HTTP_TIMEOUT_SECONDS) as response:
            return SendResult(ok=True, status_code=response.status)
    except urllib.error.HTTPError as exc:
        detail = exc.read(_ERROR_BODY_CHARS).decode(errors="replace")
        # 408 and 429 ask us to come back later; other 4xx mean the request itself is wrong.
        retryable = exc.code >= 500 or exc.code in (408, 429)
        return SendResult(ok=False, retryable=retryable, status_code=exc.code, error=f"HTTP {exc.code}: {detail}")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return SendResult(ok=False, error=f"{type(exc).__name__}: {reason}")
