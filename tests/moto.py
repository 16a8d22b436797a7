"""A moto server on loopback, standing in for AWS in tests and benchmarks.

Tests get it through the `moto_server` fixture (see conftest.py); benchmarks call start_moto().
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoServer:
    def __init__(self, process: subprocess.Popen, url: str) -> None:
        self.process = process
        self.url = url

    def reset(self) -> None:
        """Forget every resource (between tests), keeping the Batch configuration."""
        _post(f"{self.url}/moto-api/reset", b"")
        configure_batch(self.url)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _post(url: str, body: bytes) -> None:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def configure_batch(url: str) -> None:
    # Without Docker here, moto's Batch must not try to start containers.
    _post(f"{url}/moto-api/config", json.dumps({"batch": {"use_docker": False}}).encode())


def start_moto(log_path: Path | None = None) -> MotoServer:
    port = free_port()
    env = {**os.environ, **FAKE_CREDENTIALS}
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    moto_bin = Path(sys.executable).with_name("moto_server")
    command = [str(moto_bin)] if moto_bin.exists() else [sys.executable, "-m", "moto.server"]
    process = subprocess.Popen([*command, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        raise RuntimeError("moto_server did not start within 30 s")
    configure_batch(url)
    return MotoServer(process, url)
