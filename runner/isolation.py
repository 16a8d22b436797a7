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

- **A Landlock sandbox** (runner/sandbox.py), whoever the template runs as: it cannot open the
  control plane's paths (`control_plane_paths`: data folder, logs, other runs' work folders, job
  environments for writing, templates, the files named by `*_FILE` variables, the SQLite database,
  the runner's home) and writes only its work folder and the shared temporary folders.

What a template can still reach: its own work folder, parameters and environment; the job's
module environment (read only); what any local user may read outside the paths above; the network
(as the host allows: a database that trusts local connections without a password trusts the
template too). docs/runner.md ("Isolation") has the whole list.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from runner.sandbox import SHARED_WRITABLE, Sandbox

PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
# The code base (runner/..): its defaults for the data folder and the template root.
BASE_DIR = Path(__file__).resolve().parent.parent
# Folders of the control plane, by the variable that moves them (defaults under the data folder).
CONTROL_PLANE_FOLDERS = ("JTB_LOG_DIR", "JTB_WORK_DIR", "JTB_ENV_ROOT", "JTB_TEMPLATE_ROOT")
# Variables the runner's own process drops once its settings are loaded: nothing it starts later
# (module builds, the template) may inherit them, whatever environment it is given.
RUNNER_SECRET_VARIABLES = ("DATABASE_URL", "SECRET_KEY", "DATABASE_SECRET_ARN", "JTB_DATABASE_SECRET_ARN")
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


def control_plane_paths() -> list[Path]:
    """What the template's sandbox denies, read from the runner's environment (before Django):
    the data folder and the control plane's folders, every file a `*_FILE` variable names (secret
    key, database URL), the SQLite database with its journals, and the runner's home (~/.aws,
    ~/.pgpass)."""
    paths = [Path(os.environ.get("JTB_DATA_DIR") or BASE_DIR / "var")]
    paths += [Path(os.environ[name]) for name in CONTROL_PLANE_FOLDERS if os.environ.get(name)]
    if not os.environ.get("JTB_TEMPLATE_ROOT"):
        paths.append(BASE_DIR / "templates")
    paths += [
        Path(value) for name, value in os.environ.items()
        if name.endswith("_FILE") and value.startswith("/") and name not in TEMPLATE_VARIABLES + BUILD_VARIABLES
    ]
    url = _database_url()
    if url.startswith("sqlite:"):
        # As jobtarget_batch.env.parse_database_url reads it: sqlite:////absolute or sqlite:///relative.
        path = urlsplit(url).path
        database = Path(os.path.abspath(unquote(path[1:] if path.startswith("/") else path)))
        paths += [database, *(database.with_name(database.name + suffix) for suffix in ("-wal", "-shm", "-journal"))]
    home = os.path.expanduser("~")
    if home not in ("", "/", "~"):
        paths.append(Path(home))
    return [path for path in paths if str(path) != "/"]


def template_sandbox(python: Path, workdir: Path) -> Sandbox | None:
    """The Landlock sandbox of one run's template (runner/sandbox.py), or None where the kernel has
    none or JTB_TEMPLATE_SANDBOX=off; JTB_TEMPLATE_SANDBOX=required refuses to run without one."""
    mode = os.environ.get("JTB_TEMPLATE_SANDBOX", "auto").strip().lower()
    if mode in ("off", "false", "0", "no"):
        return None
    # The interpreter's own files: the job environment (a venv) and the Python it was made from.
    interpreter = Path(os.path.realpath(python)).parent.parent
    readable = [interpreter, *([python.parent.parent] if (python.parent.parent / "pyvenv.cfg").exists() else [])]
    sandbox = Sandbox.prepare(
        denied=control_plane_paths(), readable=readable, writable=[workdir, *SHARED_WRITABLE]
    )
    if sandbox is None:
        if mode == "required":
            raise RuntimeError("JTB_TEMPLATE_SANDBOX=required, but this kernel offers no Landlock sandbox.")
        print("[runner] no Landlock on this host: the template can read whatever its user can", flush=True)
    return sandbox


def _database_url() -> str:
    """The runner's database URL, to find a SQLite file: its variable (or what was scrubbed of it),
    else the file DATABASE_URL_FILE names."""
    url = os.environ.get("DATABASE_URL") or _scrubbed.get("DATABASE_URL", "")
    if not url and os.environ.get("DATABASE_URL_FILE"):
        try:
            url = Path(os.environ["DATABASE_URL_FILE"]).read_text().strip()
        except OSError:
            url = ""
    return url


# What runner_secrets_scrub took out of os.environ (the settings hold these values anyway).
_scrubbed: dict[str, str] = {}


def runner_secrets_scrub() -> None:
    """Drop the runner's credentials from its own os.environ once the settings hold them.

    /proc/<pid>/environ still shows the environment the runner was started with: what hides that
    is the runner being non-dumpable. This only keeps the values out of anything started later."""
    for name in RUNNER_SECRET_VARIABLES:
        if name in os.environ:
            _scrubbed[name] = os.environ.pop(name)


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


# The unprivileged user the image creates: a root runner uses it without being told.
DEFAULT_TEMPLATE_USER = "jtb-job"


def template_user_name() -> str:
    """JTB_TEMPLATE_USER, else `jtb-job` where this host has it; "" for none."""
    configured = os.environ.get("JTB_TEMPLATE_USER")
    if configured is not None:
        return configured.strip()
    try:
        pwd.getpwnam(DEFAULT_TEMPLATE_USER)
    except KeyError:
        return ""
    return DEFAULT_TEMPLATE_USER


def template_user() -> TemplateUser | None:
    """Who the template runs as: None (the runner's own user) unless the runner is root and
    JTB_TEMPLATE_USER (default: `jtb-job`, where it exists) names an unprivileged user."""
    name = template_user_name() if os.geteuid() == 0 else ""
    if not name:
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


def capabilities_last() -> int:
    """The highest capability number of this kernel (read before fork)."""
    try:
        return int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        return 40


def drop_privileges(user: TemplateUser | None, last_capability: int = 40, prctl=None) -> None:
    """Between fork and exec of the template: become the template's user for good.

    A root runner without a template user (W010) still takes every capability away from the
    template: with an empty bounding set root's exec grants none, so the template cannot bypass
    file modes (CAP_DAC_OVERRIDE) nor read a non-dumpable process's memory or environment
    (CAP_SYS_PTRACE); it keeps only what uid 0 owns, which the sandbox narrows further."""
    if user is None:
        if os.geteuid() == 0 and prctl is not None:
            for capability in range(last_capability + 1):
                prctl(PR_CAPBSET_DROP, capability, 0, 0, 0)
            prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
        return
    os.setgroups([])
    os.setgid(user.gid)
    os.setuid(user.uid)
