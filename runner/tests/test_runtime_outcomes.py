"""Every way a template can end, run through the real command: `manage.py run_process <id>`."""

import pytest

from jobs.models import Job
from processes.models import ProcessStatus, TaskStatus
from runner.executors.local.executor import local_log_path
from tests.support import make_job, run_process, start

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def template_root(tmp_path, settings):
    root = tmp_path / "templates"
    root.mkdir()
    settings.JTB_TEMPLATE_ROOT = root
    return root


@pytest.fixture
def env(template_root, subprocess_env):
    return subprocess_env


def outcome(process, env, **kwargs):
    result = run_process(process, env, **kwargs)
    process.refresh_from_db()
    return process, result


def tasks(process):
    return [(task.name, task.status) for task in process.tasks.order_by("sequence")]


def test_template_that_completes_succeeds_with_its_tasks_params_and_log(template_root, env):
    job = make_job(root=template_root, source="""
        def main(ctx):
            with ctx.task("extract"):
                ctx.log.info("since=%s limit=%s job=%s id=%s", ctx.params["since"], ctx.params["limit"], ctx.job, ctx.process_id)
            with ctx.task("load"):
                print("loaded")
    """, parameters={"since": "2024-01-01", "limit": 1})
    process, result = outcome(start(job, parameters={"limit": 10}), env)
    assert process.status == ProcessStatus.SUCCEEDED, result.stdout + result.stderr
    assert process.exit_code == 0
    assert tasks(process) == [("extract", TaskStatus.SUCCEEDED), ("load", TaskStatus.SUCCEEDED)]
    assert all(task.finished_at >= task.started_at for task in process.tasks.all())
    assert process.started_at <= process.finished_at
    assert f"since=2024-01-01 limit=10 job={process.job.name} id={process.pk}" in result.stdout
    assert "loaded" in result.stdout


def test_failing_task_fails_the_process_and_later_tasks_never_start(template_root, env):
    job = make_job(root=template_root, source="""
        def main(ctx):
            with ctx.task("extract"):
                rows = [1]
            with ctx.task("transform"):
                {}["missing"]
            with ctx.task("load"):
                pass
    """)
    process, _ = outcome(start(job), env)
    assert process.status == ProcessStatus.FAILED
    assert process.failure_reason == "Task 'transform' failed: KeyError: 'missing'"
    assert tasks(process) == [("extract", TaskStatus.SUCCEEDED), ("transform", TaskStatus.FAILED)]
    failed = process.tasks.get(name="transform")
    assert failed.error == "KeyError: 'missing'"
    assert 'in main\n    {}["missing"]' in failed.traceback or "KeyError" in failed.traceback


def test_failed_task_fails_the_process_even_when_main_swallows_the_error(template_root, env):
    job = make_job(root=template_root, source="""
        def main(ctx):
            try:
                with ctx.task("optional step"):
                    raise RuntimeError("flaky")
            except RuntimeError:
                pass
    """)
    process, _ = outcome(start(job), env)
    assert process.status == ProcessStatus.FAILED
    assert process.failure_reason == "Task 'optional step' failed: RuntimeError: flaky"


def test_exception_outside_a_task_fails_with_its_message(template_root, env):
    job = make_job(root=template_root, source="""
        def main(ctx):
            raise ValueError("bad config")
    """)
    process, result = outcome(start(job), env)
    assert process.status == ProcessStatus.FAILED
    assert process.failure_reason == "The template raised ValueError: bad config"
    assert "Traceback" in result.stdout + result.stderr


def test_non_zero_exit_fails_with_the_code(template_root, env):
    job = make_job(root=template_root, source="""
        import sys
        def main(ctx):
            sys.exit(3)
    """)
    process, _ = outcome(start(job), env)
    assert process.status == ProcessStatus.FAILED
    assert process.failure_reason == "The template exited with code 3."


def test_exit_zero_is_success(template_root, env):
    job = make_job(root=template_root, source="""
        import sys
        def main(ctx):
            with ctx.task("only"):
                pass
            sys.exit(0)
    """)
    process, _ = outcome(start(job), env)
    assert process.status == ProcessStatus.SUCCEEDED


def test_template_that_cannot_be_imported_fails_with_the_error(template_root, env):
    job = make_job(root=template_root, source="def main(ctx)\n    pass\n")
    process, _ = outcome(start(job), env)
    assert process.status == ProcessStatus.FAILED
    assert process.failure_reason.startswith("Could not import the template: SyntaxError")


def test_template_importing_a_missing_module_fails_at_import(template_root, env):
    job = make_job(root=template_root, source="import no_such_module_here\ndef main(ctx):\n    pass\n")
    process, _ = outcome(start(job), env)
    assert process.status == ProcessStatus.FAILED
    assert "ModuleNotFoundError" in process.failure_reason


def test_template_without_main_fails_and_says_so(template_root, env):
    job = make_job(root=template_root, source="def run(ctx):\n    pass\n")
    process, _ = outcome(start(job), env)
    assert process.status == ProcessStatus.FAILED
    assert process.failure_reason == "The template has no main(ctx) function."


def test_template_that_cannot_be_fetched_fails_with_the_path(template_root, env):
    job = Job.objects.create(name="missing", template="nowhere/missing.py", memory_mib=512)
    process, _ = outcome(start(job), env)
    assert process.status == ProcessStatus.FAILED
    assert process.failure_reason.startswith("Could not fetch the template: nowhere/missing.py does not exist")


def test_template_past_its_timeout_is_killed_and_fails(template_root, env):
    job = make_job(root=template_root, source="""
        import time
        def main(ctx):
            with ctx.task("sleepy"):
                time.sleep(60)
    """, timeout_seconds=2)
    process, _ = outcome(start(job), env, timeout=60)
    assert process.status == ProcessStatus.FAILED
    assert process.failure_reason == "Timed out after 2 s."
    assert tasks(process) == [("sleepy", TaskStatus.FAILED)]
    assert (process.finished_at - process.started_at).total_seconds() < 20


def test_template_over_its_memory_limit_fails_with_out_of_memory(template_root, env):
    job = make_job(root=template_root, source="""
        def main(ctx):
            with ctx.task("allocate"):
                blob = bytearray(400 * 1024 * 1024)
    """, memory_mib=128)
    process, _ = outcome(start(job), env)
    assert process.status == ProcessStatus.FAILED
    assert "out of memory" in process.failure_reason.lower()


def test_template_sees_its_job_environment_but_not_the_runners_secrets(template_root, env):
    job = make_job(root=template_root, source="""
        import os
        def main(ctx):
            with ctx.task("check"):
                assert os.environ["REGION"] == "eu-west-1", os.environ.get("REGION")
                assert "DATABASE_URL" not in os.environ, "runner secret leaked"
    """, environment={"REGION": "eu-west-1"})
    process, _ = outcome(start(job), env)
    assert process.status == ProcessStatus.SUCCEEDED, process.failure_reason


def test_a_finished_process_is_not_run_again(template_root, env):
    job = make_job(root=template_root, source="def main(ctx):\n    print('ran')\n")
    process = start(job)
    first, _ = outcome(process, env)
    assert first.status == ProcessStatus.SUCCEEDED
    finished_at = first.finished_at
    second, result = outcome(process, env)
    assert second.finished_at == finished_at
    assert "nothing to do" in result.stdout
    assert "ran" not in result.stdout


def test_local_log_file_is_written_by_the_local_executor_path(template_root, env, settings):
    # The log path the admin and API read is where the local executor sends runner output.
    assert local_log_path(42) == settings.JTB_LOG_DIR / "process-42.log"
