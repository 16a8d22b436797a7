"""AWS Batch "Batch Job State Change" events from SQS: what the tracker learns, seconds sooner.

An EventBridge rule puts the account's Batch state changes on an SQS queue (docs/aws.md).
`batch_events_consume` (a periodic task while JTB_BATCH_EVENTS_QUEUE_URL is set) applies each
event's `detail` — a job description shaped like a DescribeJobs answer — through the tracker's own
`batch_job_apply`, so an event and a poll can never map a state differently. The polling tracker
keeps running: it catches whatever an event missed.

SQS delivers at least once and in no particular order; a duplicate or an older event changes
nothing (the tracker's order key). So a message is deleted only after it was applied, and one whose
applying failed comes back after the queue's visibility timeout. Messages that are not events, or
events of jobs that are not ours, are logged and deleted so they do not come back forever. No
database transaction is open during an SQS call: each event is applied in its own.
"""

from __future__ import annotations

import json
import logging

from django.conf import settings

from runner.aws import batch, sqs
from runner.executors.aws_batch.tracking import NOT_OURS, batch_job_apply

logger = logging.getLogger(__name__)

SOURCE = "aws.batch"
DETAIL_TYPE = "Batch Job State Change"
DEFAULT_MAX_MESSAGES = 200


class EventMalformed(ValueError):
    """A message that is no Batch job state change we can apply; retrying it would not help."""


def _load(text: object) -> object:
    if not isinstance(text, str):
        raise EventMalformed("the message is not text")
    try:
        return json.loads(text)
    except ValueError:
        raise EventMalformed("the message is not JSON") from None


def batch_event_detail(*, body: str) -> dict:
    """The job description in an SQS message body (an EventBridge event, raw or in an SNS envelope).

    Raises EventMalformed for anything the tracker could not apply, so it is dropped, not retried.
    """
    event = _load(body)
    if isinstance(event, dict) and event.get("Type") == "Notification" and "Message" in event:
        event = _load(event["Message"])
    if not isinstance(event, dict):
        raise EventMalformed("the message is not a JSON object")
    if event.get("source") != SOURCE or event.get("detail-type") != DETAIL_TYPE:
        raise EventMalformed(f"not a {DETAIL_TYPE!r} event: {event.get('source')!r} {event.get('detail-type')!r}")
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise EventMalformed("the event has no detail")
    if not isinstance(detail.get("jobId"), str) or not detail["jobId"]:
        raise EventMalformed("the event names no job id")
    if detail.get("status") not in batch.STATE_ORDER:
        raise EventMalformed(f"unknown job status {detail.get('status')!r}")
    # The fields the mapping reads, in the types it reads them as: a wrong type would fail every retry.
    shapes = {"jobName": str, "statusReason": str, "attempts": list, "container": dict, "tags": dict}
    for key, kind in shapes.items():
        if detail.get(key) is not None and not isinstance(detail[key], kind):
            raise EventMalformed(f"the event's {key} is not a {kind.__name__}")
    for attempt in detail.get("attempts") or []:
        if not isinstance(attempt, dict) or not isinstance(attempt.get("container") or {}, dict):
            raise EventMalformed("the event's attempts are not job attempts")
    return detail


def _apply(message: dict) -> str:
    """One message: "changed", "applied", "not_ours", "malformed" or "failed" (kept for a retry)."""
    try:
        detail = batch_event_detail(body=message["body"])
    except EventMalformed as exc:
        logger.warning("dropping SQS message %s: %s", message["id"], exc)
        return "malformed"
    try:
        outcome = batch_job_apply(job=detail)
    except Exception:
        # A database or Batch error: the message comes back after the visibility timeout.
        logger.exception("applying Batch event for job %s failed; it will be retried", detail["jobId"])
        return "failed"
    if outcome == NOT_OURS:
        logger.info("ignoring Batch event of job %s (%s): not one of our runs", detail["jobId"], detail.get("jobName"))
        return "not_ours"
    return "changed" if outcome is not None else "applied"


def batch_events_consume(*, max_messages: int = DEFAULT_MAX_MESSAGES) -> dict[str, int]:
    """Receive up to `max_messages` Batch state-change events, apply them, delete what was handled.

    Long-polls JTB_BATCH_EVENTS_WAIT_SECONDS and stops at the first empty answer. Does nothing
    when JTB_BATCH_EVENTS_QUEUE_URL is empty.
    """
    counts = dict.fromkeys(("received", "changed", "applied", "not_ours", "malformed", "failed", "deleted"), 0)
    queue_url = settings.JTB_BATCH_EVENTS_QUEUE_URL
    if not queue_url:
        return counts
    while counts["received"] < max_messages:
        try:
            messages = sqs.sqs_messages_receive(
                queue_url=queue_url, max_messages=max_messages - counts["received"],
                wait_seconds=settings.JTB_BATCH_EVENTS_WAIT_SECONDS,
            )
        except sqs.SqsError as exc:
            logger.warning("%s", exc)
            break
        if not messages:
            break
        counts["received"] += len(messages)
        handled = []
        for message in messages:
            outcome = _apply(message)
            counts[outcome] += 1
            if outcome != "failed":
                handled.append(message["receipt_handle"])
        if handled:
            try:
                counts["deleted"] += sqs.sqs_messages_delete(queue_url=queue_url, receipt_handles=handled)
            except sqs.SqsError as exc:
                # They come back and are applied again, which changes nothing.
                logger.warning("%s", exc)
    return counts
