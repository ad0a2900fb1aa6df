"""The `runway` subprocesses a demo (or the autoscaler) owns: workers and services.

Each runs in its own session (the terminal's Ctrl-C is the demo's, which then SIGTERMs them),
logs to its own file, gets SIGTERM from the kernel if the demo itself dies (Linux parent-death
signal), and is stopped with SIGTERM and a wait, SIGKILL after `STOP_TIMEOUT_S`.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from config.settings import Settings, worker_environment

STOP_TIMEOUT_S = 30.0
START_MARK = "--- started "  # a line the demo writes to a log before each start
PR_SET_PDEATHSIG = 1


class DemoError(Exception):
    """Something the demo cannot go on without; the message is for the user."""


def _parent_death_signal() -> Callable[[], None] | None:
    """A `preexec_fn` (Linux) that has the kernel SIGTERM the child when the demo dies.

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


class DemoProcess:
    """`runway <args>` as a child process; `health_url` (JSON) says when it is ready."""

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        env: dict[str, str],
        log_path: Path,
        health_url: str | None,
    ) -> None:
        self.name = name
        self.args = list(args)
        self.env = env
        self.log_path = log_path
        self.health_url = health_url
        self.process: subprocess.Popen[bytes] | None = None
        self.killed = ""  # why the demo sent SIGKILL, if it did

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"{START_MARK}{stamp}: runway {' '.join(self.args)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [*runway_executable(), *self.args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # the terminal's Ctrl-C is ours; we SIGTERM them
                preexec_fn=_parent_death_signal(),
            )

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
        """SIGTERM and wait (SIGKILL after `STOP_TIMEOUT_S`); how it ended, in words."""
        if self.process is None:
            return "not started"
        termed = False
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            termed = True
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill(f"still running {STOP_TIMEOUT_S:.0f}s after SIGTERM")
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

    def died(self) -> DemoError:
        code = self.process.returncode if self.process else None
        return DemoError(
            f"{self.name} (pid {self.pid}) exited with code {code}; "
            f"the end of {self.log_path}:\n{self.log_tail()}"
        )


class DemoWorker(DemoProcess):
    """`runway worker` loading exactly `settings`; ready when its web server answers /health."""

    def __init__(self, index: int, settings: Settings, log_path: Path) -> None:
        super().__init__(
            f"worker {index}",
            ["worker", "-l", "info"],
            worker_environment(settings),
            log_path,
            f"http://{settings.web_host}:{settings.web_port}/health",
        )
        self.index = index
        self.settings = settings

    @classmethod
    def in_slot(cls, settings: Settings, run_dir: Path, index: int) -> DemoWorker:
        """Slot `index` of a group run from `run_dir`: its own data directory
        `run_dir/worker-<i>`, web port `web_port + i` and log `run_dir/worker-<i>.log`;
        everything else is the group's (the demo's workers and the autoscaler's alike)."""
        slot = settings.model_copy(
            update={"datadir": run_dir / f"worker-{index}", "web_port": settings.web_port + index}
        )
        return cls(index, slot, run_dir / f"worker-{index}.log")


async def wait_healthy(
    processes: Sequence[DemoProcess], timeout_s: float, stop: asyncio.Event | None = None
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
            raise DemoError(f"no /health answer within {timeout_s:.0f}s; see {names}")
        if waiting:
            await asyncio.sleep(0.25)
