"""A fake runtime around a processor, with faults on demand, over real raw-mode rocksdict DBs.

In the spirit of Bytewax's TestingSource/TestingSink: input records come from in-memory logs,
every Kafka write (output sends, changelog record batches) lands in an in-memory log per
(topic, partition), the group's commits are recorded, and each partition's state lives in a real
`rocksdict.Rdict` on disk. `Faults` makes the Nth call of one kind fail:

    "output"     `producer.send(topic, value, key=)`         (the processor's `joined`/dead letters)
    "changelog"  `producer.send_batch(batch, topic, partition=)`  (checkpoint step 2)
    "write"      `db.write(WriteBatch)` of a partition's DB        (checkpoint step 3)
    "commit"     `commit(offsets)`                                 (checkpoint step 4)

A Kafka fault is raised by the call itself (`at="call"`), or by the future it returned
(`at="ack"`), with the records appended or not (`written`: the broker has them, the ack was lost).
`recover` rebuilds a DB from the changelog the way Faust's recovery does.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rocksdict import Options, Rdict, WriteBatch

from agents.continuity import RawRecord
from tables.checkpoint import FAUST_OFFSET_KEY

Entry = tuple[bytes | None, bytes | None]  # (key, value) of one record in a log


@dataclass(frozen=True)
class Ack:
    """What a send's future resolves to (aiokafka's RecordMetadata: the base offset)."""

    offset: int


@dataclass
class Fault:
    kind: str
    call: int  # the call of `kind` that fails, counted from 1 since the world began
    error: BaseException
    at: str = "call"  # "call": raised by the call; "ack": the future it returned fails
    written: bool = False  # with at="ack": the records reached the log, only the ack was lost
    fired: bool = False


class Faults:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._armed: list[Fault] = []

    def arm(
        self,
        kind: str,
        error: BaseException,
        *,
        nth: int = 1,
        at: str = "call",
        written: bool = False,
    ) -> Fault:
        """Fail the nth call of `kind` from now on."""
        assert at in ("call", "ack") and not (written and at == "call")
        fault = Fault(kind, self.calls[kind] + nth, error, at, written)
        self._armed.append(fault)
        return fault

    def take(self, kind: str) -> Fault | None:
        """Count one call of `kind`; the fault armed for it, if any."""
        self.calls[kind] += 1
        for fault in self._armed:
            if fault.kind == kind and fault.call == self.calls[kind]:
                self._armed.remove(fault)
                fault.fired = True
                return fault
        return None


class FakeBatch:
    """aiokafka's BatchBuilder: `append` returns None once the batch is full."""

    def __init__(self, limit: int | None) -> None:
        self.records: list[Entry] = []
        self._limit = limit

    def append(self, *, key: bytes | None, value: bytes | None, timestamp: int | None) -> Any:
        if self._limit is not None and len(self.records) >= self._limit:
            return None
        # copied, as aiokafka's builder copies into its buffer (a value need not outlive it)
        self.records.append((key, None if value is None else bytes(memoryview(value))))
        return object()


class FakeKafka:
    """The producer (`producer()` returns it) and every log it writes to."""

    def __init__(self, faults: Faults, partitions: int, batch_limit: int | None = None) -> None:
        self.faults = faults
        self.partitions = partitions
        self.batch_limit = batch_limit
        self.logs: defaultdict[tuple[str, int], list[Entry]] = defaultdict(list)

    def producer(self) -> FakeKafka:
        return self

    def create_batch(self) -> FakeBatch:
        return FakeBatch(self.batch_limit)

    async def send_batch(
        self, batch: FakeBatch, topic: str, *, partition: int
    ) -> asyncio.Future[Ack]:
        return self._deliver(self.faults.take("changelog"), topic, partition, batch.records)

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
    ) -> asyncio.Future[Ack]:
        if partition is None:
            partition = zlib.crc32(key or b"") % self.partitions
        return self._deliver(self.faults.take("output"), topic, partition, [(key, value)])

    def _deliver(
        self, fault: Fault | None, topic: str, partition: int, records: list[Entry]
    ) -> asyncio.Future[Ack]:
        if fault is not None and fault.at == "call":
            raise fault.error
        log = self.logs[(topic, partition)]
        base = len(log)
        if fault is None or fault.written:
            log.extend(records)
        future: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        if fault is None:
            future.set_result(Ack(base))
        else:
            future.set_exception(fault.error)
        return future

    def values(self, topic: str) -> Iterator[tuple[int, bytes | None]]:
        """(partition, value) of every record on `topic`, partition by partition."""
        for (name, partition), log in sorted(self.logs.items()):
            if name == topic:
                for _, value in log:
                    yield partition, value


