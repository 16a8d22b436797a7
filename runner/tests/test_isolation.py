"""Job code cannot reach the control plane's secrets (runner/isolation.py)."""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

from conftest import require_service
from processes.models import ProcessStatus
from runner.isolation import build_environment, template_environment
from runner.sandbox import landlock_abi
from tests.hostile import HOSTILE_TEMPLATE, assert_nothing_reached, hostile_results
from tests.support import REPO, make_job, runner_run, start

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


def test_a_root_runner_uses_jtb_job_where_it_exists_unless_told_otherwise(monkeypatch):
    from runner import isolation

    entries = {"jtb-job": pwd.struct_passwd(("jtb-job", "x", 10002, 10002, "", "/", "/usr/sbin/nologin"))}
    real_getpwnam = pwd.getpwnam

    def getpwnam(name):
        if name in entries:
            return entries[name]
        return real_getpwnam(name)

    monkeypatch.setattr(isolation.pwd, "getpwnam", getpwnam)
    monkeypatch.setattr(isolation.os, "geteuid", lambda: 0)
    monkeypatch.delenv("JTB_TEMPLATE_USER", raising=False)
    assert isolation.template_user() == isolation.TemplateUser("jtb-job", 10002, 10002)
    monkeypatch.setenv("JTB_TEMPLATE_USER", "")  # set but empty: none, on purpose (W010 says so)
    assert isolation.template_user() is None
    monkeypatch.setenv("JTB_TEMPLATE_USER", "nobody")
    assert isolation.template_user().name == "nobody"
    monkeypatch.delenv("JTB_TEMPLATE_USER")
    del entries["jtb-job"]
    assert isolation.template_user() is None
    monkeypatch.setattr(isolation.os, "geteuid", lambda: 1000)
    monkeypatch.setenv("JTB_TEMPLATE_USER", "nobody")
    assert isolation.template_user() is None  # only root can switch users


def test_a_root_process_without_a_template_user_is_warned_about_by_the_system_check(monkeypatch):
    from runner import checks, isolation

    monkeypatch.setattr(checks.os, "geteuid", lambda: 0)
    monkeypatch.setenv("JTB_TEMPLATE_USER", "")
    assert "jobtarget_batch.W010" in [problem.id for problem in checks.check_runner_settings(None)]
    monkeypatch.delenv("JTB_TEMPLATE_USER")
    monkeypatch.setattr(isolation, "DEFAULT_TEMPLATE_USER", "nobody")  # as if the host had jtb-job
    assert "jobtarget_batch.W010" not in [problem.id for problem in checks.check_runner_settings(None)]


def test_the_sandbox_denies_the_control_planes_paths_read_from_the_runners_environment(monkeypatch, tmp_path):
    from runner.isolation import BASE_DIR, control_plane_paths

    url_file = tmp_path / "database_url"
    url_file.write_text("sqlite:////srv/jtb/db.sqlite3\n")
    for name in list(os.environ):
        if name.startswith(("JTB_", "DATABASE_")) or name.endswith("_FILE"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("JTB_WORK_DIR", "/srv/work")
    monkeypatch.setenv("SECRET_KEY_FILE", "/run/secrets/key")
    monkeypatch.setenv("DATABASE_URL_FILE", str(url_file))
    monkeypatch.setenv("HOME", "/home/jtb")
    paths = control_plane_paths()
    for path in (BASE_DIR / "var", BASE_DIR / "templates", Path("/srv/work"), Path("/run/secrets/key"), url_file,
                 Path("/srv/jtb/db.sqlite3"), Path("/srv/jtb/db.sqlite3-wal"), Path("/home/jtb")):
        assert path in paths, path
    monkeypatch.setenv("HOME", "/")  # a home of / would deny everything: it is left out
    assert Path("/") not in control_plane_paths()


def test_a_denied_path_is_left_out_by_granting_what_lies_beside_it(tmp_path):
    from runner.sandbox import READ, grants_except

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "secret").write_text("x")
    (tmp_path / "app").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "data")
    rules = dict(grants_except(tmp_path, READ, [tmp_path / "data"]))
    assert set(rules) == {tmp_path / "app", tmp_path / "notes.txt"}  # never the link, never data
    assert grants_except(tmp_path, READ, [tmp_path]) == []
    assert grants_except(tmp_path / "app", READ, [tmp_path / "data"]) == [(tmp_path / "app", READ)]


def test_the_runner_drops_its_credentials_from_its_environment_but_still_knows_its_sqlite_file(monkeypatch):
    from runner import isolation

    monkeypatch.setattr(isolation, "_scrubbed", {})
    monkeypatch.setenv("DATABASE_URL", "sqlite:////srv/jtb/db.sqlite3")
    monkeypatch.setenv("SECRET_KEY", "k")
    isolation.runner_secrets_scrub()
    assert "DATABASE_URL" not in os.environ and "SECRET_KEY" not in os.environ
    assert Path("/srv/jtb/db.sqlite3") in isolation.control_plane_paths()


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


