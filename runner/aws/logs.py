"""CloudWatch Logs: the log of a run on AWS Batch, one log stream per attempt.

Offsets are byte offsets into one text: for each stream, oldest first, a header line
`[batch] attempt N: log stream <name>` followed by every event's message and a newline, UTF-8
encoded (a stream without events adds nothing). New events and new attempts only ever append to that text, so an offset from an earlier
read stays valid (the same contract as the local executor's log file). CloudWatch has no byte
seek: each read pages through the streams from their start, which is fine for logs of a few MB.
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from runner.aws.client import aws_client

# GetLogEvents returns at most 10,000 events (1 MB) a page.
PAGE_LIMIT = 10_000


class LogReadError(Exception):
    """CloudWatch could not be read; the message is shown in place of the log."""


def stream_messages(group: str, stream: str):
    """Every message of a stream, oldest first; nothing when the stream does not exist (yet)."""
    client = aws_client("logs")
    params = {"logGroupName": group, "logStreamName": stream, "startFromHead": True, "limit": PAGE_LIMIT}
    while True:
        try:
            answer = client.get_log_events(**params)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return
            raise LogReadError(f"CloudWatch Logs {group}/{stream} could not be read: {exc}") from None
        except BotoCoreError as exc:
            raise LogReadError(f"CloudWatch Logs could not be reached: {exc}") from None
        for event in answer.get("events", []):
            yield event.get("message", "")
        token = answer.get("nextForwardToken")
        # The forward token repeats once the end of the stream is reached.
        if not answer.get("events") or not token or token == params.get("nextToken"):
            return
        params["nextToken"] = token


def cloudwatch_log_read(*, group: str, streams: list[str], offset: int, limit: int) -> tuple[str, int]:
    """The text from byte `offset`, at most `limit` bytes; returns (text, next offset)."""
    offset = max(offset, 0)
    position = 0
    out = bytearray()
    for number, stream in enumerate(streams, start=1):
        for line in _with_header(f"[batch] attempt {number}: log stream {stream}", stream_messages(group, stream)):
            data = (line + "\n").encode("utf-8")
            end = position + len(data)
            if end > offset:
                out += data[max(offset - position, 0):]
                if len(out) >= limit:
                    del out[limit:]
                    return out.decode("utf-8", errors="replace"), offset + len(out)
            position = end
    return out.decode("utf-8", errors="replace"), offset + len(out)


def _with_header(header: str, messages):
    # A stream gets its header with its first event, so an empty stream (a job not started yet)
    # adds nothing and the text stays append-only.
    first = True
    for message in messages:
        if first:
            yield header
            first = False
        yield message


def cloudwatch_log_streams_delete(*, group: str, streams: list[str]) -> int:
    """Delete these log streams (a purged run's attempts); one already gone counts as deleted."""
    client = aws_client("logs")
    deleted = 0
    for stream in streams:
        try:
            client.delete_log_stream(logGroupName=group, logStreamName=stream)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
        deleted += 1
    return deleted
