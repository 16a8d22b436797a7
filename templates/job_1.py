
import glob, json, os, re, signal, socket, sys, tempfile

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
