"""The restore hook on Faust's store (`restore_before_open`): which newly assigned partitions it
restores before Faust opens them, and that a failed restore falls back to the changelog."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NamedTuple

from streams.state_snapshots import restore_before_open


class TP(NamedTuple):
    topic: str
    partition: int


class FakeStore:
    """The parts of Faust's rocksdb Store the hook uses."""

    def __init__(self, root: Path, standbys: set[TP], open_dbs: set[int]) -> None:
        self.root = root
        self._dbs = dict.fromkeys(open_dbs)
        self.assigned: list[set[Any]] = []
        standby = standbys

        class Assignor:
            def assigned_standbys(self) -> set[TP]:
                return standby

        class App:
            assignor = Assignor()

        self.app = App()

    def partition_path(self, partition: int) -> Path:
        return self.root / f"join-{partition}.db"

    async def assign_partitions(self, table: Any, tps: set[Any], generation_id: int = 0) -> None:
        self.assigned.append(set(tps))


class FakeTable:
    class changelog_topic:  # noqa: N801 - Faust's attribute name
        topics = frozenset({"app-join-changelog"})


def test_only_missing_active_partitions_are_restored_before_faust_opens_them(
    tmp_path: Path,
) -> None:
    (tmp_path / "join-1.db").mkdir()  # on disk already: kept
    store = FakeStore(tmp_path, standbys={TP("app-join-changelog", 2)}, open_dbs={3})
    asked: list[tuple[str, int, Path]] = []
    in_group = False
    spans = 0

    @contextlib.asynccontextmanager
    async def kept_in_group() -> AsyncIterator[None]:
        nonlocal in_group, spans
        in_group = True
        spans += 1
        try:
            yield
        finally:
            in_group = False

    def restore(table: str, partition: int, path: Path) -> None:
        assert in_group, "a download outside the heartbeats"
        asked.append((table, partition, path))
        if partition == 4:
            raise OSError("S3 unreachable")  # falls back to the changelog
        return None

    restore_before_open(store, restore, "join", kept_in_group)
    tps = {TP("app-join-changelog", p) for p in range(6)} | {
        TP("app-predictions", 0)
    }  # not this table's changelog
    asyncio.run(store.assign_partitions(FakeTable(), tps, 7))

    assert asked == [
        ("join", 0, tmp_path / "join-0.db"),
        ("join", 4, tmp_path / "join-4.db"),
    ]  # 1 on disk, 2 a standby, 3 open already; after 4's error, 5 goes to the changelog
    assert store.assigned == [tps]  # and Faust opens them all
    assert not in_group
    assert spans == 1  # one span over all the downloads, not one each
