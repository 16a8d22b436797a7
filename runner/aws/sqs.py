"""SQS: the queue EventBridge delivers AWS Batch "Batch Job State Change" events to."""

from __future__ import annotations

from collections.abc import Sequence

from botocore.exceptions import BotoCoreError, ClientError

from runner.aws.client import aws_client

# SQS hands out (and deletes) at most 10 messages a call.
RECEIVE_BATCH = 10


class SqsError(Exception):
    """SQS did not answer as asked (network, permissions, a queue that does not exist)."""


def sqs_messages_receive(*, queue_url: str, max_messages: int, wait_seconds: int) -> list[dict]:
    """Up to `max_messages` (at most 10) messages, long-polling up to `wait_seconds` when none is there.

    Each is {"id", "receipt_handle", "body"}; a received message stays hidden for the queue's
    visibility timeout and comes back unless it is deleted.
    """
    try:
        answer = aws_client("sqs").receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=max(1, min(RECEIVE_BATCH, max_messages)),
            WaitTimeSeconds=max(0, min(20, wait_seconds)),
        )
    except (ClientError, BotoCoreError) as exc:
        raise SqsError(f"receiving from {queue_url} failed: {exc}") from exc
    return [
        {"id": message["MessageId"], "receipt_handle": message["ReceiptHandle"], "body": message.get("Body", "")}
        for message in answer.get("Messages", [])
    ]


def sqs_messages_delete(*, queue_url: str, receipt_handles: Sequence[str]) -> int:
    """Delete messages (10 a call); the number SQS confirmed. One not deleted simply comes back."""
    deleted = 0
    handles = list(receipt_handles)
    for start in range(0, len(handles), RECEIVE_BATCH):
        entries = [{"Id": str(n), "ReceiptHandle": handle} for n, handle in enumerate(handles[start : start + RECEIVE_BATCH])]
        try:
            answer = aws_client("sqs").delete_message_batch(QueueUrl=queue_url, Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            raise SqsError(f"deleting from {queue_url} failed: {exc}") from exc
        deleted += len(answer.get("Successful", []))
    return deleted
