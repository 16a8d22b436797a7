"""/healthz answers without I/O; /readyz names what is down with a 503 and recovers with it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from django.conf import settings

from jobtarget_batch.celery import app as celery_app


@pytest.fixture
def broken_broker():
    """The Celery app points at a Redis port where nothing listens."""
    saved = celery_app.conf.broker_url
    celery_app.conf.broker_url = "redis://127.0.0.1:1/0"
    celery_app._pool = None
    yield
    celery_app.conf.broker_url = saved
    celery_app._pool = None


def test_healthz_answers_without_touching_the_database_whatever_the_host(client, broken_broker):
    # No django_db mark: any query would raise here; the broker is down and does not matter.
    response = client.get("/healthz", HTTP_HOST="10.0.3.7:8000")  # a load balancer's own Host
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_200_when_the_database_and_broker_answer(client):
    response = client.get("/readyz", HTTP_HOST="10.0.3.7")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ready" and body["failed"] == []
    assert set(body["checks"]) == {"database", "broker"}


@pytest.mark.django_db
def test_readyz_names_the_broker_when_it_is_unreachable(client, broken_broker, settings):
    settings.JTB_READYZ_TIMEOUT_SECONDS = 2
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["broker"]
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["error"]


@pytest.mark.django_db
def test_probes_need_no_login_while_the_api_does(client):
    assert client.get("/api/v1/jobs/").status_code == 401
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.slow
@pytest.mark.sqlite_only
def test_readyz_is_503_while_the_database_is_gone_and_200_once_it_is_back(tmp_path):
    """gunicorn on an SQLite database whose folder is moved away (as root, chmod cannot lock it)."""
    from conftest import service_reachable
    from tests.support import wait_for
    from tests.test_run_all import free_port

    data = tmp_path / "data"
    data.mkdir()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_URL", "JTB_"))}
    env.update({"DATABASE_URL": f"sqlite:///{data / 'db.sqlite3'}", "JTB_DATA_DIR": str(tmp_path / "var"),
                "CELERY_BROKER_URL": "memory://localhost//"})
    migrate = subprocess.run([sys.executable, "manage.py", "migrate", "--no-input"], cwd=settings.BASE_DIR, env=env,
                             capture_output=True, text=True, timeout=300)
    assert migrate.returncode == 0, migrate.stderr
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "jobtarget_batch.wsgi"],
        cwd=settings.BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: service_reachable("127.0.0.1", port), timeout=60)
        assert get(url + "/readyz")[0] == 200

        shutil.move(data, tmp_path / "elsewhere")
        for _ in range(4):  # each worker: none may answer "ready"
            status, body = get(url + "/readyz")
            assert status == 503, body
            assert body["failed"] == ["database"]
            assert "unable to open database file" in body["checks"]["database"]["error"]
        assert get(url + "/healthz") == (200, {"status": "ok"})

        shutil.move(tmp_path / "elsewhere", data)
        for _ in range(4):
            assert get(url + "/readyz")[0] == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
