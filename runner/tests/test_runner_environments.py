"""Module environments: keyed, reused without an install step, built once, shared through S3."""

from __future__ import annotations

import pytest

from processes.models import ProcessStatus, TaskStatus
from runner.environments import environment_key
from runner.runtime.recorder import INSTALL_TASK
from tests.support import make_job, runner_popen, runner_run, start

pytestmark = pytest.mark.django_db(transaction=True)

# Small, pure Python and already in uv's cache here (pytest depends on it): builds take ~1 s.
MODULE = "iniconfig>=2"
USES_MODULE = """
import iniconfig

def main(ctx):
    with ctx.task("use the module"):
        print("module from", iniconfig.__file__)
"""

NO_MODULES = """
def main(ctx):
    with ctx.task("report"):
        print("no modules needed")
"""


@pytest.fixture
def fresh(tmp_path, settings, subprocess_env):
    """A template folder and an empty environment root: the first run must build."""
    templates = tmp_path / "templates"
    templates.mkdir()
    settings.JTB_TEMPLATE_ROOT = templates
    settings.JTB_ENV_ROOT = tmp_path / "envs"
    env = {**subprocess_env, "JTB_TEMPLATE_ROOT": str(templates), "JTB_ENV_ROOT": str(tmp_path / "envs")}
    return templates, env


def test_environment_key_ignores_order_spelling_and_duplicates_but_not_the_index(settings):
    key = environment_key(["Requests>=2.31", "python_dateutil", "requests>=2.31"])
    assert key == environment_key(["python-dateutil", "requests>=2.31"])
    assert key != environment_key(["python-dateutil", "requests>=2.32"])
    settings.JTB_PACKAGE_INDEX_URL = "https://pypi.example.com/simple"
    assert key != environment_key(["python-dateutil", "requests>=2.31"])


def test_a_job_without_modules_on_a_new_host_shows_no_install_step(fresh):
    """The empty environment such jobs run in is made once per host, by whichever run comes first:
    that run's steps are the template's own, as on every later run."""
    templates, env = fresh
    job = make_job(root=templates, source=NO_MODULES)
    process = start(job)
    log = runner_run(process, env)
    process.refresh_from_db()
    assert process.status == ProcessStatus.SUCCEEDED, log
    assert [task.name for task in process.tasks.all()] == ["report"]
    assert any(path.is_dir() for path in (templates.parent / "envs").iterdir())  # it was made now


def test_second_run_with_the_same_modules_reuses_the_environment_without_an_install_step(fresh):
    templates, env = fresh
    job = make_job(root=templates, source=USES_MODULE, python_modules=[MODULE])

    first = start(job)
    first_log = runner_run(first, env)
    first.refresh_from_db()
    assert first.status == ProcessStatus.SUCCEEDED, first_log
    install = first.tasks.get(sequence=1)
    assert (install.name, install.status) == (INSTALL_TASK, TaskStatus.SUCCEEDED)
    assert "Installed" in first_log  # uv's own output lands in the process log

    second = start(job)
    second_log = runner_run(second, env)
    second.refresh_from_db()
    assert second.status == ProcessStatus.SUCCEEDED, second_log
    assert [task.name for task in second.tasks.all()] == ["use the module"]
    assert "reusing the environment" in second_log
    assert "building environment" not in second_log and "Installed" not in second_log


def test_ten_runs_started_together_with_new_modules_build_the_environment_once(fresh):
    templates, env = fresh
    job = make_job(root=templates, source=USES_MODULE, python_modules=[MODULE])
    processes = [start(job) for _ in range(10)]
    runners = [runner_popen(process, env) for process in processes]
    logs = [runner.communicate(timeout=240)[0] for runner in runners]

    for process, log in zip(processes, logs, strict=True):
        process.refresh_from_db()
        assert process.status == ProcessStatus.SUCCEEDED, log
    assert sum(log.count("building environment") for log in logs) == 1
    builders = [process for process in processes if process.tasks.filter(name=INSTALL_TASK).exists()]
    assert len(builders) == 1
    # Every other run used the one environment: it waited for the build or found it ready.
    assert all(("waiting for it" in log) or ("reusing the environment" in log)
               for process, log in zip(processes, logs, strict=True) if process not in builders)


