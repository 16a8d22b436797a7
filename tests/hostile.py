"""A hostile template and how to read its report: the isolation tests' one attacker.

The template tries to reach what runner/isolation.py and runner/sandbox.py keep from job code and
reports each attempt on one line of its output (`HOSTILE [...]`), so the run's log is the
evidence. An attempt that succeeds is a breach: `ok` true, with what it saw. The paths it goes
for come as parameters (an attacker who knows the layout); attempts without their parameter are
left out. Standard library only: it runs in the job's own interpreter.
"""

from __future__ import annotations

import json

HOSTILE_TEMPLATE = r'''
import glob, json, os, re, sys, tempfile

# Anything that looks like a database credential in what the template manages to read.
URL = re.compile(rb"(?:postgres(?:ql)?|mssql)://[^\s\x00'\"]+")
SECRET_NAMES = (b"DATABASE_URL=", b"SECRET_KEY=", b"DATABASE_SECRET_ARN=", b"JTB_TEST_CANARY=")
found_urls = []


def attempt(what, action):
    try:
        seen = action()
    except Exception as exc:
        return {"what": what, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:200]}
    text = seen if isinstance(seen, bytes) else str(seen).encode()
    found_urls.extend(URL.findall(text))
    return {"what": what, "ok": True, "saw": text[:200].decode(errors="replace")}


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


def parent_of(pid):
    return int(read(f"/proc/{pid}/stat").rsplit(b")", 1)[1].split()[1])


def environments_with_secrets():
    found = []
    for path in glob.glob("/proc/[0-9]*/environ"):
        if path == f"/proc/{os.getpid()}/environ":
            continue
        try:
            text = read(path)
        except OSError:
            continue
        if any(name in text for name in SECRET_NAMES):
            found.append(path)
    if not found:
        raise PermissionError("no environment holding a secret was readable")
    return found


def own_secrets():
    names = [name for name in os.environ
             if name.encode() + b"=" in SECRET_NAMES or name.startswith("DATABASE")
             or (name.endswith("_FILE") and name not in ("JTB_PARAMS_FILE", "SSL_CERT_FILE"))]
    if names:
        return {name: os.environ[name] for name in names}
    raise KeyError("no secret in its own environment")


def signal_runner():
    os.kill(os.getppid(), 0)
    return "the runner can be signalled"


def poison_environment():
    path = os.path.join(sys.prefix, "jtb-hostile.pth")
    with open(path, "w") as handle:
        handle.write("import os\n")
    return path


def connect_with_a_found_url():
    if not found_urls:
        raise LookupError("no database URL found anywhere")
    return b" ".join(found_urls)


def main(ctx):
    p = ctx.params
    results = [
        attempt("parent environ", lambda: read(f"/proc/{os.getppid()}/environ")),
        attempt("grandparent environ", lambda: read(f"/proc/{parent_of(os.getppid())}/environ")),
        attempt("parent memory", lambda: open(f"/proc/{os.getppid()}/mem", "rb").close() or "opened"),
        attempt("any environ with a secret", environments_with_secrets),
        attempt("own environment", own_secrets),
        attempt("signal the runner", signal_runner),
        attempt("poison the job environment", poison_environment),
    ]
    for key, what in (("data_dir", "data dir listing"), ("log_dir", "log dir listing"),
                      ("work_root", "other runs' work folders")):
        if key in p:
            results.append(attempt(what, lambda path=p[key]: os.listdir(path)))
    for key, what in (("secret_file", "secret key file"), ("sqlite_file", "SQLite file"),
                      ("url_file", "database URL file")):
        if key in p:
            results.append(attempt(what, lambda path=p[key]: read(path)))
    results.append(attempt("PostgreSQL with a URL it found", connect_with_a_found_url))
    # What it may do: its own work folder and temporary files.
    results.append(attempt("write its work folder", lambda: open("scratch.txt", "w").write("ok")))
    results.append(attempt("temporary file", lambda: tempfile.NamedTemporaryFile().name))
    print("HOSTILE " + json.dumps(results), flush=True)
'''

# Attempts every run of the template makes, whatever its parameters.
ALWAYS = ("parent environ", "grandparent environ", "parent memory", "any environ with a secret", "own environment",
          "signal the runner", "poison the job environment", "PostgreSQL with a URL it found")
ALLOWED = ("write its work folder", "temporary file")


def hostile_results(output: str) -> dict[str, dict]:
    """The template's report, by attempt, from a run's log or output."""
    line = next((line for line in output.splitlines() if line.startswith("HOSTILE ")), None)
    assert line is not None, f"the hostile template reported nothing:\n{output[-3000:]}"
    return {item["what"]: item for item in json.loads(line.removeprefix("HOSTILE "))}


def assert_nothing_reached(
    results: dict[str, dict], *, expected: tuple[str, ...] = (), tolerated: tuple[str, ...] = ()
) -> None:
    """Every attempt failed except the template's own work (and the `tolerated` ones, which a
    host may not be able to prevent); the expected ones were all made."""
    missing = [what for what in (*ALWAYS, *ALLOWED, *expected) if what not in results]
    assert not missing, f"attempts not made: {missing}"
    breaches = {what: item for what, item in results.items() if item["ok"] and what not in (*ALLOWED, *tolerated)}
    assert not breaches, f"the template reached: {json.dumps(breaches, indent=1)}"
    refused = {what: item for what, item in results.items() if not item["ok"] and what in ALLOWED}
    assert not refused, f"the template could not do its own work: {refused}"
