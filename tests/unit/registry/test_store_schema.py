"""Two processes creating the registry's schema at once: the loser of the race finds it made."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from registry import schema as t
from registry.store import Store, make_engine


def test_the_loser_of_a_schema_race_on_sqlite_checks_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race itself, replayed: the other process creates the tables between this one's
    check and its CREATE (SQLite then says `table ... already exists`)."""
    url = f"sqlite:///{tmp_path / 'r.sqlite3'}"
    store = Store(make_engine(url, 3.0))
    other = make_engine(url, 3.0)
    create_all = t.metadata.create_all
    calls = []

    def racing(bind: sa.Engine, checkfirst: bool = True) -> None:
        calls.append(checkfirst)
        if len(calls) == 1:
            create_all(other, checkfirst=True)  # the other process wins
            create_all(bind, checkfirst=False)  # ours, from its stale check: raises
        create_all(bind, checkfirst=checkfirst)

    monkeypatch.setattr(t.metadata, "create_all", racing)
    store.create_schema()
    assert len(calls) == 2
    assert set(t.metadata.tables) <= set(sa.inspect(store.write).get_table_names())


def test_two_stores_create_one_schema_at_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite3'}"
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def create() -> None:
        try:
            start.wait()
            Store(make_engine(url, 3.0)).create_schema()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_other_operational_errors_are_not_swallowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(make_engine(f"sqlite:///{tmp_path / 'r.sqlite3'}", 3.0))

    def broken(bind: sa.Engine, checkfirst: bool = True) -> None:
        raise sa.exc.OperationalError("CREATE TABLE", {}, Exception("disk I/O error"))

    monkeypatch.setattr(t.metadata, "create_all", broken)
    with pytest.raises(sa.exc.OperationalError, match="disk I/O error"):
        store.create_schema()