class FakeGroup:
    """The consumer group's committed offsets (next offset to read per input partition)."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.committed: dict[tuple[str, int], int] = {}
        self.commits: list[dict[tuple[str, int], int]] = []

    async def commit(self, offsets: dict[tuple[str, int], int]) -> bool:
        fault = self.faults.take("commit")
        if fault is not None:
            raise fault.error
        self.committed.update(offsets)
        self.commits.append(dict(offsets))
        return True


class LocalDB:
    """A partition's real Rdict, whose `write` can be made to fail (`Faults`, kind "write")."""

    def __init__(self, db: Rdict, faults: Faults) -> None:
        self.raw = db
        self._faults = faults

    def write(self, batch: WriteBatch, options: Any = None) -> None:
        fault = self._faults.take("write")
        if fault is not None:
            raise fault.error
        self.raw.write(batch, options)

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self.raw.get(key)
        return value

    def items(self, *, from_key: bytes | None = None) -> Any:
        return self.raw.items(from_key=from_key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


class Disk:
    """One raw-mode Rdict per partition under `root`, as Faust's rocksdict store opens them.

    `restart()` closes every handle (a process that died; the files stay and are reopened on
    the next `db_for`); `lose()` also moves to empty directories (a replacement on a new disk).
    """

    def __init__(self, root: Path, faults: Faults) -> None:
        self.root = root
        self.faults = faults
        self.generation = 0
        self._open: dict[int, LocalDB] = {}

    def db_for(self, partition: int) -> LocalDB:
        db = self._open.get(partition)
        if db is None:
            path = self.root / f"disk{self.generation}" / f"p{partition}"
            path.parent.mkdir(parents=True, exist_ok=True)
            options = Options(raw_mode=True)
            options.create_if_missing(True)
            db = self._open[partition] = LocalDB(Rdict(str(path), options), self.faults)
        return db

    def restart(self) -> None:
        for db in self._open.values():
            db.raw.close()
        self._open.clear()

    def lose(self) -> None:
        self.restart()
        self.generation += 1

    def contents(self, partition: int) -> dict[bytes, bytes]:
        items: Any = self.db_for(partition).raw.items()
        return dict(items)


def recover(disk: Disk, kafka: FakeKafka, changelog: str, partitions: set[int]) -> None:
    """Faust's changelog recovery: apply what follows the persisted offset, in order.

    A record with value None deletes its key; the persisted offset becomes the last applied.
    """
    for partition in sorted(partitions):
        db = disk.db_for(partition)
        persisted = db.raw.get(FAUST_OFFSET_KEY)
        start = 0 if persisted is None else int(persisted) + 1
        log = kafka.logs[(changelog, partition)]
        if start >= len(log):
            continue
        batch = WriteBatch(raw_mode=True)
        for key, value in log[start:]:
            assert key is not None
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        db.raw.write(batch)
        db.raw.put(FAUST_OFFSET_KEY, str(len(log) - 1).encode())


@dataclass
class Inputs:
    """The input topics' logs: what the feed replays and what continuity reads holes from."""

    logs: dict[tuple[str, int], list[RawRecord]] = field(default_factory=dict)

    def append(self, topic: str, partition: int, key: bytes, value: bytes) -> RawRecord:
        log = self.logs.setdefault((topic, partition), [])
        record = RawRecord(topic, partition, len(log), key, value)
        log.append(record)
        return record

    async def read(self, topic: str, partition: int, a: int, b: int) -> AsyncIterator[RawRecord]:
        for record in self.logs.get((topic, partition), [])[a:b]:
            yield record

    async def earliest(self, topic: str, partition: int) -> int:
        return 0
