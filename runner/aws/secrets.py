"""Secrets Manager: the database credential a process fetches itself (DATABASE_SECRET_ARN).

The settings call `database_url_from_secret` while they load, when DATABASE_URL is not set and
DATABASE_SECRET_ARN is: the credential then lives only in the memory of a process that needs it,
never in an environment a template could read (ECS `secrets` put it into the container's
environment). So this module must not touch Django's settings (they are loading): the client is
made from the standard AWS variables, and boto3 is imported only here, only then.

The secret holds either a database URL or the JSON of an RDS secret:
{"engine": "postgres", "host": ..., "port": 5432, "username": ..., "password": ..., "dbname": ...}.
"""

from __future__ import annotations

import json
import os
from urllib.parse import quote

# RDS secret `engine` values and the URL scheme of each (jobtarget_batch.env.parse_database_url).
ENGINE_SCHEMES = {
    "postgres": "postgres", "postgresql": "postgres", "aurora-postgresql": "postgres",
    "sqlserver": "mssql", "sqlserver-ex": "mssql", "sqlserver-se": "mssql", "sqlserver-ee": "mssql",
    "sqlserver-web": "mssql", "mssql": "mssql",
}
DEFAULT_PORTS = {"postgres": 5432, "mssql": 1433}


class SecretError(Exception):
    """The secret could not be read or does not hold a database credential."""


def secret_string(arn: str) -> str:
    """GetSecretValue's SecretString, in the secret's own region (else AWS_REGION)."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    parts = arn.split(":")
    region = parts[3] if arn.startswith("arn:") and len(parts) > 3 and parts[3] else None
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    client = boto3.client(
        "secretsmanager", region_name=region, endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
        config=Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10, read_timeout=30),
    )
    try:
        answer = client.get_secret_value(SecretId=arn)
    except (BotoCoreError, ClientError) as exc:
        raise SecretError(f"Could not read the database secret {arn}: {exc}") from exc
    if "SecretString" not in answer:
        raise SecretError(f"The database secret {arn} holds binary data, not a URL or RDS JSON.")
    return answer["SecretString"]


def database_url_of(secret: str) -> str:
    """The database URL a secret holds: the URL itself, or one made from RDS's JSON."""
    text = secret.strip()
    if not text.startswith("{"):
        return text
    try:
        fields = json.loads(text)
    except ValueError as exc:
        raise SecretError("The database secret is neither a URL nor JSON.") from exc
    for key in ("url", "DATABASE_URL"):
        if isinstance(fields.get(key), str):
            return fields[key]
    engine = str(fields.get("engine") or "postgres").lower()
    scheme = ENGINE_SCHEMES.get(engine)
    if scheme is None:
        raise SecretError(f"The database secret's engine {engine!r} is not supported (postgres or sqlserver).")
    missing = [key for key in ("username", "password", "host") if not fields.get(key)]
    dbname = fields.get("dbname") or fields.get("database")
    if not dbname:
        missing.append("dbname")
    if missing:
        raise SecretError(f"The database secret lacks {', '.join(missing)}.")
    port = int(fields.get("port") or DEFAULT_PORTS[scheme])
    user, password = quote(str(fields["username"]), safe=""), quote(str(fields["password"]), safe="")
    return f"{scheme}://{user}:{password}@{fields['host']}:{port}/{quote(str(dbname), safe='')}"


def database_url_from_secret(arn: str) -> str:
    return database_url_of(secret_string(arn))
