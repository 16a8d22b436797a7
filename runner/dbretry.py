"""The runner's database discipline: one connection at most, held only while writing, and every
write retried through an outage.

Hundreds of runners wait on their templates at once; if each kept a connection open they would
exhaust the server's `max_connections`. So every read or write of the runner goes through
`db_retry`: one lock per runner process (the heartbeat thread and the main thread never hold a
connection at the same time), the connection closed as soon as the write is done, and retries
with backoff on connection errors. Each write is one short transaction that is safe to repeat
(conditional claims, get_or_create on a unique step), so a retry after a lost reply is correct.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)
T = TypeVar("T")

# About 100 s of retrying in all: a database restart or failover fits in it, and so does a
# queue for connections when many runners write at once (jitter spreads them out).
DELAYS = (0.2, 0.5, 1, 2, 3, 5, 5, 8, 10, 10, 15, 15, 15, 15)
_lock = threading.Lock()


# A full server ("too many connections") frees a slot within milliseconds when every client
# writes briefly: retry soon, for this long, instead of backing off like for an outage. Each
# refused attempt still costs the server a backend fork, so the pause grows (capped, full jitter).
BUSY_FIRST_PAUSE = 0.02
BUSY_MAX_PAUSE = 2.0
BUSY_LIMIT_SECONDS = 300
BUSY_MARKERS = ("too many connections", "remaining connection slots", "too many clients")


def db_retry(write: Callable[[], T], *, retries: bool = True) -> T:
    delays = iter((*DELAYS, None) if retries else (None,))
    busy_since = None
    busy_tries = 0
    with _lock:
        try:
            while True:
                try:
                    return write()
                except (OperationalError, InterfaceError) as exc:
                    _close()
                    if retries and any(marker in str(exc).lower() for marker in BUSY_MARKERS):
                        busy_since = busy_since or time.monotonic()
                        if time.monotonic() - busy_since < BUSY_LIMIT_SECONDS:
                            busy_tries += 1
                            time.sleep(random.uniform(0, min(BUSY_MAX_PAUSE, BUSY_FIRST_PAUSE * 2 ** busy_tries)))
                            continue
                    delay = next(delays)
                    if delay is None:
                        raise
                    pause = delay * random.uniform(0.75, 1.25)
                    logger.warning("database unavailable (%s); retrying in %.1f s", str(exc).strip(), pause)
                    time.sleep(pause)
        finally:
            _close()


def _close() -> None:
    # Closing a connection to a server that went away may fail too.
    with contextlib.suppress(Exception):
        connection.close()
