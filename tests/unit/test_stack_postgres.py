"""Can PostgreSQL's system user reach the stack dir? (It runs as that user under root.)"""

from __future__ import annotations

from pathlib import Path

from stack.postgres import traversable_by


def test_a_private_directory_is_not_traversable(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    assert not traversable_by(private / "data", "nobody")


def test_an_open_directory_is_traversable(tmp_path: Path) -> None:
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o755)
    open_dir.chmod(0o755)
    # tmp_path's parents may be private: judge from the open directory down only
    assert traversable_by(Path("/usr/share"), "nobody")
    assert traversable_by(open_dir, "nobody") == traversable_by(tmp_path, "nobody")
