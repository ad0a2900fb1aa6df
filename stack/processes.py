"""Starting, watching and stopping subprocesses: the stack's services and `runway` children.

Two kinds, one module:

- **The stack's services** (Kafka, Redis, PostgreSQL, S3), by pid file: `spawn`, `running`,
  `stop`. A pid file holds the pid and the process's start time (from /proc), so a recycled pid
  is never mistaken for ours. They run in their own session (group) and outlive the command that
  started them; `stop` signals the group, waits with a deadline, then kills.
- **`runway` children** a command owns (`RunwayProcess`; `WorkerProcess` for `runway worker`):
  the demo's workers and services, the autoscaler's workers, the integration tests' workers.
  Each runs in its own session (the terminal's Ctrl-C is the owner's, which then SIGTERMs them),
  logs to its own file, gets SIGTERM from the kernel if its owner dies (Linux parent-death
  signal), and is stopped with SIGTERM and a wait, SIGKILL after `STOP_TIMEOUT_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from config.settings import Settings, worker_environment
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


_HANDED_OUT: set[int] = set()


def free_port(host: str = HOST) -> int:
    """A port nothing listens on now (the kernel's pick), for a process started next.

    The kernel may pick a port it picked a moment ago, once that socket is closed: two calls in a
    row could then give two services the same port, and the one started second would fail to bind
    while the first answers its requests. So a port is never handed out twice by one process.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


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


# -- `runway` children: owned by the command that starts them ----------------------------------

STOP_TIMEOUT_S = 30.0
START_MARK = "--- started "  # a line written to a child's log before each start
PR_SET_PDEATHSIG = 1


class ProcessError(Exception):
    """Something the owner of the processes cannot go on without; the message is for the user."""


def _parent_death_signal() -> Callable[[], None] | None:
    """A `preexec_fn` (Linux) that has the kernel SIGTERM the child when its owner dies.

    Called from the thread that starts the children (the event loop's): the signal follows
    that thread. libc is loaded here, in the parent; the child only makes the one call.
    """
    if sys.platform != "linux":
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))

    return preexec


def runway_executable() -> list[str]:
    beside = Path(sys.executable).parent / "runway"
    return [str(beside)] if beside.exists() else ["runway"]


class RunwayProcess:
    """`runway <args>` as a child process; `health_url` (JSON) says when it is ready."""

    stop_timeout_s = STOP_TIMEOUT_S  # SIGKILL when still running this long after SIGTERM

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        env: dict[str, str],
        log_path: Path,
        health_url: str | None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.args = list(args)
        self.env = env
        self.log_path = log_path
        self.health_url = health_url
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self.killed = ""  # why the owner sent SIGKILL, if it did

    def start(self) -> Self:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"{START_MARK}{stamp}: runway {' '.join(self.args)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [*runway_executable(), *self.args],
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # the terminal's Ctrl-C is ours; we SIGTERM them
                preexec_fn=_parent_death_signal(),
            )
        return self

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def health(self) -> dict[str, Any] | None:
        """The /health JSON when it answers 200 (`{}` for a process without one), else None."""
        if self.health_url is None:
            return {} if self.alive() else None
        try:
            with urllib.request.urlopen(self.health_url, timeout=1) as response:
                if response.status != 200:
                    return None
                body: dict[str, Any] = json.loads(response.read())
                return body
        except (OSError, ValueError):
            return None

    def log_tail(self, lines: int = 30) -> str:
        """The last lines this start wrote (the log is appended to across starts)."""
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        starts = [i for i, line in enumerate(text) if line.startswith(START_MARK)]
        mine = text[starts[-1] + 1 :] if starts else text
        return "\n".join(mine[-lines:]) or "(nothing logged)"

    def kill(self, why: str) -> None:
        if self.process is not None and self.process.poll() is None:
            self.killed = why
            self.process.kill()

    def stop(self) -> str:
        """SIGTERM and wait (SIGKILL after `stop_timeout_s`); how it ended, in words."""
        if self.process is None:
            return "not started"
        termed = False
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            termed = True
            try:
                self.process.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.kill(f"still running {self.stop_timeout_s:.0f}s after SIGTERM")
                self.process.wait(timeout=10)
        code = self.process.returncode
        if code >= 0:
            return f"exit {code}"
        name = signal.Signals(-code).name
        if self.killed:
            return f"{name} ({self.killed}; see {self.log_path})"
        if termed and code == -signal.SIGTERM:
            return "SIGTERM (before it could handle it)"
        return f"ended by {name}, not sent by the demo (see {self.log_path})"

    def died(self) -> ProcessError:
        code = self.process.returncode if self.process else None
        return ProcessError(
            f"{self.name} (pid {self.pid}) exited with code {code}; "
            f"the end of {self.log_path}:\n{self.log_tail()}"
        )


class WorkerProcess(RunwayProcess):
    """`runway worker` loading exactly `settings`; ready when its web server answers /health."""

    def __init__(
        self, settings: Settings, log_path: Path, index: int = 0, cwd: Path | None = None
    ) -> None:
        super().__init__(
            f"worker {index}",
            ["worker", "-l", "info"],
            worker_environment(settings),
            log_path,
            f"http://{settings.web_host}:{settings.web_port}/health",
            cwd,
        )
        self.index = index
        self.settings = settings

    @classmethod
    def in_slot(cls, settings: Settings, run_dir: Path, index: int) -> Self:
        """Slot `index` of a group run from `run_dir`: its own data directory
        `run_dir/worker-<i>`, web port `web_port + i` and log `run_dir/worker-<i>.log`;
        everything else is the group's (the demo's workers and the autoscaler's alike)."""
        slot = settings.model_copy(
            update={"datadir": run_dir / f"worker-{index}", "web_port": settings.web_port + index}
        )
        return cls(slot, run_dir / f"worker-{index}.log", index)


async def wait_healthy(
    processes: Sequence[RunwayProcess], timeout_s: float, stop: asyncio.Event | None = None
) -> None:
    """Until every process answers its /health (or `stop` is set); one that dies is an error."""
    deadline = time.monotonic() + timeout_s
    waiting = list(processes)
    while waiting and not (stop is not None and stop.is_set()):
        for process in list(waiting):
            if not process.alive():
                raise process.died()
            if await asyncio.to_thread(process.health) is not None:
                waiting.remove(process)
        if waiting and time.monotonic() > deadline:
            names = ", ".join(str(p.log_path) for p in waiting)
            raise ProcessError(f"no /health answer within {timeout_s:.0f}s; see {names}")
        if waiting:
            await asyncio.sleep(0.25)
