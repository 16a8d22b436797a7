"""The embedded default's signing key: `python -m jobtarget_batch.secret_key_file` writes
`<data dir>/secret_key` (mode 0600) when it is missing, before anything else starts.

`make run` calls it first, so a first start on a laptop works without SECRET_KEY; the settings
only read the file and never create it, so a production process without SECRET_KEY refuses to
start instead of inventing a key of its own. Pure code: it runs before Django's settings load.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from jobtarget_batch.env import env_str

BASE_DIR = Path(__file__).resolve().parent.parent
KEY_FILE_NAME = "secret_key"


def data_dir() -> Path:
    return Path(env_str("JTB_DATA_DIR", str(BASE_DIR / "var"))).resolve()


def private_file_write(path: Path, text: str) -> None:
    """Create `path` readable by its owner only (0600), whatever the umask; never overwrite."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def secret_key_file_ensure(*, directory: Path | None = None) -> Path:
    directory = directory or data_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / KEY_FILE_NAME
    if not path.exists():
        with contextlib.suppress(FileExistsError):  # another process wrote it first: keep theirs
            private_file_write(path, secrets.token_urlsafe(50))
    path.chmod(0o600)
    return path


if __name__ == "__main__":
    print(f"Signing key: {secret_key_file_ensure()}")
