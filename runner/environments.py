"""Python environments for jobs' modules, built with uv and reused across runs.

An environment is keyed by the Python version, the normalized sorted requirements and the package
index, so every run with the same modules on a host shares one. It is built once under a file
lock (many runs starting together wait for the first) and only counts once a marker file is
written, so a build that died halfway is rebuilt rather than used. Environments are built with
`--compile-bytecode`: this image sets PYTHONDONTWRITEBYTECODE, and without .pyc files every run
would compile the modules it imports again (~2x slower imports).

With JTB_ENV_S3_PREFIX set (s3://bucket/prefix), a built environment is also packed to
`<prefix>/<key>.tar.gz`, and a host without it (a fresh Batch container) unpacks that instead of
running uv. The key includes the Python version and the interpreter path, so a packed
environment is only used with the interpreter it was made for.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from jobtarget_batch.conf import settings
from runner.isolation import build_environment

READY_MARKER = ".jtb-ready"
# Folder (under JTB_ENV_ROOT) of aliases: modules as a job spells them -> environment key.
ALIASES = "aliases"
INSTALL_TIMEOUT_SECONDS = 900


class EnvironmentBuildError(Exception):
    """uv could not build the environment; the message carries uv's own words."""


@dataclass(frozen=True)
class Environment:
    path: Path
    python: Path
    built_now: bool


def normalized_requirements(requirements: list[str]) -> list[str]:
    # packaging loads here, not at import: the container runner finds a ready environment before
    # the template starts, and only a job with modules pays for it.
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    normalized = []
    for text in requirements:
        requirement = Requirement(text)
        if requirement.url:
            # Validation refuses these already; a snapshot from an older version must not slip by.
            raise EnvironmentBuildError(f"{text!r}: URLs and paths are not allowed as modules.")
        requirement.name = canonicalize_name(requirement.name)
        normalized.append(str(requirement))
    return sorted(set(normalized))


def environment_key(requirements: list[str]) -> str:
    material = json.dumps(
        {
            "python": list(sys.version_info[:3]),
            "implementation": sys.implementation.name,
            "interpreter": os.path.realpath(base_python()),
            "requirements": normalized_requirements(requirements),
            "index": settings.JTB_PACKAGE_INDEX_URL,
        },
        sort_keys=True,
    )
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def base_python() -> str:
    """The interpreter job environments are made from (JTB_TEMPLATE_PYTHON, else the runner's own)."""
    return settings.JTB_TEMPLATE_PYTHON or sys.executable


def _environment(path: Path, *, built_now: bool) -> Environment:
    return Environment(path=path, python=path / "bin" / "python", built_now=built_now)


def environment_ready(requirements: list[str]) -> Environment | None:
    """The environment for `requirements` if this host has it ready, without waiting or building.

    The container runner asks this before its template starts, and the key's normalization needs
    `packaging` (~15 ms to import). So an environment once found is also found by the modules as
    the job spells them: an alias file, named by that spelling, holding the key."""
    root = Path(settings.JTB_ENV_ROOT)
    alias = root / ALIASES / _spelling_key(requirements)
    try:
        key = alias.read_text().strip()
    except OSError:
        key = ""
    if key and (root / key / READY_MARKER).exists():
        return _environment(root / key, built_now=False)
    key = environment_key(requirements)
    path = root / key
    if not (path / READY_MARKER).exists():
        return None
    _alias_write(alias, key)
    return _environment(path, built_now=False)


def _spelling_key(requirements: list[str]) -> str:
    """Like environment_key, with the modules as written (sorted) instead of normalized."""
    material = json.dumps(
        {
            "python": list(sys.version_info[:3]),
            "implementation": sys.implementation.name,
            "interpreter": os.path.realpath(base_python()),
            "requirements": sorted(set(requirements)),
            "index": settings.JTB_PACKAGE_INDEX_URL,
        },
        sort_keys=True,
    )
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def _alias_write(alias: Path, key: str) -> None:
    """Written whole or not at all (a reader never sees half a key); losing a race is harmless."""
    try:
        alias.parent.mkdir(parents=True, exist_ok=True)
        partial = alias.with_name(f"{alias.name}.{os.getpid()}.tmp")
        partial.write_text(key)
        os.replace(partial, alias)
    except OSError:
        pass  # only a shortcut: the next run normalizes again


def uv_binary() -> str:
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if not found:
            raise EnvironmentBuildError("uv is not installed; it is needed to build job environments.") from None
        return found


