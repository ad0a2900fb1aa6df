"""Starting, finding and stopping the stack's processes, by pid file.

A pid file holds the pid and the process's start time (from /proc), so a recycled pid is never
mistaken for ours. Processes run in their own session (group) and outlive the command that
started them; `stop` signals the group, waits with a deadline, then kills.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from stack.clock import Deadline, wait_until_sync
from stack.errors import PrerequisiteMissing
from stack.plan import HOST

# Children started by this Python process: polled (so reaped) instead of left as zombies.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class PidRecord:
    pid: int
    start_ticks: int


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has exited: it only waits for its parent
        return None
    return int(fields[19])


def is_alive(record: PidRecord) -> bool:
    child = _children.get(record.pid)
    if child is not None and child.poll() is not None:
        _children.pop(record.pid, None)
        return False
    return start_ticks(record.pid) == record.start_ticks


def read_pid(pid_file: Path) -> PidRecord | None:
    try:
        pid, ticks = pid_file.read_text().split()
        return PidRecord(int(pid), int(ticks))
    except (OSError, ValueError):
        return None


def running(pid_file: Path) -> PidRecord | None:
    """The live process a pid file names, or None (a stale pid file is removed)."""
    record = read_pid(pid_file)
    if record is None:
        return None
    if is_alive(record):
        return record
    pid_file.unlink(missing_ok=True)
    return None


def spawn(
    command: Sequence[str],
    *,
    pid_file: Path,
    out_file: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
) -> PidRecord:
    """Start a detached process writing stdout/stderr to `out_file`; record its pid."""
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    with out_file.open("ab") as out:
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            start_new_session=True,
            user=user,
            group=user,
            extra_groups=[] if user else None,
        )
    _children[process.pid] = process
    ticks = start_ticks(process.pid)
    record = PidRecord(process.pid, ticks if ticks is not None else -1)
    pid_file.write_text(f"{record.pid} {record.start_ticks}\n")
    return record


def exit_code(record: PidRecord) -> int | None:
    """The exit code of a process this Python process started, once it has exited."""
    child = _children.get(record.pid)
    return None if child is None else child.poll()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def stop(pid_file: Path, sig: signal.Signals = signal.SIGTERM, grace_s: float = 20.0) -> int | None:
    """Stop the process of `pid_file`: `sig`, wait up to `grace_s`, then SIGKILL; its pid."""
    record = running(pid_file)
    if record is None:
        return None
    _signal_group(record.pid, sig)
    if not wait_until_sync(lambda: not is_alive(record), Deadline(grace_s)):
        _signal_group(record.pid, signal.SIGKILL)
        if not wait_until_sync(lambda: not is_alive(record), Deadline(10.0)):
            raise RuntimeError(f"process {record.pid} survived SIGKILL")
    _children.pop(record.pid, None)
    pid_file.unlink(missing_ok=True)
    return record.pid


def port_free(port: int, host: str = HOST) -> bool:
    """True if nothing listens on host:port (so a service of ours can bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def free_port(host: str = HOST) -> int:
    """A port nothing listens on now (the kernel's pick), for a process started next."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_answers(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_program(program: str, hint: str) -> str:
    path = shutil.which(program)
    if path is None:
        raise PrerequisiteMissing(f"'{program}' is not installed: {hint}.")
    return path


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
