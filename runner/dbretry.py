"""Retrying the runner's status writes through a database outage.

A run must not lose its status because the database restarted under it. Each write is one
short transaction that is safe to repeat (claims, get_or_create on a unique step), so retrying
it with backoff after a connection error is correct.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)
T = TypeVar("T")

# About 90 s of retrying in all: a database restart or failover fits in it.
DELAYS = (0.2, 0.5, 1, 2, 3, 5, 5, 8, 10, 10, 15, 15, 15)


def db_retry(write: Callable[[], T]) -> T:
    for attempt, delay in enumerate((*DELAYS, None)):
        try:
            return write()
        except (OperationalError, InterfaceError) as exc:
            if delay is None:
                raise
            logger.warning("database unavailable (%s); retrying in %s s", exc, delay)
            try:
                connection.close()
            except Exception:
                pass
            time.sleep(delay)
    raise AssertionError("unreachable")
