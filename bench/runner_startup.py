"""How long from a runner's start to the template's main(ctx), for a template needing
`requests` and `python-dateutil`.

    .venv/bin/python bench/runner_startup.py [--warm-runs 7]

(a) pip: what the old framework did on every run: `python -m venv`, `pip install` (empty cache), run.
(b) ours, cold: an empty environment root and an empty uv cache (a new host, nothing shared).
(c) ours, warm: the environment is on the host (every later run with the same modules).
(d) bare: `python -c "import requests, dateutil"` in an environment that already has them.

"Runner start" for (b) and (c) is the moment the local executor's worker takes the run
(`runner.executors.local.watch.local_run`, called here as the worker calls it): it claims the run, writes the
template and parameters, and starts the runner, which starts the template before loading Django.
main(ctx) writes time.time() to a file; all times are wall clock on this machine.
(e) container, warm: the AWS Batch container's command, `manage.py run_process <id>`, run from
its start (it claims the run with the database driver and starts the template before Django).

Uses its own PostgreSQL database (created and dropped), its own folders under a temporary
directory, and PyPI. (c), (d) and (e) take turns; `warm_vs_bare` and `container_vs_bare` are the
medians of each turn's ratio, so the machine's load moving between turns does not tilt them. The
last line is a JSON object with `warm_vs_bare` (goal <= 2), `pip_vs_warm` (goal >= 20) and
`container_vs_bare` (goal <= 2).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
PG = "postgres://postgres@127.0.0.1:5432"
MODULES = ["requests", "python-dateutil"]
TEMPLATE = """\
import time
import requests, dateutil.parser

def main(ctx):
    started = time.time()
    with open(ctx.params["stamp"], "w") as handle:
        handle.write(repr(started))
"""
# What the old framework's container did after `pip install`: import the template, call main.
OLD_FRAMEWORK_RUN = """\
import importlib.util, sys, types
spec = importlib.util.spec_from_file_location("template", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module.main(types.SimpleNamespace(params={"stamp": sys.argv[2]}))
"""


def psql(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def stamp_time(path: Path) -> float:
    return float(path.read_text())


def measure_pip(work: Path) -> float:
    venv = work / "pip-venv"
    stamp = work / "pip.stamp"
    runner = work / "old_run.py"
    runner.write_text(OLD_FRAMEWORK_RUN)
    # An empty pip cache: the old framework ran each job in a fresh container, as (b) starts with
    # an empty uv cache.
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_CACHE_DIR": str(work / "pip-cache")}
    env.pop("VIRTUAL_ENV", None)
    base_python = getattr(sys, "_base_executable", sys.executable)
    started = time.time()
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True, env=env)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", *MODULES], check=True, env=env,
                   stderr=subprocess.DEVNULL)
    subprocess.run([str(venv / "bin" / "python"), str(runner), str(work / "templates" / "startup.py"), str(stamp)],
                   check=True, env=env)
    return stamp_time(stamp) - started


def measure_ours(job, work: Path, label: str, *, batch_entry: bool = False) -> float:
    from processes.models import Process, ProcessStatus, Trigger
    from processes.services import process_start
    from runner.executors.local.watch import local_run

    # Templates create files only in folders that existed when they started (runner/sandbox.py).
    stamp = work / "stamps" / f"{label}.stamp"
    process = process_start(job=job, trigger=Trigger.MANUAL, parameters={"stamp": str(stamp)})
    started = time.time()
    if batch_entry:
        subprocess.run([sys.executable, str(REPO / "manage.py"), "run_process", str(process.pk)],
                       cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    else:
        local_run(process_id=process.pk)
    process = Process.objects.get(pk=process.pk)
    if process.status != ProcessStatus.SUCCEEDED:
        raise SystemExit(f"{label}: the run {process.status}: {process.failure_reason}")
    return stamp_time(stamp) - started


def measure_bare(python: Path) -> float:
    started = time.perf_counter()
    subprocess.run([str(python), "-c", "import requests, dateutil"], check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm-runs", type=int, default=7)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="jtb-startup-"))
    (work / "templates").mkdir()
    (work / "stamps").mkdir()
    (work / "templates" / "startup.py").write_text(TEMPLATE)
    database = f"jtb_bench_startup_{os.getpid()}"
    os.environ.update({
        "DATABASE_URL": f"{PG}/{database}",
        "DJANGO_SETTINGS_MODULE": "jobtarget_batch.settings",
        "SECRET_KEY": "bench-only-signing-key",  # production settings refuse to start without one
        "CELERY_BROKER_URL": "memory://localhost//",
        "JTB_TEMPLATE_ROOT": str(work / "templates"),
        "JTB_ENV_ROOT": str(work / "envs"),
        "JTB_WORK_DIR": str(work / "work"),
        "JTB_LOG_DIR": str(work / "logs"),
        "UV_CACHE_DIR": str(work / "uv-cache"),  # empty: (b) is truly cold
        "LOG_LEVEL": "WARNING",
    })
    psql(f'CREATE DATABASE "{database}"')
    try:
        import django

        django.setup()
        from django.core.management import call_command

        from jobs.models import Job
        from runner.environments import environment_ready

        call_command("migrate", verbosity=0)
        job = Job.objects.create(name="startup", template="startup.py", python_modules=MODULES, memory_mib=1024)

        print("(a) pip install every run ...", flush=True)
        pip = measure_pip(work)
        print(f"    {pip:.2f} s", flush=True)
        print("(b) ours, cold (empty environment root and uv cache) ...", flush=True)
        cold = measure_ours(job, work, "cold")
        print(f"    {cold:.2f} s", flush=True)
        # (c), (d) and (e) take turns, so a change in the machine's load falls on all three alike.
        python = environment_ready(MODULES).python
        warm_runs, bare_runs, container_runs = [], [], []
        for index in range(args.warm_runs):
            warm_runs.append(measure_ours(job, work, f"warm{index}"))
            bare_runs.append(measure_bare(python))
            container_runs.append(measure_ours(job, work, f"container{index}", batch_entry=True))
        warm = statistics.median(warm_runs)
        print(f"(c) ours, warm: median {warm:.3f} s of {len(warm_runs)} "
              f"({', '.join(f'{value:.3f}' for value in warm_runs)})", flush=True)
        bare = statistics.median(bare_runs)
        print(f"(d) bare import in the same environment: median {bare:.3f} s of {len(bare_runs)}", flush=True)
        container = statistics.median(container_runs)
        print(f"(e) container entry point (manage.py run_process), warm: median {container:.3f} s of "
              f"{len(container_runs)} ({', '.join(f'{value:.3f}' for value in container_runs)})", flush=True)
        result = {
            "pip_s": round(pip, 3), "cold_s": round(cold, 3), "warm_s": round(warm, 3), "bare_s": round(bare, 3),
            "container_warm_s": round(container, 3),
            # Ratios of each turn's pair, then the median: a load that comes and goes between
            # turns moves both sides of a pair together.
            "warm_vs_bare": round(statistics.median(w / b for w, b in zip(warm_runs, bare_runs, strict=True)), 2),
            "pip_vs_warm": round(pip / warm, 1),
            "container_vs_bare": round(
                statistics.median(c / b for c, b in zip(container_runs, bare_runs, strict=True)), 2
            ),
        }
        print(f"warm/bare = {result['warm_vs_bare']} (goal <= 2); pip/warm = {result['pip_vs_warm']} (goal >= 20); "
              f"container/bare = {result['container_vs_bare']} (goal <= 2)")
    finally:
        # The database goes even when Django never started (bad settings): nothing is left behind.
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        subprocess.run(["rm", "-rf", str(work)], check=False)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
