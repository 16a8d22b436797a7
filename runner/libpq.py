"""A minimal PostgreSQL client over libpq through ctypes, for the container runner's claim.

The container runner must claim its run before it starts the template, and everything it loads
before that delays the job (bench/runner_startup.py: `container_vs_bare`). psycopg costs ~50 ms of
imports (its type system, adapters and errors) before its first statement; the claim needs two
statements with text parameters and text results. libpq is the library psycopg itself drives —
its binary wheel bundles it — so connecting, TLS and authentication behave exactly as they do for
Django. Anything unexpected raises LibpqError and the caller claims through Django instead.
"""

from __future__ import annotations

import ctypes
import glob
import importlib.util
from pathlib import Path

CONNECTION_OK = 0
PGRES_COMMAND_OK = 1
PGRES_TUPLES_OK = 2

_library: ctypes.CDLL | None = None


class LibpqError(Exception):
    """libpq could not be loaded, could not connect, or a statement failed."""


def _candidates() -> list[str]:
    """psycopg's bundled libpq first (the one Django uses here), then the system's."""
    found = []
    # find_spec on a top-level package locates it without importing it.
    spec = importlib.util.find_spec("psycopg_binary")
    if spec is not None and spec.origin:
        libs = Path(spec.origin).parent.parent / "psycopg_binary.libs"
        found.extend(sorted(glob.glob(str(libs / "libpq-*.so*"))))
    found.append("libpq.so.5")
    return found


def _load() -> ctypes.CDLL:
    global _library
    if _library is not None:
        return _library
    errors = []
    for candidate in _candidates():
        try:
            library = ctypes.CDLL(candidate)
            break
        except OSError as exc:
            errors.append(str(exc))
    else:
        raise LibpqError(f"libpq not found ({'; '.join(errors)})")
    pointer, text, number = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    texts = ctypes.POINTER(ctypes.c_char_p)
    signatures = {
        "PQconnectdbParams": (pointer, [texts, texts, number]),
        "PQstatus": (number, [pointer]),
        "PQerrorMessage": (text, [pointer]),
        "PQfinish": (None, [pointer]),
        "PQexecParams": (pointer, [pointer, text, number, pointer, texts, pointer, pointer, number]),
        "PQresultStatus": (number, [pointer]),
        "PQresultErrorMessage": (text, [pointer]),
        "PQntuples": (number, [pointer]),
        "PQnfields": (number, [pointer]),
        "PQgetisnull": (number, [pointer, number, number]),
        "PQgetvalue": (text, [pointer, number, number]),
        "PQcmdTuples": (text, [pointer]),
        "PQclear": (None, [pointer]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(library, name)
        function.restype, function.argtypes = restype, argtypes
    _library = library
    return library


def _texts(values: list[str | None]) -> ctypes.Array:
    return (ctypes.c_char_p * (len(values) + 1))(
        *[None if value is None else value.encode() for value in values], None
    )


class Connection:
    """One libpq connection in autocommit mode; `execute` sends text parameters written `%s`."""

    def __init__(self, **params: str | int | None) -> None:
        self._pq = _load()
        given = {key: str(value) for key, value in params.items() if value not in (None, "")}
        self._conn = self._pq.PQconnectdbParams(_texts(list(given)), _texts(list(given.values())), 0)
        if not self._conn:
            raise LibpqError("libpq could not allocate a connection")
        if self._pq.PQstatus(self._conn) != CONNECTION_OK:
            message = (self._pq.PQerrorMessage(self._conn) or b"").decode(errors="replace").strip()
            self.close()
            raise LibpqError(message or "connection failed")

    def execute(self, sql: str, params: list | tuple = ()) -> tuple[list[tuple[str | None, ...]], int]:
        """The rows (text values, None for NULL) and the number of rows the command affected."""
        values = [None if value is None else str(value) for value in params]
        pieces = sql.split("%s")
        if len(pieces) != len(values) + 1:
            raise LibpqError(f"{len(pieces) - 1} placeholders for {len(values)} parameters")
        numbered = "".join(f"{piece}${index}" for index, piece in enumerate(pieces[:-1], 1)) + pieces[-1]
        result = self._pq.PQexecParams(
            self._conn, numbered.encode(), len(values), None, _texts(values) if values else None, None, None, 0
        )
        if not result:
            raise LibpqError((self._pq.PQerrorMessage(self._conn) or b"").decode(errors="replace").strip())
        try:
            status = self._pq.PQresultStatus(result)
            if status not in (PGRES_COMMAND_OK, PGRES_TUPLES_OK):
                message = (self._pq.PQresultErrorMessage(result) or b"").decode(errors="replace").strip()
                raise LibpqError(message or f"statement failed with result status {status}")
            rows = [
                tuple(
                    None if self._pq.PQgetisnull(result, row, column)
                    else self._pq.PQgetvalue(result, row, column).decode()
                    for column in range(self._pq.PQnfields(result))
                )
                for row in range(self._pq.PQntuples(result))
            ]
            affected = self._pq.PQcmdTuples(result) or b""
            return rows, int(affected) if affected.isdigit() else 0
        finally:
            self._pq.PQclear(result)

    def close(self) -> None:
        if self._conn:
            self._pq.PQfinish(self._conn)
            self._conn = None

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
