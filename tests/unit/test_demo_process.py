"""A `runway` child's log tail is what its latest start wrote (logs are appended across runs)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from config.settings import load_settings
from stack import processes
from stack.clock import Deadline, wait_until_sync
from stack.processes import START_MARK, RunwayProcess, WorkerProcess


def test_log_tail_is_the_latest_start_only(tmp_path: Path) -> None:
    log = tmp_path / "retrain-agent.log"
    process = RunwayProcess("retrain agent", ["retrain-agent"], {}, log, None)
    assert process.log_tail() == "(no log)"
    log.write_text("old run\n")
    assert process.log_tail() == "old run"  # written before marks existed
    log.write_text(
        f"{START_MARK}2026-11-27 19:00:00: runway retrain-agent\nold 1\nold 2\n"
        f"{START_MARK}2026-11-27 19:30:00: runway retrain-agent\nnew 1\nnew 2\nnew 3\n"
    )
    assert process.log_tail() == "new 1\nnew 2\nnew 3"
    assert process.log_tail(lines=2) == "new 2\nnew 3"
    log.write_text(f"old\n{START_MARK}2026-11-27 19:30:00: runway retrain-agent\n")
    assert process.log_tail() == "(nothing logged)"


def python_child(monkeypatch: pytest.MonkeyPatch, code: str) -> None:
    """`runway <args>` becomes `python -c <code> <args>`: the process handling, no Runway."""
    monkeypatch.setattr(processes, "runway_executable", lambda: [sys.executable, "-c", code])


def test_stop_is_sigterm_then_a_wait(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    python_child(monkeypatch, "import time; print('up', flush=True); time.sleep(60)")
    process = RunwayProcess("sleeper", ["sleep"], {}, tmp_path / "sleeper.log", None)
    assert process.stop() == "not started"
    assert process.start() is process
    assert process.alive() and process.health() == {}
    assert process.stop() == "SIGTERM (before it could handle it)"
    assert not process.alive() and process.health() is None
    assert process.process is not None and process.process.returncode == -signal.SIGTERM


def test_stop_kills_what_ignores_sigterm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    python_child(monkeypatch, code)
    log = tmp_path / "stubborn.log"
    process = RunwayProcess("stubborn", ["stubborn"], {}, log, None)
    process.stop_timeout_s = 0.5
    process.start()
    wait_until_sync(lambda: "ready" in log.read_text(), Deadline(10.0))
    assert process.stop() == f"SIGKILL (still running 0s after SIGTERM; see {log})"
    assert process.log_tail() == "ready"


def test_a_worker_process_is_runway_worker_in_its_slot(tmp_path: Path) -> None:
    settings = load_settings().model_copy(update={"web_port": 7000})
    worker = WorkerProcess.in_slot(settings, tmp_path, 2)
    assert (worker.name, worker.index, worker.args) == ("worker 2", 2, ["worker", "-l", "info"])
    assert worker.settings.datadir == tmp_path / "worker-2"
    assert worker.log_path == tmp_path / "worker-2.log"
    assert worker.health_url == f"http://{settings.web_host}:7002/health"
    assert worker.env["RUNWAY_WEB_PORT"] == "7002"
