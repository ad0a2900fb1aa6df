"""A demo process's log tail is what its latest start wrote (logs are appended across runs)."""

from __future__ import annotations

from pathlib import Path

from streams.demo_process import START_MARK, DemoProcess


def test_log_tail_is_the_latest_start_only(tmp_path: Path) -> None:
    log = tmp_path / "retrain-agent.log"
    process = DemoProcess("retrain agent", ["retrain-agent"], {}, log, None)
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
