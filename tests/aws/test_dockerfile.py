"""The Dockerfile cannot be built here (no Docker engine): check that what it runs exists."""

from __future__ import annotations

import importlib
import json
import re
import shutil
from pathlib import Path

import pytest
from django.core.management import get_commands

from runner.aws import entrypoint
from runner.aws.batch import job_definition_spec

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text()


def instruction(name: str) -> list[str]:
    return [line.split(None, 1)[1] for line in DOCKERFILE.splitlines() if line.startswith(name + " ")]


def test_image_is_slim_python_311_installed_with_uv_and_runs_as_a_non_root_user():
    assert instruction("FROM") == ["python:3.11-slim"]
    assert "uv pip install" in DOCKERFILE and "-r requirements.txt" in DOCKERFILE
    [user] = instruction("USER")
    assert user not in ("root", "0")
    assert re.search(rf"useradd .*\b{user}\b", DOCKERFILE)


def test_entrypoint_is_the_python_module_that_dispatches_the_commands():
    [raw] = instruction("ENTRYPOINT")
    command = json.loads(raw)
    assert command[:2] == ["tini", "--"]
    assert command[2:] == ["python", "-m", "runner.aws.entrypoint"]
    assert json.loads(instruction("CMD")[0]) == ["web"]


@pytest.mark.parametrize("name", ["migrate", "batch_sync", "run_process"])
def test_manage_py_commands_of_the_image_exist(name):
    command = entrypoint.command_for([name], {})
    assert command[:2] == ["python", "manage.py"]
    assert command[2] in get_commands()


def test_web_runs_gunicorn_on_the_projects_wsgi_application():
    command = entrypoint.command_for(["web"], {"PORT": "9000"})
    module, attribute = command[1].split(":")
    assert command[0] == "gunicorn" and shutil.which("gunicorn", path=str(Path(__import__("sys").executable).parent))
    assert callable(getattr(importlib.import_module(module), attribute))
    assert "0.0.0.0:9000" in command


@pytest.mark.parametrize(("name", "verb"), [("worker", "worker"), ("beat", "beat")])
def test_worker_and_beat_run_celery_on_the_projects_app(name, verb):
    command = entrypoint.command_for([name], {})
    assert command[:4] == ["celery", "-A", "jobtarget_batch", verb]
    from celery.app.utils import find_app

    # What `celery -A jobtarget_batch` finds: the project's app in jobtarget_batch/celery.py.
    assert find_app("jobtarget_batch").main == "jobtarget_batch"


def test_batch_job_definitions_command_passes_through_unchanged(settings):
    settings.JTB_BATCH_DATABASE_URL_SECRET_ARN = "arn:aws:ssm:us-east-1:1:parameter/db"
    batch_command = job_definition_spec("EC2")["containerProperties"]["command"]
    started = [part.replace("Ref::process_id", "42") for part in batch_command]

    assert entrypoint.command_for(started, {}) == started
    assert entrypoint.runner_process_id(started) == 42
    assert started[2] in get_commands()


def test_dockerignore_keeps_what_the_image_needs():
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {"manage.py", "requirements.txt", "runner", "jobtarget_batch"}.isdisjoint(ignored)
    assert {".git", ".venv", "var"} <= ignored
