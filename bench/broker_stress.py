"""Stress loop for the embedded broker: producers and consumers racing on one queue folder.

Runs P producer processes and C consumer processes on a fresh folder, each producer sending its
share of N messages, each consumer acknowledging what it reads. Counts bad reads (a message file
that could not be read whole), lost messages (sent, never read) and doubled ones (read twice).

    python bench/broker_stress.py --messages 20000 --transport jtb-filesystem
    python bench/broker_stress.py --messages 6000 --transport filesystem   # kombu's stock transport

The last line is one JSON object. Default: our transport, then the stock one on the same loop as
the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QUEUE = "stress"


def connection(transport: str, folder: Path):
    from kombu import Connection

    sys.path.insert(0, str(REPO))
    from jobtarget_batch.broker import transport_register

    transport_register()
    queue = folder / "queue"
    options = {
        "data_folder_in": str(queue), "data_folder_out": str(queue),
        "processed_folder": str(folder / "processed"), "control_folder": str(folder / "control"),
        "store_processed": False,
    }
    return Connection(f"{transport}://localhost//", transport_options=options)


def produce(transport: str, folder: Path, index: int, count: int) -> None:
    with connection(transport, folder) as conn:
        queue = conn.SimpleQueue(QUEUE)
        for seq in range(count):
            queue.put({"id": f"{index}-{seq}", "pad": "x" * 2000})
        queue.close()


def consume(transport: str, folder: Path, index: int) -> None:
    from queue import Empty

    received, bad = [], []
    done = folder / "done"
    with connection(transport, folder) as conn:
        queue = conn.SimpleQueue(QUEUE)
        idle_since = None
        while True:
            try:
                message = queue.get(block=False)
            except Empty:
                if not done.exists():
                    time.sleep(0.005)
                    continue
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > 1.5:
                    break
                time.sleep(0.05)
                continue
            except Exception as exc:  # a half-written file: the stock transport loses the message
                bad.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            idle_since = None
            received.append(message.payload["id"])
            message.ack()
        queue.close()
    (folder / f"consumer-{index}.json").write_text(json.dumps({"received": received, "bad": bad}))


def run(transport: str, messages: int, producers: int, consumers: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix=f"broker-stress-{transport}-"))
    (folder / "queue").mkdir()
    me = [sys.executable, __file__, "--transport", transport, "--folder", str(folder)]
    started = time.monotonic()

    def start(role: str, index: int, *extra: str) -> subprocess.Popen:
        # Each child's stderr goes to a file, so a crash is reported with its last lines.
        with open(folder / f"{role}-{index}.err", "wb") as err:
            return subprocess.Popen([*me, "--role", role, "--index", str(index), *extra], stderr=err)

    readers = [start("consumer", i) for i in range(consumers)]
    share = messages // producers
    writers = [start("producer", i, "--count", str(share)) for i in range(producers)]
    crashes: list[str] = []

    def crashed(children: list[subprocess.Popen], role: str) -> int:
        failed = 0
        for index, child in enumerate(children):
            if child.wait() != 0:
                failed += 1
                crashes.append(f"{role} {index}: " + (folder / f"{role}-{index}.err").read_text()[-1500:])
        return failed

    crashed_producers = crashed(writers, "producer")
    (folder / "done").touch()
    crashed_consumers = crashed(readers, "consumer")
    elapsed = time.monotonic() - started
    counts: Counter[str] = Counter()
    bad: list[str] = []
    for index in range(consumers):
        path = folder / f"consumer-{index}.json"
        if path.exists():
            result = json.loads(path.read_text())
            counts.update(result["received"])
            bad.extend(result["bad"])
    shutil.rmtree(folder, ignore_errors=True)
    sent = share * producers
    expected = {f"{p}-{s}" for p in range(producers) for s in range(share)}
    return {
        "transport": transport, "sent": sent, "received": sum(counts.values()),
        "bad_reads": len(bad), "lost": len(expected - set(counts)),
        "duplicated": sum(1 for n in counts.values() if n > 1), "crashed_consumers": crashed_consumers,
        "crashed_producers": crashed_producers,
        "messages_per_s": round(sent / elapsed, 1), "first_bad_read": bad[0] if bad else None,
        "first_crash": crashes[0] if crashes else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--baseline-messages", type=int, default=6_000,
                        help="messages for the stock transport's run (0: skip it)")
    parser.add_argument("--producers", type=int, default=4)
    parser.add_argument("--consumers", type=int, default=2)
    parser.add_argument("--transport", default=None, help="run only this transport")
    parser.add_argument("--role", choices=["producer", "consumer"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "producer":
        return produce(args.transport, args.folder, args.index, args.count)
    if args.role == "consumer":
        return consume(args.transport, args.folder, args.index)
    if args.transport:
        print(json.dumps(run(args.transport, args.messages, args.producers, args.consumers)))
        return
    ours = run("jtb-filesystem", args.messages, args.producers, args.consumers)
    result = {"jtb_filesystem": ours}
    if args.baseline_messages:
        result["stock_filesystem"] = run("filesystem", args.baseline_messages, args.producers, args.consumers)
    print(json.dumps(result))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
