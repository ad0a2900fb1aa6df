"""The README lists every setting and opens with the two commands."""

from __future__ import annotations

from pathlib import Path

from config.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    missing = [n for n in Settings.model_fields if f"`RUNWAY_{n.upper()}`" not in README]
    assert missing == []


def test_the_two_commands_come_first() -> None:
    head = "\n".join(README.splitlines()[:20])
    assert "make demo" in head and "make test" in head
