"""Keeping job code away from the control plane.

A template is untrusted code. What it must not reach: the secrets in the environment of the
runner, the workers and the web server (database URL, SECRET_KEY, AWS keys), the data folder, the
secret key file and the SQLite database. Three mechanisms, all used by the runner:

- **Minimal environments.** The template's interpreter and the module build get an explicit
  allow-list of variables (plus the job's own environment), never a copy of the runner's.
- **Non-dumpable processes.** The runner and every process that loads Django mark themselves
  non-dumpable (prctl PR_SET_DUMPABLE 0): another process of the same user can then not read
  their /proc/<pid>/environ or memory, nor attach a debugger.
- **Another user.** Where the runner is root and JTB_TEMPLATE_USER names a user (the Dockerfile
  creates `jtb-job`), the template runs as that unprivileged user, which can read neither root's
  files of mode 0600 (secret key, database, logs) nor the /proc entries of root's processes. Its
  interpreter must be one that user may run (JTB_TEMPLATE_PYTHON, e.g. /usr/bin/python3.11, when
  the runner's own Python lives under a private home). A root runner without it is reported by
  `manage.py check` (jobtarget_batch.W010).

What a template can still reach: its own work folder, parameters and environment; the job's
module environment; the network (as the host allows); as a same-user process where the runner is
not root, files of that user (keep the data folder of such a deployment on a database server).
"""

from __future__ import annotations

import ctypes
import os
import pwd
import sys
from dataclasses import dataclass
from pathlib import Path

PR_SET_DUMPABLE = 4
# What the template's interpreter may see of the runner's environment.
TEMPLATE_VARIABLES = (
    "PATH", "LANG", "LC_ALL", "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
    "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_ENDPOINT_URL",
)
# What uv may see while it builds a job's module environment: how to reach the package index.
BUILD_VARIABLES = (
    "PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
)
BUILD_PREFIXES = ("UV_",)


def process_make_non_dumpable() -> bool:
    """Hide this process's environment and memory from other processes of its user (Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0


def build_environment() -> dict[str, str]:
    """The environment of a module build (uv): the index, proxies and certificates, nothing else."""
    return {
        name: value for name, value in os.environ.items()
        if name in BUILD_VARIABLES or name.startswith(BUILD_PREFIXES)
    }


def template_environment(job_environment: dict[str, str]) -> dict[str, str]:
    return {**{name: os.environ[name] for name in TEMPLATE_VARIABLES if name in os.environ}, **job_environment}


@dataclass(frozen=True)
class TemplateUser:
    name: str
    uid: int
    gid: int


def template_user() -> TemplateUser | None:
    """Who the template runs as: None (the runner's own user) unless the runner is root and
    JTB_TEMPLATE_USER names an unprivileged user."""
    name = os.environ.get("JTB_TEMPLATE_USER", "")
    if os.geteuid() != 0 or not name:
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise RuntimeError(f"JTB_TEMPLATE_USER {name!r} does not exist on this host.") from None
    if entry.pw_uid == 0:
        raise RuntimeError(f"JTB_TEMPLATE_USER {name!r} is root; name an unprivileged user.")
    return TemplateUser(name=name, uid=entry.pw_uid, gid=entry.pw_gid)


def workdir_hand_over(workdir: Path, user: TemplateUser | None) -> None:
    """Let the template's user use its work folder, and only that."""
    if user is None:
        return
    for path in [workdir, *workdir.iterdir()]:
        os.chown(path, user.uid, user.gid)
    os.chmod(workdir, 0o700)


def drop_privileges(user: TemplateUser | None) -> None:
    """Between fork and exec of the template: become the template's user for good."""
    if user is None:
        return
    os.setgroups([])
    os.setgid(user.gid)
    os.setuid(user.uid)
