"""The runner fetches its database credential from Secrets Manager itself (DATABASE_SECRET_ARN)."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest

from conftest import database_url_for_subprocesses
from processes.models import ProcessStatus
from runner.aws.client import aws_client
from runner.aws.secrets import SecretError, database_url_from_secret, database_url_of
from tests.hostile import HOSTILE_TEMPLATE, assert_nothing_reached, hostile_results
from tests.moto import FAKE_CREDENTIALS
from tests.support import make_job, run_process, start


def test_a_secret_holds_a_url_or_the_json_of_an_rds_secret():
    assert database_url_of(" postgres://u:p@db:5432/jobs\n") == "postgres://u:p@db:5432/jobs"
    rds = {"engine": "postgres", "host": "db.internal", "port": 5433, "username": "jtb", "password": "p@ss/w:rd",
           "dbname": "jobs", "dbInstanceIdentifier": "jtb"}
    assert database_url_of(json.dumps(rds)) == "postgres://jtb:p%40ss%2Fw%3Ard@db.internal:5433/jobs"
    assert database_url_of(json.dumps({**rds, "engine": "sqlserver-se", "port": None})).startswith("mssql://")
    assert database_url_of(json.dumps({**rds, "port": None})).endswith("@db.internal:5432/jobs")
    with pytest.raises(SecretError, match="lacks host, dbname"):
        database_url_of(json.dumps({"username": "jtb", "password": "x"}))  # RDS's managed master secret
    with pytest.raises(SecretError, match="engine 'mysql'"):
        database_url_of(json.dumps({**rds, "engine": "mysql"}))


def test_the_secret_is_read_from_secrets_manager(moto_server):
    arn = aws_client("secretsmanager").create_secret(
        Name="jtb/rds", SecretString=json.dumps({"engine": "postgres", "host": "h", "port": 5432, "username": "u",
                                                  "password": "p", "dbname": "d"}),
    )["ARN"]
    assert database_url_from_secret(arn) == "postgres://u:p@h:5432/d"
    with pytest.raises(SecretError, match="Could not read the database secret"):
        database_url_from_secret(arn.replace("jtb/rds", "jtb/missing"))


def secret_of(url: str) -> str:
    """What the deployment stores: RDS's JSON for PostgreSQL, the URL itself for SQLite."""
    if not url.startswith("postgres"):
        return url
    parts = urlsplit(url)
    return json.dumps({"engine": "postgres", "host": parts.hostname, "port": parts.port or 5432,
                       "username": parts.username, "password": parts.password or "unused",
                       "dbname": parts.path.lstrip("/")})


@pytest.mark.django_db(transaction=True)
def test_the_container_runner_fetches_its_database_secret_itself_and_its_template_cannot_find_it(
    moto_server, subprocess_env, tmp_path, settings
):
    settings.JTB_TEMPLATE_ROOT = tmp_path / "templates"
    url = database_url_for_subprocesses()
    arn = aws_client("secretsmanager").create_secret(Name="jtb/runner-db", SecretString=secret_of(url))["ARN"]
    env = {name: value for name, value in subprocess_env.items() if not name.startswith("DATABASE_URL")}
    env.update(FAKE_CREDENTIALS, AWS_ENDPOINT_URL=moto_server.url, DATABASE_SECRET_ARN=arn,
               JTB_TEMPLATE_ROOT=str(settings.JTB_TEMPLATE_ROOT))
    parameters = {"sqlite_file": url.removeprefix("sqlite://")} if url.startswith("sqlite:") else {}
    process = start(make_job(source=HOSTILE_TEMPLATE, root=settings.JTB_TEMPLATE_ROOT), parameters)

    ran = run_process(process, env, timeout=300)

    process.refresh_from_db()
    assert process.status == ProcessStatus.SUCCEEDED, ran.stdout + ran.stderr
    assert_nothing_reached(hostile_results(ran.stdout), expected=("SQLite file",) if parameters else ())
    assert arn not in ran.stdout
