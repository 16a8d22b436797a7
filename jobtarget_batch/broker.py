"""The embedded broker: kombu's file-system transport, made safe for several producers and consumers.

kombu's stock `filesystem://` transport writes a message file in place and its consumers move and
read any `*.msg` file they see, so a consumer can read a file its producer is still writing: the
read fails with JSONDecodeError, the message is gone and the consuming worker dies. It also forgets
a message once it is read, so a worker killed with a task in hand loses that task.

This transport (URL scheme `jtb-filesystem://`) fixes both:

- A producer writes `.<uuid>.tmp` and renames it to its final `<time>_<uuid>.<queue>.msg` name with
  `os.replace`, which is atomic on one file system: a consumer sees a whole message or none.
- A consumer claims a message by renaming it into its own claim folder (`claimed/<pid>-<start>/`):
  rename is atomic, so exactly one consumer wins a message. The file stays there until the message is
  acknowledged (deleted) or rejected with requeue (renamed back). A consumer that finds the claim
  folder of a process that no longer exists renames its messages back to the queue, so a message held
  by a worker killed with `kill -9` is delivered again rather than lost (at-least-once: our tasks are
  safe to run twice).
- A file that still cannot be decoded is moved to `bad/` with an error logged; the consumer goes on.
- The exchange tables in the control folder (which queues an exchange routes to) are changed under a
  lock file of their own and replaced whole by rename. The stock transport opens the table with
  "wb" (truncating it) before it takes its lock, so a process declaring a queue while another one
  starts (web, worker and beat all declare at start) could read an empty table and die with
  JSONDecodeError, or two writers could drop each other's binding.

Broadcast (fanout) exchanges route through the same tables; `run_all` turns worker gossip off.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections import deque
from pathlib import Path
from queue import Empty

import psutil
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

logger = logging.getLogger(__name__)

SCHEME = "jtb-filesystem"
MESSAGE_SUFFIX = ".msg"
TEMP_SUFFIX = ".tmp"
ORPHAN_CHECK_SECONDS = 30.0


def transport_register() -> None:
    """Make `jtb-filesystem://` a broker URL kombu understands (in every process that imports Celery)."""
    TRANSPORT_ALIASES.setdefault(SCHEME, f"{__name__}:Transport")


def _process_token(pid: int) -> str | None:
    """`<pid>-<start time>` of a live process, so a reused pid is not taken for the old owner."""
    try:
        return f"{pid}-{int(psutil.Process(pid).create_time() * 1000)}"
    except psutil.NoSuchProcess:
        return None


_own_token: tuple[int, str] | None = None


def _own_process_token() -> str:
    # Cached per pid: a forked pool process gets its own folder, the parent keeps its own.
    global _own_token
    pid = os.getpid()
    if _own_token is None or _own_token[0] != pid:
        _own_token = (pid, _process_token(pid))
    return _own_token[1]


class Channel(filesystem.Channel):
    """A file-system channel with atomic writes and acknowledgements kept on disk."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # delivery tag -> claimed file, for messages handed out and not yet acknowledged.
        self._claimed: dict[str, Path] = {}
        self._no_ack_queues: set[str] = set()
        # Names listed on the last scan of the queue folder, tried before listing it again.
        self._candidates: dict[str, deque[str]] = {}
        self._next_orphan_check = 0.0

    # --- folders -------------------------------------------------------------------------------
    @property
    def queue_folder(self) -> Path:
        return Path(self.data_folder_in)

    @property
    def claim_root(self) -> Path:
        configured = self.transport_options.get("claimed_folder")
        return Path(configured) if configured else self.queue_folder.parent / "claimed"

    @property
    def claim_folder(self) -> Path:
        # Per process, not per channel: acknowledgements of one worker come from its channels alike.
        folder = self.claim_root / _own_process_token()
        if getattr(self, "_claim_folder_made", None) != folder:
            folder.mkdir(parents=True, exist_ok=True)
            self._claim_folder_made = folder
        return folder

    @property
    def bad_folder(self) -> Path:
        return self.queue_folder.parent / "bad"

    # --- produce -------------------------------------------------------------------------------
    def _put(self, queue, payload, **kwargs):
        """Write the message under a name no consumer picks up, then rename it into place."""
        token = uuid.uuid4().hex
        # Zero-padded wall-clock nanoseconds: names sort in the order messages were sent.
        final = Path(self.data_folder_out) / f"{time.time_ns():020d}_{token}.{queue}{MESSAGE_SUFFIX}"
        temp = final.with_name(f".{token}{TEMP_SUFFIX}")
        try:
            with open(temp, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(temp, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise filesystem.ChannelError(f"Cannot add message {final.name!r} to {final.parent}") from exc

    # --- exchange tables -----------------------------------------------------------------------
    def get_table(self, exchange):
        # No lock needed: a table is only ever replaced whole (see _table_change).
        return self._table_read(self._exchange_file(exchange))

    def _table_read(self, file: Path) -> list:
        try:
            raw = file.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot open {file}") from exc
        try:
            return [filesystem.exchange_queue_t(*row) for row in loads(bytes_to_str(raw))]
        except (ValueError, TypeError) as exc:
            # Left half-written by the stock transport (or a crash before this one): the bindings are
            # declared again by every process that starts, so an empty table heals itself.
            logger.warning("Broker exchange table %s cannot be read (%s); starting it afresh", file, exc)
            return []

    def _table_change(self, exchange, change) -> None:
        """Read, change and write back one exchange table, one process at a time."""
        file = self._exchange_file(exchange)
        self.control_folder.mkdir(parents=True, exist_ok=True)
        try:
            # A lock file beside the table, never replaced, so every process locks the same inode.
            with open(file.with_name(f"{file.name}.lock"), "ab") as guard:
                filesystem.lock(guard, filesystem.LOCK_EX)
                try:
                    queues = self._table_read(file)
                    changed = change(queues)
                    if changed is not None:
                        temp = file.with_name(f".{uuid.uuid4().hex}{TEMP_SUFFIX}")
                        temp.write_bytes(str_to_bytes(dumps(changed)))
                        os.replace(temp, file)
                finally:
                    filesystem.unlock(guard)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot change {file}") from exc

    def _queue_bind(self, exchange, routing_key, pattern, queue):
        binding = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        self._table_change(exchange, lambda queues: None if binding in queues else [binding, *queues])

    def _delete(self, queue, exchange, routing_key, pattern, *args, **kwargs):
        # The virtual channel's _delete (a purge); the file-system parent's table edit is replaced.
        filesystem.virtual.Channel._delete(self, queue, exchange, routing_key, pattern, *args, **kwargs)
        binding = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        self._table_change(exchange, lambda queues: [q for q in queues if q != binding] if binding in queues else None)

    # --- consume -------------------------------------------------------------------------------
    def _queue_names(self, queue: str) -> deque[str]:
        suffix = f".{queue}{MESSAGE_SUFFIX}"
        return deque(sorted(
            name for name in os.listdir(self.queue_folder)
            if name.endswith(suffix) and not name.startswith(".") and name.partition(".")[2] == suffix[1:]
        ))

    def _get(self, queue, timeout=None):
        if time.monotonic() >= self._next_orphan_check:
            # At the first look, and now and then: a worker that died while this one ran (and was
            # not restarted) leaves its messages to whoever consumes.
            self._next_orphan_check = time.monotonic() + ORPHAN_CHECK_SECONDS
            self.claims_recover()
        listed = False
        while True:
            candidates = self._candidates.get(queue)
            if not candidates:
                if listed:
                    break
                listed = True
                candidates = self._candidates[queue] = self._queue_names(queue)
            while candidates:
                name = candidates.popleft()
                claimed = self.claim_folder / name
                try:
                    os.rename(self.queue_folder / name, claimed)
                except FileNotFoundError:
                    continue  # another consumer won it
                payload = self._read_claimed(claimed)
                if payload is None:
                    continue
                if queue in self._no_ack_queues:
                    claimed.unlink(missing_ok=True)
                else:
                    self._claimed[payload["properties"]["delivery_tag"]] = claimed
                return payload
            # The cached listing is used up: list the folder (once per call) before answering Empty.
            self._candidates.pop(queue, None)
        raise Empty()

    def _read_claimed(self, claimed: Path) -> dict | None:
        raw = claimed.read_bytes()
        try:
            payload = loads(bytes_to_str(raw))
            payload["properties"]["delivery_tag"]  # noqa: B018  (a message without one cannot be acked)
            return payload
        except (ValueError, KeyError, TypeError) as exc:
            self.bad_folder.mkdir(parents=True, exist_ok=True)
            os.replace(claimed, self.bad_folder / claimed.name)
            logger.error("Broker message %s cannot be read (%s); kept in %s", claimed.name, exc, self.bad_folder)
            return None

    def basic_consume(self, queue, no_ack, *args, **kwargs):
        if no_ack:
            self._no_ack_queues.add(queue)
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    def basic_get(self, queue, no_ack=False, **kwargs):
        message = super().basic_get(queue, no_ack=no_ack, **kwargs)
        if message is not None and no_ack:
            self._claim_drop(message.delivery_tag)
        return message

    def basic_ack(self, delivery_tag, multiple=False):
        super().basic_ack(delivery_tag, multiple=multiple)
        self._claim_drop(delivery_tag)

    def basic_reject(self, delivery_tag, requeue=False):
        super().basic_reject(delivery_tag, requeue=requeue)
        # With requeue, _restore has renamed the file back; without, the message is done with.
        self._claim_drop(delivery_tag)

    def _restore(self, message):
        """Put an unacknowledged message back: the claimed file itself, so nothing is copied twice."""
        claimed = self._claimed.pop(message.delivery_tag, None)
        if claimed is None:
            return super()._restore(message)
        try:
            os.rename(claimed, self.queue_folder / claimed.name)
        except FileNotFoundError:
            return super()._restore(message)

    def _claim_drop(self, delivery_tag) -> None:
        claimed = self._claimed.pop(delivery_tag, None)
        if claimed is not None:
            claimed.unlink(missing_ok=True)

    def _purge(self, queue):
        self._candidates.pop(queue, None)
        return super()._purge(queue)

    def claims_recover(self) -> int:
        """Requeue messages claimed by consumers that no longer exist; returns how many."""
        restored = 0
        try:
            owners = list(os.scandir(self.claim_root))
        except FileNotFoundError:
            return 0
        for owner in owners:
            pid, _, _ = owner.name.partition("-")
            if not pid.isdigit() or _process_token(int(pid)) == owner.name:
                continue  # still alive (or not ours)
            for entry in os.scandir(owner.path):
                if not entry.name.endswith(MESSAGE_SUFFIX):
                    continue
                try:
                    os.rename(entry.path, self.queue_folder / entry.name)
                    restored += 1
                except FileNotFoundError:
                    pass  # another consumer restored it first
            with contextlib.suppress(OSError):
                os.rmdir(owner.path)
        if restored:
            logger.warning("Broker: %d message(s) held by a stopped worker are queued again", restored)
        return restored


class Transport(filesystem.Transport):
    Channel = Channel
    global_state = filesystem.virtual.BrokerState()
    driver_type = SCHEME
    driver_name = SCHEME


def message_count(folder: Path) -> int:
    """Messages waiting in a queue folder (for tests and the soak benchmark)."""
    return sum(1 for name in os.listdir(folder) if name.endswith(MESSAGE_SUFFIX) and not name.startswith("."))


