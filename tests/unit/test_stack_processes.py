"""Pid files, process groups and ports, with real (tiny) processes."""

from __future__ import annotations

import os
import signal
import socket
import sys
from pathlib import Path

from stack import processes
from stack.clock import Deadline, wait_until_sync


def test_spawn_record_and_stop(tmp_path: Path) -> None:
    pid_file = tmp_path / "run" / "sleeper.pid"
    record = processes.spawn(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        pid_file=pid_file,
        out_file=tmp_path / "logs" / "sleeper.out",
    )
    assert processes.read_pid(pid_file) == record
    assert processes.running(pid_file) == record
    assert processes.stop(pid_file, grace_s=5) == record.pid
    assert processes.start_ticks(record.pid) is None
    assert not pid_file.exists()
    assert processes.stop(pid_file) is None


def test_a_process_ignoring_sigterm_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "stubborn.pid"
    code = (
        "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    out = tmp_path / "stubborn.out"
    record = processes.spawn([sys.executable, "-c", code], pid_file=pid_file, out_file=out)
    assert wait_until_sync(lambda: "ready" in out.read_text(), Deadline(10))
    assert processes.stop(pid_file, signal.SIGTERM, grace_s=0.5) == record.pid
    assert processes.start_ticks(record.pid) is None


def test_a_stale_pid_file_is_removed(tmp_path: Path) -> None:
    pid_file = tmp_path / "gone.pid"
    pid_file.write_text("999999999 1\n")
    assert processes.running(pid_file) is None
    assert not pid_file.exists()


def test_a_recycled_pid_is_not_ours(tmp_path: Path) -> None:
    pid_file = tmp_path / "me.pid"
    ticks = processes.start_ticks(os.getpid())
    assert ticks is not None
    pid_file.write_text(f"{os.getpid()} {ticks + 1}\n")
    assert processes.running(pid_file) is None


def test_port_free_sees_a_listener() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert not processes.port_free(port)
        assert processes.port_answers(port)
    assert processes.port_free(port)


def test_tail_of_a_missing_file_is_empty(tmp_path: Path) -> None:
    assert processes.tail(tmp_path / "nope.log") == ""
    log = tmp_path / "x.log"
    log.write_text("\n".join(str(i) for i in range(100)))
    assert processes.tail(log, lines=2) == "98\n99"


def test_free_port_never_hands_out_the_same_port_twice() -> None:
    """Two services given ports in a row must not meet on one (the kernel may repeat its pick)."""
    ports = [processes.free_port() for _ in range(400)]
    assert len(set(ports)) == len(ports)
