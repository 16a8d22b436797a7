"""Job code cannot reach the control plane's secrets (runner/isolation.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from processes.models import ProcessStatus
from runner.isolation import build_environment, template_environment
from tests.support import make_job, runner_run, start

SYSTEM_PYTHON = "/usr/bin/python3.11"
needs_root_and_system_python = pytest.mark.skipif(
    os.geteuid() != 0 or not Path(SYSTEM_PYTHON).exists() or shutil.which("setpriv") is None,
    reason="needs root, Debian's python3.11 and setpriv (this kind of machine and CI have them)",
)

HOSTILE = r"""
import glob, json, os, socket

def attempt(what, action):
    try:
        result = action()
        return {"what": what, "ok": True, "saw": str(result)[:200]}
    except Exception as exc:
        return {"what": what, "ok": False, "error": type(exc).__name__}

def secrets_in_proc():
    found = []
    for path in glob.glob("/proc/[0-9]*/environ"):
        try:
            text = open(path, "rb").read().decode(errors="replace")
        except OSError:
            continue
        if "JTB_TEST_SECRET=" in text:
            found.append(path)
    if not found:
        raise PermissionError("no other process's environment was readable")
    return found

def main(ctx):
    results = [
        attempt("parent environ", lambda: open(f"/proc/{os.getppid()}/environ", "rb").read()),
        attempt("any environ with the secret", secrets_in_proc),
        attempt("secret file", lambda: open(ctx.params["secret_file"]).read()),
        attempt("data dir listing", lambda: os.listdir(ctx.params["data_dir"])),
        attempt("own environment", lambda: "JTB_TEST_SECRET" in os.environ and os.environ["JTB_TEST_SECRET"]
                or (_ for _ in ()).throw(KeyError("not in the environment"))),
        attempt("write its work folder", lambda: open("scratch.txt", "w").write("ok")),
    ]
    print("RESULTS " + json.dumps(results))
"""


def test_the_module_build_sees_the_index_and_proxies_but_no_secrets(monkeypatch):
    for name, value in {"DATABASE_URL": "postgres://u:p@db/x", "SECRET_KEY": "s", "AWS_SECRET_ACCESS_KEY": "k",
                        "DJANGO_SUPERUSER_PASSWORD": "pw", "HTTPS_PROXY": "http://proxy:3128",
                        "UV_INDEX_URL": "https://index.example/simple"}.items():
        monkeypatch.setenv(name, value)
    env = build_environment()
    assert {"DATABASE_URL", "SECRET_KEY", "AWS_SECRET_ACCESS_KEY", "DJANGO_SUPERUSER_PASSWORD"}.isdisjoint(env)
    assert env["HTTPS_PROXY"] == "http://proxy:3128" and env["UV_INDEX_URL"] == "https://index.example/simple"
    assert "PATH" in env


def test_the_template_environment_is_an_allow_list_plus_the_jobs_own(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db/x")
    monkeypatch.setenv("SECRET_KEY", "s")
    env = template_environment({"REGION": "eu"})
    assert "DATABASE_URL" not in env and "SECRET_KEY" not in env
    assert env["REGION"] == "eu"


def test_a_process_marked_non_dumpable_says_so():
    code = ("import ctypes, sys; sys.path.insert(0, sys.argv[1]); from runner.isolation import "
            "process_make_non_dumpable as m; assert m(); print(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))")
    result = subprocess.run([sys.executable, "-c", code, str(Path(__file__).resolve().parents[2])],
                            capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "0", result.stderr


@needs_root_and_system_python
def test_the_kernel_hides_a_non_dumpable_process_from_its_own_user():
    """The mechanism the runner relies on where it is not root: same user, still unreadable."""
    target = ("import ctypes, os, sys, time; ctypes.CDLL(None).prctl(4, int(sys.argv[1]), 0, 0, 0); "
              "print(os.getpid(), flush=True); time.sleep(60)")
    reader = "import sys; open(f'/proc/{sys.argv[1]}/environ', 'rb').read(); print('read')"
    as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    outcomes = {}
    for dumpable in (1, 0):
        proc = subprocess.Popen([*as_nobody, SYSTEM_PYTHON, "-c", target, str(dumpable)], stdout=subprocess.PIPE,
                                text=True, env={"JTB_TEST_SECRET": "x", "PATH": "/usr/bin:/bin"})
        try:
            pid = proc.stdout.readline().strip()
            read = subprocess.run([*as_nobody, SYSTEM_PYTHON, "-c", reader, pid], capture_output=True, text=True,
                                  timeout=60)
            outcomes[dumpable] = read.stdout.strip() == "read"
        finally:
            proc.kill()
            proc.wait()
    assert outcomes == {1: True, 0: False}


@needs_root_and_system_python
@pytest.mark.django_db(transaction=True)
def test_a_hostile_template_run_by_a_root_runner_as_the_template_user_reaches_none_of_the_secrets(
    tmp_path, settings, subprocess_env
):
    shared = Path(tempfile.mkdtemp(prefix="jtb-isolation-"))
    try:
        shared.chmod(0o711)  # the template's user may pass through to its own work folder only
        data_dir = shared / "data"
        data_dir.mkdir(mode=0o700)
        secret_file = data_dir / "secret_key"
        secret_file.write_text("do-not-read")
        secret_file.chmod(0o600)
        root = tmp_path / "templates"
        root.mkdir()
        settings.JTB_TEMPLATE_ROOT = root
        env = {
            **subprocess_env, "JTB_TEMPLATE_ROOT": str(root), "JTB_TEMPLATE_USER": "nobody",
            "JTB_TEMPLATE_PYTHON": SYSTEM_PYTHON, "JTB_ENV_ROOT": str(shared / "envs"),
            "JTB_WORK_DIR": str(shared / "work"), "JTB_TEST_SECRET": "super-secret",
        }
        job = make_job(root=root, source=HOSTILE)
        process = start(job, {"secret_file": str(secret_file), "data_dir": str(data_dir)})
        output = runner_run(process, env, timeout=300)
        process.refresh_from_db()
        assert process.status == ProcessStatus.SUCCEEDED, output
        line = next(line for line in output.splitlines() if line.startswith("RESULTS "))
        results = {item["what"]: item for item in json.loads(line.removeprefix("RESULTS "))}
        for what in ("parent environ", "any environ with the secret", "secret file", "data dir listing",
                     "own environment"):
            assert not results[what]["ok"], (what, results[what])
        assert results["write its work folder"]["ok"]  # it can still do its job
    finally:
        shutil.rmtree(shared, ignore_errors=True)
