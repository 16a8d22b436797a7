"""The child interpreter's entry point: import the template and call its main(ctx).

This file runs inside the job's own environment, so it uses the standard library only: no
Django, nothing from this code base. It tells the runner what happens as JSON lines on the file
descriptor named by JTB_EVENTS_FD; the runner records Tasks and the outcome in the database.

Usage: python child.py TEMPLATE_FILE
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import sys
import time
import traceback

EXIT_TEMPLATE_ERROR = 1


class Events:
    def __init__(self, fd: int) -> None:
        self._stream = os.fdopen(fd, "w", buffering=1, encoding="utf-8")

    def send(self, event: str, **fields) -> None:
        self._stream.write(json.dumps({"event": event, "at": time.time(), **fields}) + "\n")
        self._stream.flush()


class Context:
    """What main(ctx) receives: parameters, identity, a logger and `task(name)`."""

    def __init__(self, *, events: Events, params: dict, process_id: int, job: str) -> None:
        self.params = params
        self.process_id = process_id
        self.job = job
        self.log = _make_logger(job)
        self._events = events
        self._sequence = 0
        self.failed_task: str | None = None

    @contextlib.contextmanager
    def task(self, name: str):
        """Record a step: running, then succeeded, or failed with the error (which is re-raised)."""
        self._sequence += 1
        sequence = self._sequence
        name = str(name)
        self._events.send("task_start", sequence=sequence, name=name)
        self.log.info("task %s started", name)
        try:
            yield
        except SystemExit as exc:
            if exc.code in (None, 0):
                self._events.send("task_end", sequence=sequence, status="succeeded")
                raise
            self._fail(sequence, name, f"The template exited with code {exc.code}", "")
            raise
        except BaseException as exc:
            self._fail(sequence, name, _describe(exc), traceback.format_exc())
            raise
        self._events.send("task_end", sequence=sequence, status="succeeded")
        self.log.info("task %s succeeded", name)

    def _fail(self, sequence: int, name: str, error: str, trace: str) -> None:
        if self.failed_task is None:
            self.failed_task = name
        self._events.send("task_end", sequence=sequence, status="failed", error=error, traceback=trace)
        self.log.error("task %s failed: %s", name, error)


def _make_logger(job: str) -> logging.Logger:
    logger = logging.getLogger(f"job.{job}")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def _describe(exc: BaseException) -> str:
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def main() -> int:
    events = Events(int(os.environ["JTB_EVENTS_FD"]))
    template_path = sys.argv[1]
    with open(os.environ["JTB_PARAMS_FILE"], encoding="utf-8") as handle:
        params = json.load(handle)
    ctx = Context(
        events=events, params=params, process_id=int(os.environ["JTB_PROCESS_ID"]), job=os.environ["JTB_JOB_NAME"]
    )

    try:
        spec = importlib.util.spec_from_file_location("jtb_template", template_path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["jtb_template"] = module
        spec.loader.exec_module(module)
    except MemoryError:
        events.send("error", kind="memory", message="The template ran out of memory while being imported.")
        return EXIT_TEMPLATE_ERROR
    except BaseException as exc:
        events.send("error", kind="import", message=_describe(exc), traceback=traceback.format_exc())
        traceback.print_exc()
        return EXIT_TEMPLATE_ERROR

    entry = getattr(module, "main", None)
    if not callable(entry):
        events.send("error", kind="no_main", message="The template has no main(ctx) function.")
        return EXIT_TEMPLATE_ERROR

    # Tells the runner the template is in main(ctx): it loads Django only now, so the two do
    # not compete for the CPU while the template starts.
    events.send("main")
    try:
        entry(ctx)
    except SystemExit as exc:
        code = exc.code
        if code in (None, 0):
            return 0
        if not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
        events.send("error", kind="exit", code=code, task=ctx.failed_task, message=f"The template exited with code {code}.")
        return code
    except MemoryError:
        traceback.print_exc()
        events.send("error", kind="memory", task=ctx.failed_task, message="The template ran out of memory.")
        return EXIT_TEMPLATE_ERROR
    except BaseException as exc:
        traceback.print_exc()
        events.send(
            "error", kind="task" if ctx.failed_task else "raised", task=ctx.failed_task,
            message=_describe(exc), traceback=traceback.format_exc(),
        )
        return EXIT_TEMPLATE_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
