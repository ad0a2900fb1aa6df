"""Registry recovery on real databases: write, lose the primary, restore or promote, and find
every write older than the RPO.

One writer commits models one at a time and notes when each commit returned. Recovery must
bring back exactly a prefix of that sequence (nothing invented, nothing out of order), and every
write that returned longer than the bound before the failure must be in it. The measured RPO is
the age, at the failure, of the oldest write lost (0 when none was).
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from config.settings import Settings
from registry import backup
from registry.records import ModelIn
from registry.standby import promote, replication, standby_dsn
from registry.store import Store, make_engine
from stack import api, processes
from stack import standby as local_standby
from stack.plan import Layout, local_s3_credentials
from stack.postgres import PostgresService
from stack.processes import free_port
from tests.integration.registry_support import own_settings, own_stack_dir  # noqa: F401

SEED_RPO_S = 300.0


@dataclass
class Writer:
    """Commits model w-000000, w-000001, ... until stopped or refused; `done[i]` is when the
    i-th commit returned (time.time())."""

    store: Store
    done: list[float] = field(default_factory=list)
    error: BaseException | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    @staticmethod
    def name(i: int) -> str:
        return f"w-{i:06d}"

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            try:
                self.store.upsert_model(ModelIn(model_id=self.name(i)))
            except Exception as exc:  # noqa: BLE001 - the primary's failure ends the writes
                self.error = exc
                return
            self.done.append(time.time())
            i += 1
            self.stop.wait(0.01)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        return thread


@dataclass(frozen=True)
class Outcome:
    written: int
    recovered: int
    rpo_s: float  # age at the failure of the oldest lost write; 0 when nothing was lost


def judge(writer: Writer, recovered: set[str], failed_at: float, bound_s: float) -> Outcome:
    count = len(recovered)
    assert recovered == {Writer.name(i) for i in range(count)}, "not a prefix of the writes"
    assert count <= len(writer.done) + 1  # at most the one in flight at the failure
    lost = writer.done[count:]
    rpo = failed_at - lost[0] if lost else 0.0
    # every write that returned before failed_at - bound is there
    assert all(t > failed_at - bound_s for t in lost), (rpo, bound_s)
    return Outcome(len(writer.done), count, rpo)


async def wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def model_ids(dsn: str) -> set[str]:
    store = Store(make_engine(dsn, 10.0))
    try:
        return {m.model_id for m in store.list_models()}
    finally:
        store.dispose()


async def test_sqlite_snapshots_on_a_schedule_restore_every_write_older_than_the_rpo(
    tmp_path: Path, stack: object
) -> None:
    interval = 1.0
    tag = uuid.uuid4().hex[:10]
    settings = Settings(
        registry_dsn=f"sqlite:///{tmp_path / 'registry.sqlite3'}",
        registry_backup_interval_s=interval,
        registry_backup_uri=f"s3://runway/test-{tag}/registry",  # the stack's S3
        registry_backup_keep=3,
        **local_s3_credentials(),
    )
    target = backup.target_of(settings)
    store = Store.from_settings(settings)
    store.create_schema()
    writer = Writer(store)
    stop = asyncio.Event()
    loop = asyncio.create_task(backup.backup_loop(settings, stop))
    thread = writer.start()
    # three snapshots taken while the writes go on
    await wait_for(lambda: len(backup.snapshots(target.names())) >= 3, 60.0, "three snapshots")
    await wait_for(lambda: len(writer.done) >= 50, 30.0, "50 writes")

    failed_at = time.time()  # the disk is lost: the writer and the backups go with it
    writer.stop.set()
    stop.set()
    thread.join(10)
    await loop
    store.dispose()
    path = backup.registry_file(settings)
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)

    started = time.monotonic()
    restored = backup.restore(settings)
    restore_s = time.monotonic() - started
    names = backup.snapshots(target.names())
    assert len(names) == 3 and restored.name == names[-1]  # kept 3, restored the newest
    outcome = judge(writer, model_ids(settings.registry_dsn or ""), failed_at, interval + 5.0)
    assert writer.error is None and outcome.recovered > 0 and outcome.rpo_s < SEED_RPO_S
    print(
        f"\nsqlite: {outcome.written} writes, {outcome.recovered} restored, RPO "
        f"{outcome.rpo_s:.2f} s (interval {interval:g} s), snapshot {restored.bytes:,} bytes, "
        f"restore {restore_s:.2f} s"
    )
    target.delete(names)


@pytest.fixture
async def primary(own_stack_dir: Path) -> AsyncIterator[Settings]:  # noqa: F811
    """A PostgreSQL primary of this test's own (stopping it harms nobody), with a standby port."""
    settings = own_settings(own_stack_dir).model_copy(
        update={"registry_standby_port": free_port(), "stack_postgres": True}
    )
    settings = settings.model_copy(
        update={
            "postgres_url": f"postgresql://runway@127.0.0.1:{settings.stack_postgres_port}/runway"
        }
    )
    await api.start_services(settings, [PostgresService(settings)])
    try:
        yield settings
    finally:
        local_standby.down(settings, purge=True)
        api.stop_service(settings, PostgresService.name)


async def test_postgres_standby_promoted_after_the_primary_dies_holds_every_write_older_than_the_rpo(  # noqa: E501
    primary: Settings,
) -> None:
    settings = primary
    dsn = settings.postgres_url
    store = Store(make_engine(dsn, 5.0))
    store.create_schema()
    await local_standby.up(settings)
    standby = standby_dsn(settings)
    assert (await asyncio.to_thread(replication, standby)).in_recovery

    writer = Writer(store)
    thread = writer.start()
    await wait_for(lambda: len(writer.done) >= 100, 60.0, "100 writes")
    await wait_for(lambda: Writer.name(50) in model_ids(standby), 30.0, "the standby replaying")

    # the primary crashes: SIGKILL to its whole process group, writes in flight
    failed_at = time.time()
    processes.stop(Layout.of(settings).pid_file(PostgresService.name), signal.SIGKILL, 0.0)
    thread.join(30)
    assert writer.error is not None  # the writer saw the primary go
    store.dispose()

    done = await asyncio.to_thread(promote, standby, 60.0)
    assert done.was_standby and not (await asyncio.to_thread(replication, standby)).in_recovery
    outcome = judge(writer, model_ids(standby), failed_at, 5.0)
    promoted = Store(make_engine(standby, 5.0))
    try:
        promoted.upsert_model(ModelIn(model_id="after-promotion"))  # it takes writes
    finally:
        promoted.dispose()
    assert "after-promotion" in model_ids(standby)
    again = await asyncio.to_thread(promote, standby, 60.0)
    assert not again.was_standby  # promoting a primary changes nothing
    print(
        f"\npostgres standby: {outcome.written} writes, {outcome.recovered} on the standby, "
        f"RPO {outcome.rpo_s:.2f} s, promotion {done.seconds:.2f} s"
    )
