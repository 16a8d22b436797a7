"""Soak of the embedded default (`make run`'s setup): SQLite, the embedded broker, the local executor,
all started with `manage.py run_all` in a temporary data folder and driven through the REST API.

    .venv/bin/python bench/soak_local.py [--runs 2000] [--slots 4] [--seed 1]

Submits `--runs` runs of short templates (a two-step greeting, an ETL that fails, a 1 s report),
one at a time and in bulk, cancels some at random, reruns some failed ones, and kills the local
worker with SIGKILL once midway (the supervisor restarts it). Then it waits for every run to end.

- `stuck`: runs not terminal `--stuck-after` seconds (120) after the last submit;
- `lost`: runs still not terminal `--lost-after` seconds later (never terminal);
- `duplicated`: runs started by more than one runner (the runners' own lines in the run logs);
- `runs_per_min`: runs finished per minute, first submit to last end. The baseline measured in the
  same run: bare interpreter starts per minute with as many in parallel as slots (`python -c pass`),
  the ceiling for a design that starts a process per run.

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.embedded import FINISHED, EmbeddedSystem, database_prepare  # noqa: E402


def interpreter_starts_per_min(parallel: int, count: int) -> float:
    started = time.monotonic()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(lambda _: subprocess.run([sys.executable, "-c", "pass"], check=True), range(count)))
    return round(count / (time.monotonic() - started) * 60, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--bulk-max", type=int, default=20, help="largest bulk request")
    parser.add_argument("--cancel-share", type=float, default=0.05)
    parser.add_argument("--rerun-share", type=float, default=0.03)
    parser.add_argument("--stuck-after", type=float, default=120)
    parser.add_argument("--lost-after", type=float, default=300)
    parser.add_argument("--max-active", type=int, default=0,
                        help="runs not yet finished before submitting pauses (default: 4 per slot), so the "
                        "backlog at the last submit can clear well within --stuck-after")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the data folder (its path is printed)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    max_active = args.max_active or 4 * args.slots

    baseline = interpreter_starts_per_min(args.slots, 40)
    folder = Path(tempfile.mkdtemp(prefix="jtb-soak-"))
    data_dir = folder / "var"
    database_prepare(data_dir)
    system = EmbeddedSystem(data_dir, JTB_LOCAL_SLOTS=str(args.slots))
    result: dict = {"runs_requested": args.runs, "slots": args.slots, "max_active": max_active,
                    "data_dir": str(data_dir)}
    try:
        system.start()
        result["seconds_to_answer"] = round(system.wait_answering(timeout=300), 1)
        system.login()
        jobs = [
            system.job_create("soak greeting", "examples/hello.py", timeout_seconds=120),
            system.job_create("soak failing ETL", "examples/etl_fails.py", timeout_seconds=120),
            system.job_create("soak 1 s report", "examples/slow_report.py", parameters={"seconds": 1},
                              timeout_seconds=120),
        ]
        ids: list[int] = []
        api_errors: Counter[str] = Counter()
        cancels = reruns = 0
        killed = False
        first_submit = time.monotonic()
        while len(ids) < args.runs:
            if rng.random() < 0.5:
                status, answer = system.api("POST", f"jobs/{rng.choice(jobs)}/run/", {"parameters": {}})
                new = [answer["id"]] if status == 202 else []
            else:
                size = min(rng.randint(2, args.bulk_max), args.runs - len(ids))
                status, answer = system.api("POST", "runs/", {
                    "runs": [{"job": rng.choice(jobs), "parameters": {}} for _ in range(size)]})
                new = [run["id"] for run in answer] if status == 202 else []
            if status != 202:
                api_errors[f"run {status}"] += 1
            ids += new
            if ids and rng.random() < args.cancel_share * 4:
                status, _ = system.api("POST", f"processes/{rng.choice(ids[-40:])}/cancel/")
                cancels += status == 202
                if status not in (202, 409):
                    api_errors[f"cancel {status}"] += 1
            if rng.random() < args.rerun_share * 4:
                failed = [pk for pk, (status, _) in system.statuses(ids[-200:]).items() if status == "failed"]
                if failed:
                    status, answer = system.api("POST", f"processes/{rng.choice(failed)}/rerun/")
                    if status == 202:
                        reruns += 1
                        ids.append(answer["id"])
                    elif status != 409:
                        api_errors[f"rerun {status}"] += 1
            if not killed and len(ids) >= args.runs // 2:
                victim = system.children()["local-worker"]
                os.kill(victim, signal.SIGKILL)
                killed = True
                result["local_worker_killed_after_runs"] = len(ids)
            # Keep the queue from running away from the slots: the soak is of steady use, not a flood.
            while sum(1 for status, _ in system.statuses(ids[-300:]).values() if status not in FINISHED) > max_active:
                time.sleep(0.5)
        last_submit = time.monotonic()
        outcomes = system.wait_all_finished(ids, timeout=args.stuck_after)
        stuck = [pk for pk in ids if outcomes.get(pk, ("",))[0] not in FINISHED]
        if stuck:
            outcomes = system.wait_all_finished(ids, timeout=args.lost_after)
        ended = time.monotonic()
        lost = [pk for pk in ids if outcomes.get(pk, ("",))[0] not in FINISHED]
        starts = system.runner_starts()
        done = sum(1 for pk in ids if outcomes.get(pk, ("",))[0] in FINISHED)
        result.update({
            "runs": len(ids),
            "statuses": dict(Counter(outcomes[pk][0] for pk in ids if pk in outcomes)),
            "cancels_accepted": cancels,
            "reruns": reruns,
            "api_errors": dict(api_errors),
            "stuck_ids": stuck[:20],
            "lost_ids": lost[:20],
            "lost_detail": {pk: outcomes.get(pk) for pk in lost[:5]},
            "submit_seconds": round(last_submit - first_submit, 1),
            "seconds_first_submit_to_last_end": round(ended - first_submit, 1),
            "baseline_interpreter_starts_per_min": baseline,
            "lost": len(lost),
            "duplicated": sum(1 for count in starts.values() if count > 1),
            "stuck": len(stuck),
            "runs_per_min": round(done / (ended - first_submit) * 60, 1),
        })
    finally:
        if system.process is not None and system.process.poll() is None:
            result["stop_exit_code"] = system.stop(signal.SIGINT, timeout=120)
        system.kill_leftovers()
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
