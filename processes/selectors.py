"""Reads about runs that are more than a one-line filter."""

from __future__ import annotations

from processes.executors import LogChunk, executor_get
from processes.models import Process

DEFAULT_LOG_LIMIT = 1_000_000


def process_log_read(*, process: Process, offset: int = 0, limit: int = DEFAULT_LOG_LIMIT) -> LogChunk:
    """The run's log from byte `offset` on (local file, or the executor's store such as CloudWatch)."""
    executor = executor_get(process.executor or None)
    offset = max(offset, 0)
    try:
        return executor.read_log(process, offset, limit)
    except (OSError, OverflowError):
        if offset == 0:
            raise
        # An offset past anything the file system can seek to: there is nothing there (yet).
        return LogChunk(text="", next_offset=offset)


def process_log_tail(*, process: Process, max_bytes: int = 20_000) -> str:
    """The last `max_bytes` of the log, for the admin page."""
    text = process_log_read(process=process, offset=0, limit=10_000_000).text
    return text[-max_bytes:] if len(text) > max_bytes else text


# Pages of the whole log: big enough to stream fast, small enough to keep the server's memory flat.
LOG_STREAM_CHUNK = 256 * 1024


def process_log_tail_chunk(*, process: Process, max_bytes: int = 20_000) -> LogChunk:
    """The last `max_bytes` of the log and the offset after it: the live page follows on from there."""
    chunk = process_log_read(process=process, offset=0, limit=10_000_000)
    text = chunk.text[-max_bytes:] if len(chunk.text) > max_bytes else chunk.text
    return LogChunk(text=text, next_offset=chunk.next_offset)


def process_log_stream(*, process: Process, chunk_bytes: int = LOG_STREAM_CHUNK):
    """The whole log as UTF-8 byte chunks, read page by page through the executor (file or CloudWatch)."""
    offset = 0
    while True:
        chunk = process_log_read(process=process, offset=offset, limit=chunk_bytes)
        if not chunk.text or chunk.next_offset <= offset:
            return
        yield chunk.text.encode("utf-8")
        offset = chunk.next_offset
