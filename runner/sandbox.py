"""A Landlock sandbox for the template's interpreter: what a same-user template cannot open.

Where the runner is not root (the container image's `jtb` user, a worker run by a normal user),
the template runs as the runner's own user, and file modes alone would let it read the data
folder, the secret key, the SQLite database and the files holding the runner's credentials, and
write the control plane's code. Landlock (Linux 5.13+, no privileges needed) lets the runner take
those away from the child for good, between fork and exec:

- **read** (and execute): everywhere except the control plane's paths (runner/isolation.py's
  `control_plane_paths`), then explicitly the template's interpreter and its own work folder;
- **write** (create, delete, rename, truncate): only its work folder, the shared temporary
  folders and /dev;
- **scope** (ABI 6+): no signals to processes outside the sandbox (the runner, the worker) and no
  abstract UNIX sockets outside it.

Landlock only allows: a path is denied by granting its siblings instead (the walk below lists the
directories on the way to each denied path). Entries created in those directories after the walk
are not reachable by the template; symbolic links are never followed by the walk, so a link put in
/tmp cannot smuggle a denied path in. The kernel also denies a sandboxed process ptrace (and so
/proc/<pid>/environ and mem) of any process outside its sandbox.

Everything is prepared before fork (`Sandbox.prepare`); the child only makes two calls
(`Sandbox.enter`). Without Landlock (older kernel, seccomp filter) `prepare` returns None and the
runner says so in the run's log.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys
from collections.abc import Iterable
from pathlib import Path

SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446  # the same on every architecture
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR, MAKE_REG = 1 << 4, 1 << 5, 1 << 6, 1 << 7, 1 << 8
MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15  # ABI 2, 3, 5
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6

READ = EXECUTE | READ_FILE | READ_DIR
# Rights that apply to a file (not a directory): a rule on a file may only grant these.
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
# Where the template may write besides its work folder.
SHARED_WRITABLE = ("/tmp", "/var/tmp", "/dev")


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 when there is none (or not Linux)."""
    if not sys.platform.startswith("linux"):
        return 0
    version = _libc().syscall(SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(CREATE_RULESET_VERSION))
    return max(version, 0)


def _handled_rights(abi: int) -> int:
    rights = (1 << 13) - 1  # ABI 1: EXECUTE … MAKE_SYM
    if abi >= 2:
        rights |= REFER
    if abi >= 3:
        rights |= TRUNCATE
    if abi >= 5:
        rights |= IOCTL_DEV
    return rights


def _beneath(path: str, ancestor: str) -> bool:
    ancestor = ancestor.rstrip("/")
    return path == ancestor or path.startswith(ancestor + "/")


def grants_except(root: Path, rights: int, denied: list[Path]) -> list[tuple[Path, int]]:
    """(path, rights) rules that reach everything under `root` except the `denied` paths."""
    # On strings: this runs for every entry beside a denied path, before each template starts.
    denied_names = [str(path) for path in denied]
    return [(Path(path), granted) for path, granted in _grants_except(str(root), rights, denied_names)]


def _grants_except(root: str, rights: int, denied: list[str]) -> list[tuple[str, int]]:
    if root in denied:
        return []
    if not any(_beneath(path, root) for path in denied):
        return [(root, rights)]
    # A denied path lies beneath: grant each entry beside the way to it instead.
    rules = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return []
    for entry in entries:
        if entry.is_symlink():
            continue
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            continue
        if is_dir:
            rules.extend(_grants_except(entry.path, rights, denied))
        elif entry.path not in denied:
            rules.append((entry.path, rights & FILE_RIGHTS))
    return rules


def sandbox_rules(
    *, denied: Iterable[Path], readable: Iterable[Path], writable: Iterable[Path], abi: int
) -> list[tuple[Path, int]]:
    handled = _handled_rights(abi)
    read = READ | (IOCTL_DEV if abi >= 5 else 0)
    write = handled & ~READ
    denied = sorted({Path(os.path.realpath(path)) for path in denied})
    rules = grants_except(Path("/"), read, denied)
    rules += [(Path(os.path.realpath(path)), read) for path in readable]
    for path in writable:
        rules += grants_except(Path(os.path.realpath(path)), read | write, denied)
    return rules


class Sandbox:
    """A prepared Landlock ruleset; `enter` runs in the child between fork and exec."""

    def __init__(self, ruleset_fd: int, abi: int) -> None:
        self.ruleset_fd = ruleset_fd
        self.abi = abi
        libc = _libc()
        # Looked up now: after fork the child calls only these.
        self._prctl, self._syscall = libc.prctl, libc.syscall

    @classmethod
    def prepare(cls, *, denied: Iterable[Path], readable: Iterable[Path], writable: Iterable[Path]) -> Sandbox | None:
        abi = landlock_abi()
        if abi < 1:
            return None
        libc = _libc()
        handled = _handled_rights(abi)
        scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
        # struct landlock_ruleset_attr grew with the ABI: fs (1), net (4), scoped (6).
        if abi >= 6:
            attr = struct.pack("=QQQ", handled, 0, scoped)
        elif abi >= 4:
            attr = struct.pack("=QQ", handled, 0)
        else:
            attr = struct.pack("=Q", handled)
        buffer = ctypes.create_string_buffer(attr, len(attr))
        fd = libc.syscall(SYS_CREATE_RULESET, buffer, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
        if fd < 0:
            return None
        try:
            for path, rights in sandbox_rules(denied=denied, readable=readable, writable=writable, abi=abi):
                _add_rule(libc, fd, path, rights)
        except BaseException:
            os.close(fd)
            raise
        return cls(fd, abi)

    def enter(self) -> None:
        """In the child: no new privileges (Landlock's condition), then the ruleset, for good."""
        if self._prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
        if self._syscall(SYS_RESTRICT_SELF, ctypes.c_int(self.ruleset_fd), ctypes.c_uint32(0)) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")

    def close(self) -> None:
        os.close(self.ruleset_fd)


def _add_rule(libc, ruleset_fd: int, path: Path, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # gone meanwhile, or not ours to see: nothing to grant
    try:
        if not os.path.isdir(path):
            rights &= FILE_RIGHTS
        # struct landlock_path_beneath_attr is packed: u64 allowed_access, s32 parent_fd.
        attr = ctypes.create_string_buffer(struct.pack("=Qi", rights, fd), 12)
        # A rule the kernel refuses (an odd file system) is left out: the template then reaches
        # less, never more, and the run still starts.
        libc.syscall(SYS_ADD_RULE, ctypes.c_int(ruleset_fd), ctypes.c_int(RULE_PATH_BENEATH), attr, ctypes.c_uint32(0))
    finally:
        os.close(fd)
