"""Python environments for jobs' modules, built with uv and reused across runs.

An environment is keyed by the Python version, the normalized sorted requirements and the package
index, so every run with the same modules on a host shares one. It is built once under a file
lock (many runs starting together wait for the first) and only counts once a marker file is
written, so a build that died halfway is rebuilt rather than used.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

READY_MARKER = ".jtb-ready"
INSTALL_TIMEOUT_SECONDS = 900


class EnvironmentBuildError(Exception):
    """uv could not build the environment; the message carries uv's own words."""


@dataclass(frozen=True)
class Environment:
    path: Path
    python: Path
    built_now: bool


def normalized_requirements(requirements: list[str]) -> list[str]:
    normalized = []
    for text in requirements:
        requirement = Requirement(text)
        requirement.name = canonicalize_name(requirement.name)
        normalized.append(str(requirement))
    return sorted(set(normalized))


def environment_key(requirements: list[str]) -> str:
    material = json.dumps(
        {
            "python": list(sys.version_info[:3]),
            "implementation": sys.implementation.name,
            "requirements": normalized_requirements(requirements),
            "index": settings.JTB_PACKAGE_INDEX_URL,
        },
        sort_keys=True,
    )
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def uv_binary() -> str:
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if not found:
            raise EnvironmentBuildError("uv is not installed; it is needed to build job environments.") from None
        return found


def environment_ensure(requirements: list[str], *, output=None) -> Environment:
    """The environment for `requirements`, building it first if this host has none yet.

    `output` is a binary file object that receives uv's output (the process log).
    """
    root = Path(settings.JTB_ENV_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    key = environment_key(requirements)
    path = root / key
    python = path / "bin" / "python"
    if (path / READY_MARKER).exists():
        return Environment(path=path, python=python, built_now=False)
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (path / READY_MARKER).exists():  # another run built it while we waited
            return Environment(path=path, python=python, built_now=False)
        _build(path, normalized_requirements(requirements), output)
        (path / READY_MARKER).write_text(json.dumps({"requirements": normalized_requirements(requirements)}))
    return Environment(path=path, python=python, built_now=True)


def _build(path: Path, requirements: list[str], output) -> None:
    if path.exists():
        shutil.rmtree(path)
    uv = uv_binary()
    env = {**os.environ, "UV_NO_PROGRESS": "1"}
    env.pop("VIRTUAL_ENV", None)
    _run([uv, "venv", "--quiet", "--python", sys.executable, str(path)], env, output)
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