# --- the local executor's worker and runner as a deployment would run them -----------------------
# The worker below is `runner.tasks.run_local_process`'s body (local_run) in a process of its own,
# started as the deployment's user with the deployment's environment: its credentials only in
# files of its data folder (SECRET_KEY_FILE, DATABASE_URL_FILE), plus a canary variable.
WORKER = r"""
import json, sys
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from runner.executors.local.executor import local_log_path
from runner.executors.local.watch import local_run
from tests.support import make_job, start
process = start(make_job(source=sys.argv[1]), json.loads(sys.argv[2]))
local_run(process_id=process.pk)
process.refresh_from_db()
print("STATUS " + process.status + " " + process.failure_reason)
print("LOG " + str(local_log_path(process.pk)))
"""
needs_landlock = pytest.mark.skipif(landlock_abi() < 1, reason="needs a kernel with Landlock (5.13+)")


def postgres_database(name: str):
    """A fresh PostgreSQL database for a deployment the test starts; its URL, and how to drop it."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"postgres://postgres:runner-password@127.0.0.1:5432/{name}", drop


@needs_root_and_system_python
@needs_landlock
@pytest.mark.parametrize(("runner_user", "template_user", "database"), [
    ("nobody", "", "sqlite"), ("nobody", "", "postgresql"), ("root", "nobody", "sqlite"), ("root", "", "sqlite"),
], ids=["non-root-sqlite", "non-root-postgresql", "root-with-template-user-sqlite", "root-alone-sqlite"])
def test_a_hostile_template_run_by_the_local_executor_reaches_none_of_the_secrets(runner_user, template_user, database):
    """As a non-root user, worker, runner and template share one uid: what stops the template is the
    runner being non-dumpable, the allow-listed environment and the Landlock sandbox. As root, the
    template also runs as another user (JTB_TEMPLATE_USER), or, without one, as root without any
    capability (uid 0 still owns the data folder: the sandbox is what denies it)."""
    account = pwd.getpwnam(runner_user)
    base = Path(tempfile.mkdtemp(prefix="sec-isolation-"))
    drop_database = None
    try:
        base.chmod(0o711)
        data, templates, uv_cache = base / "data", base / "templates", base / "uv-cache"
        for folder in (data, templates, uv_cache):
            folder.mkdir(mode=0o700)
        canary = "canary-" + secrets.token_hex(8)
        (data / "secret_key").write_text(secrets.token_urlsafe(50))
        if database == "postgresql":
            url, drop_database = postgres_database(f"sec_isolation_{os.getpid()}")
        else:
            url = f"sqlite:///{data / 'db.sqlite3'}"
        (data / "database_url").write_text(url)
        env = {
            # uv from the test's environment; the interpreter is the system's, which any user may run.
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": account.pw_dir,
            "PYTHONPATH": f"{sysconfig.get_paths()['purelib']}:{REPO}",
            "DJANGO_SETTINGS_MODULE": "jobtarget_batch.settings", "JTB_DATA_DIR": str(data),
            "SECRET_KEY_FILE": str(data / "secret_key"), "DATABASE_URL_FILE": str(data / "database_url"),
            "JTB_TEMPLATE_ROOT": str(templates), "CELERY_BROKER_URL": "memory://localhost//",
            "UV_CACHE_DIR": str(uv_cache), "JTB_TEST_CANARY": canary,
        }
        command = [SYSTEM_PYTHON, "-c", WORKER, HOSTILE_TEMPLATE]
        if runner_user == "root":
            # The template's user must reach its work folder and environment, not the data folder.
            env.update(JTB_TEMPLATE_USER=template_user, JTB_WORK_DIR=str(base / "work"), JTB_ENV_ROOT=str(base / "envs"))
        else:
            for path in (base, data, templates, uv_cache, *data.iterdir()):
                os.chown(path, account.pw_uid, account.pw_gid)
            base.chmod(0o711)
            command = ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--clear-groups", *command]
        for path in data.iterdir():
            path.chmod(0o600)
        work_root = Path(env.get("JTB_WORK_DIR") or data / "work")
        parameters = {
            "data_dir": str(data), "log_dir": str(data / "logs"), "work_root": str(work_root),
            "secret_file": str(data / "secret_key"), "url_file": str(data / "database_url"),
            **({"sqlite_file": str(data / "db.sqlite3")} if database == "sqlite" else {}),
        }
        worker = subprocess.run([*command, json.dumps(parameters)], env=env, cwd=base, capture_output=True,
                                text=True, timeout=600)
        assert worker.returncode == 0, worker.stdout + worker.stderr
        status = next(line for line in worker.stdout.splitlines() if line.startswith("STATUS "))
        log = Path(next(line for line in worker.stdout.splitlines() if line.startswith("LOG ")).removeprefix("LOG "))
        output = log.read_text()
        assert status.split()[1] == "succeeded", status + "\n" + output
        results = hostile_results(output)
        assert_nothing_reached(
            results, expected=("data dir listing", "log dir listing", "other runs' work folders", "secret key file",
                               "database URL file", *(["SQLite file"] if database == "sqlite" else [])),
            # Landlock scopes signals from ABI 6 (Linux 6.12) on; before, a same-user template may signal.
            tolerated=("signal the runner",) if landlock_abi() < 6 and runner_user != "root" else (),
        )
        assert canary not in output and url not in output
    finally:
        if drop_database is not None:
            drop_database()
        shutil.rmtree(base, ignore_errors=True)