def test_a_bad_requirement_fails_the_install_task_with_uvs_message(fresh):
    templates, env = fresh
    job = make_job(root=templates, source=USES_MODULE, python_modules=["jtb-no-such-package-qq==1.0"])
    process = start(job)
    log = runner_run(process, env)
    process.refresh_from_db()
    assert process.status == ProcessStatus.FAILED
    task = process.tasks.get()
    assert (task.name, task.status) == (INSTALL_TASK, TaskStatus.FAILED)
    assert "jtb-no-such-package-qq" in task.error and "not found" in task.error
    assert process.failure_reason.startswith(f"Task '{INSTALL_TASK}' failed:")
    assert "jtb-no-such-package-qq" in process.failure_reason
    assert "use the module" not in log


def test_modules_come_from_the_index_in_settings(fresh):
    templates, env = fresh
    job = make_job(root=templates, source=USES_MODULE, python_modules=[MODULE])
    process = start(job)
    runner_run(process, {**env, "JTB_PACKAGE_INDEX_URL": "http://127.0.0.1:9/simple", "UV_NO_CACHE": "1", "UV_HTTP_RETRIES": "0"})
    process.refresh_from_db()
    assert process.status == ProcessStatus.FAILED
    assert "127.0.0.1:9" in process.tasks.get(name=INSTALL_TASK).error


def test_a_fresh_host_unpacks_the_environment_another_host_shared_through_s3(moto_server, fresh, tmp_path):
    from runner.aws.client import aws_client

    templates, env = fresh
    aws_client("s3").create_bucket(Bucket="jtb-envs")
    env = {**env, "AWS_ENDPOINT_URL": moto_server.url, "JTB_ENV_S3_PREFIX": "s3://jtb-envs/shared/"}
    job = make_job(root=templates, source=USES_MODULE, python_modules=[MODULE])

    first = start(job)
    first_log = runner_run(first, env)
    first.refresh_from_db()
    assert first.status == ProcessStatus.SUCCEEDED, first_log
    shared = aws_client("s3").list_objects_v2(Bucket="jtb-envs", Prefix="shared/")["Contents"]
    assert [item["Key"] for item in shared] == [f"shared/{environment_key([MODULE])}.tar.gz"]

    # Another host: nothing built locally, so it unpacks the shared one instead of running uv.
    second = start(job)
    second_log = runner_run(second, {**env, "JTB_ENV_ROOT": str(tmp_path / "other-host-envs")})
    second.refresh_from_db()
    assert second.status == ProcessStatus.SUCCEEDED, second_log
    assert "restored environment" in second_log
    assert "building environment" not in second_log and "Installed" not in second_log
    assert "module from " + str(tmp_path / "other-host-envs") in second_log


def test_a_ready_environment_is_found_again_by_its_spelling_without_normalizing(fresh, monkeypatch):
    """The container runner looks for its environment before the template starts: once found, the
    same spelling of the modules finds it without `packaging` (an alias file)."""
    import runner.environments as environments

    built = environments.environment_ensure([MODULE])
    assert environments.environment_ready([MODULE]).path == built.path  # normalizes, writes the alias

    def no_normalizing(requirements):
        raise AssertionError("normalized again")

    monkeypatch.setattr(environments, "normalized_requirements", no_normalizing)
    assert environments.environment_ready([MODULE]).path == built.path
    with pytest.raises(AssertionError, match="normalized again"):  # another spelling normalizes
        environments.environment_ready(["INIconfig>=2"])
    monkeypatch.undo()
    assert environments.environment_ready(["INIconfig>=2"]).path == built.path
    # An alias whose environment is gone is not trusted.
    for marker in built.path.glob(environments.READY_MARKER):
        marker.unlink()
    assert environments.environment_ready([MODULE]) is None
