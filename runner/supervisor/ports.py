"""Is the web server's port free, and if not, who holds it."""

from __future__ import annotations

import socket
import time

import psutil


def port_is_free(bind: str, port: int) -> bool:
    # SO_REUSEADDR as gunicorn sets it: a socket in TIME_WAIT from the last run does not count.
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((bind, port))
        except OSError:
            return False
    return True


def port_holders(port: int) -> list[str]:
    """`pid (command)` of processes listening on the port, as far as this user may see them."""
    holders = []
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return holders
    for connection in connections:
        if connection.status == psutil.CONN_LISTEN and connection.laddr and connection.laddr.port == port:
            try:
                command = " ".join(psutil.Process(connection.pid).cmdline())[:120] if connection.pid else "?"
            except psutil.NoSuchProcess:
                continue
            holders.append(f"{connection.pid} ({command})")
    return sorted(set(holders))


def port_wait_free(bind: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if port_is_free(bind, port):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