def environment_ensure(
    requirements: list[str],
    *,
    output=None,
    on_build: Callable[[], None] | None = None,
    say: Callable[[str], None] = lambda message: None,
) -> Environment:
    """The environment for `requirements`, building it first if this host has none yet.

    `output` is a binary file object that receives uv's output (the process log). `on_build` is
    called once this call is the one that installs (after the lock, when nobody built it
    meanwhile), so only that run records an install step.
    """
    root = Path(settings.JTB_ENV_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    key = environment_key(requirements)
    path = root / key
    if (path / READY_MARKER).exists():
        return _environment(path, built_now=False)
    with open(root / f"{key}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("another run is building this environment; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if (path / READY_MARKER).exists():  # another run built it while we waited
            return _environment(path, built_now=False)
        if on_build is not None:
            on_build()
        normalized = normalized_requirements(requirements)
        if not _s3_restore(key, path, say):
            say(f"building environment {key} with uv")
            _build(path, normalized, output)
            (path / READY_MARKER).write_text(json.dumps({"requirements": normalized}))
            _s3_publish(key, path, say)
    return _environment(path, built_now=True)


def _build(path: Path, requirements: list[str], output) -> None:
    if path.exists():
        shutil.rmtree(path)
    uv = uv_binary()
    # The build runs packages' own code (sdists): it sees how to reach the index, not our secrets.
    env = {**build_environment(), "UV_NO_PROGRESS": "1"}
    _run([uv, "venv", "--quiet", "--python", base_python(), str(path)], env, output)
    if requirements:
        command = [uv, "pip", "install", "--python", str(path / "bin" / "python"), "--compile-bytecode"]
        if settings.JTB_PACKAGE_INDEX_URL:
            command += ["--index-url", settings.JTB_PACKAGE_INDEX_URL]
        # "--" ends the options: requirements are validated to be names, never options, but
        # this keeps a crafted one from ever being read as a flag.
        _run([*command, "--", *requirements], env, output)


def _run(command: list[str], env: dict, output) -> None:
    try:
        result = subprocess.run(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            timeout=INSTALL_TIMEOUT_SECONDS, check=False,
        )
    except subprocess.TimeoutExpired:
        raise EnvironmentBuildError(f"Installing the modules took longer than {INSTALL_TIMEOUT_SECONDS} s.") from None
    if output is not None and result.stdout:
        output.write(result.stdout)
        output.flush()
    if result.returncode != 0:
        message = result.stdout.decode("utf-8", errors="replace").strip()
        raise EnvironmentBuildError(message or f"uv exited with code {result.returncode}.")


# --- sharing through S3 -----------------------------------------------------------------------------
def _s3_location(key: str) -> tuple[str, str] | None:
    prefix = settings.JTB_ENV_S3_PREFIX
    if not prefix:
        return None
    from runner.aws.s3 import parse_s3_uri

    bucket, base, _ = parse_s3_uri(prefix)
    return bucket, f"{base.strip('/')}/{key}.tar.gz".lstrip("/")


def _s3_restore(key: str, path: Path, say) -> bool:
    """Unpack the environment another host packed; False (build it) when there is none or it is unusable."""
    location = _s3_location(key)
    if location is None:
        return False
    from botocore.exceptions import BotoCoreError, ClientError

    from runner.aws.client import aws_client

    bucket, object_key = location
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{key}-") as scratch:
        archive = Path(scratch) / "env.tar.gz"
        try:
            aws_client("s3").download_file(bucket, object_key, str(archive))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey"):
                say(f"could not read the shared environment s3://{bucket}/{object_key}: {exc}")
            return False
        except BotoCoreError as exc:
            say(f"could not read the shared environment s3://{bucket}/{object_key}: {exc}")
            return False
        unpacked = Path(scratch) / "env"
        try:
            with tarfile.open(archive) as tar:
                # Our own bucket; "tar" keeps the venv's absolute interpreter symlink.
                tar.extractall(unpacked, filter="tar")
            check = subprocess.run([str(unpacked / "bin" / "python"), "-c", "pass"], capture_output=True, timeout=60)
        except (tarfile.TarError, OSError, subprocess.TimeoutExpired) as exc:
            say(f"the shared environment s3://{bucket}/{object_key} is unusable here ({exc}); building it")
            return False
        if check.returncode != 0 or not (unpacked / READY_MARKER).exists():
            say(f"the shared environment s3://{bucket}/{object_key} is unusable here; building it")
            return False
        if path.exists():
            shutil.rmtree(path)
        unpacked.rename(path)
    say(f"restored environment {key} from s3://{bucket}/{object_key}")
    return True


def _s3_publish(key: str, path: Path, say) -> None:
    """Pack the environment for other hosts; a failure only costs them a build of their own."""
    location = _s3_location(key)
    if location is None:
        return
    from botocore.exceptions import BotoCoreError, ClientError

    from runner.aws.client import aws_client

    bucket, object_key = location
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{key}-") as scratch:
        archive = Path(scratch) / "env.tar.gz"
        try:
            with tarfile.open(archive, "w:gz", compresslevel=3) as tar:
                tar.add(path, arcname=".")
            aws_client("s3").upload_file(str(archive), bucket, object_key)
        except (ClientError, BotoCoreError, OSError) as exc:
            say(f"could not share environment {key} through s3://{bucket}/{object_key}: {exc}")
            return
    say(f"shared environment {key} as s3://{bucket}/{object_key}")
