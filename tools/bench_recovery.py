"""`runway bench-recovery`: how fast a worker's state comes back, and how long a dead owner's
partitions go unserved.

Why: the state is what a lost worker restores from the changelog, and at the seed's loads it
is far larger than anything the other benchmarks hold; the capacity model (docs/capacity.md)
turns these figures into restore times per partition and the design that meets the one-hour
RTO. Every phase has its own topics, group, Redis keys and data directories (`runway bench`'s
`bench_settings`), deleted at the end.

1. **cold** (`RUNWAY_TABLE_STANDBY_REPLICAS=0`, one worker): a backlog is preloaded and
   joined (inputs committed, then the batch view's offsets on `joined`: every table holds
   what the backlog makes of it); the worker stops cleanly; its data directory is deleted;
   a small second backlog (a few records per model) is sent; a replacement starts. From its
   log, Faust's "Restoring state from changelog topics" to "Done reading from changelog topics" is
   `restore_s`, and the changelog offsets it read (its "Reading Starts At" and "Highwater"
   tables) are read again here to count `restore_keys` and `restore_bytes` (key + value);
   `first_record_after_s` runs from the replacement's start until every input partition has
   committed the second backlog (so the last partition's first record after the restore).
   The restored data directory's live keys, their raw bytes per table and the join's pairs
   are counted after it stops (`state_*`).
2. **standby** (`RUNWAY_TABLE_STANDBY_REPLICAS=1`, two workers): the same backlog joined by
   two workers, each holding the other's partitions as standby replicas; right after the
   drain, one stops cleanly and the other takes its partitions over. The same figures, from
   the survivor's log, prefixed `standby_`; `standby_first_record_after_s` runs from the stop.
3. **failover**: the stopped worker comes back with its disk (a persistent volume; what it
   restored then is `restart_restore_keys`/`_s`, and after the SIGKILL below
   `restart_after_kill_*`), the group settles, and it is killed with SIGKILL; a small backlog
   is sent at once. `failover_s` runs from the kill until every input partition has committed
   it: the killed member's session timeout, the rebalance, the survivor's restore from its
   standby position, the first fetch. Once at the default `RUNWAY_SESSION_TIMEOUT_S`
   (`failover_session_timeout_s`) and once with the killed worker at
   `--fast-session-timeout` (`failover_fast_s`).
4. **snapshot**: a partition restored from an S3 state snapshot plus the changelog's tail
   (`snapshot_*`; tools/bench_snapshot.py). `--phases snapshot` runs it alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from rocksdict import (
    AccessType,
    BottommostLevelCompaction,
    CompactOptions,
    Options,
    Rdict,
    WriteBatch,
)

from config.connections import kafka_options
from config.settings import Settings
from stack.processes import START_MARK, WorkerProcess, wait_healthy
from tables import keys
from tools.bench import backlog_spec, bench_settings, cleanup, cpu_seconds, preload
from tools.bench_state import COPY_BATCH_KEYS, worker_db_options
from tools.bench_sweep import IGNORED, committed_up_to, input_ends

POLL_S = 0.2
DRAIN_TIMEOUT_S = 1800.0
SETTLE_TIMEOUT_S = 300.0
AFTER_EVENTS_PER_MODEL = 40  # the small backlog sent after each loss: a few records a model
AFTER_BATCH_SIZE = 10
# cold: changelog restore; standby: takeover and failovers; snapshot: tools/bench_snapshot.py
PHASES = ("cold", "standby", "snapshot")

RESTORE_STARTED = "Restoring state from changelog topics"
RESTORE_DONE = "Done reading from changelog topics"
STARTS_TITLE = "Reading Starts At - Active"
HIGHWATER_TITLE = "Highwater - Active"
OWNS = re.compile(r"join: owns partitions \[(.*)\] after recovery")
STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\] \[\d+\]")

Tp = tuple[str, int]
Emit = Callable[[str], None]


# -- reading a worker's log (pure) ---------------------------------------------------------


@dataclass
class Restore:
    """What Faust's recovery did in a window of a worker's log.

    `ranges` maps a changelog partition to the offsets read, [first, end): Faust logs the
    last offset it holds ("Reading Starts At", -1 for none) and the highwater less one, so
    first = start + 1 and end = highwater + 1. Several recoveries in the window (a rebalance
    during one) merge: the lowest first, the highest end.
    """

    started_at: float | None = None
    done_at: float | None = None
    ranges: dict[Tp, tuple[int, int]] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        if self.started_at is None or self.done_at is None:
            return 0.0  # nothing to restore: Faust logs neither line
        return self.done_at - self.started_at

    @property
    def offsets(self) -> int:
        return sum(end - first for first, end in self.ranges.values())


def log_time(line: str) -> float | None:
    """Epoch seconds of a Faust/mode log line's stamp (local time, milliseconds)."""
    match = STAMP.match(line)
    if match is None:
        return None
    stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
    return stamp.timestamp()  # naive = local time, as the worker wrote it


def _table_rows(lines: list[str], start: int) -> Iterable[tuple[str, int, int]]:
    """The (topic, partition, offset) rows of Faust's ASCII log table opening at `start`."""
    topic = ""
    for line in lines[start + 1 :]:
        if not line.startswith(("|", "+")):
            return
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if line.startswith("+") or len(cells) != 3 or cells[1] == "partition":
            continue
        topic = topic if cells[0] == "〃" else cells[0]
        yield topic, int(cells[1]), int(cells[2])


def parse_restore(lines: list[str], since: float) -> Restore:
    """Faust's recovery in the lines stamped at or after `since` (unstamped lines, such as a
    table's rows, belong to the stamped line before them)."""
    restore = Restore()
    starts: dict[Tp, int] = {}
    highs: dict[Tp, int] = {}
    at: float | None = None
    for index, line in enumerate(lines):
        stamped = log_time(line)
        if stamped is not None:
            at = stamped
        if at is None or at < since:
            continue
        if STARTS_TITLE in line:
            for topic, partition, offset in _table_rows(lines, index):
                tp = (topic, partition)
                starts[tp] = min(offset, starts.get(tp, offset))
        elif HIGHWATER_TITLE in line:
            for topic, partition, offset in _table_rows(lines, index):
                tp = (topic, partition)
                highs[tp] = max(offset, highs.get(tp, offset))
        elif RESTORE_STARTED in line and restore.started_at is None:
            restore.started_at = at
        elif RESTORE_DONE in line:
            restore.done_at = at
    restore.ranges = {
        tp: (starts[tp] + 1, high + 1)
        for tp, high in highs.items()
        if tp in starts and high > starts[tp]
    }
    return restore


def owned_partitions(lines: list[str]) -> list[int] | None:
    """The partitions the join owns after its latest recovery in `lines` (None: none logged)."""
    found = None
    for line in lines:
        match = OWNS.search(line)
        if match is not None:
            found = [int(p) for p in match.group(1).split(",") if p.strip()]
    return found


def since_last_start(log: Path) -> list[str]:
    lines = log.read_text(errors="replace").splitlines()
    marks = [i for i, line in enumerate(lines) if line.startswith(START_MARK)]
    return lines[marks[-1] + 1 :] if marks else lines


# -- measuring -----------------------------------------------------------------------------


async def read_ranges(settings: Settings, ranges: dict[Tp, tuple[int, int]]) -> tuple[int, int]:
    """Records and bytes (key + value) in the changelog offset ranges a restore read."""
    wanted = {TopicPartition(t, p): span for (t, p), span in ranges.items() if span[1] > span[0]}
    if not wanted:
        return 0, 0
    consumer = AIOKafkaConsumer(
        **kafka_options(settings),
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1_048_576,
        fetch_max_bytes=64 * 1_048_576,
    )
    await consumer.start()
    records = nbytes = 0
    try:
        consumer.assign(list(wanted))
        for tp, (first, _) in wanted.items():
            consumer.seek(tp, first)
        remaining = set(wanted)
        while remaining:
            fetched = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, messages in fetched.items():
                end = wanted[tp][1]
                for message in messages:
                    if message.offset < end:
                        records += 1
                        nbytes += len(message.key or b"") + len(message.value or b"")
                if messages and messages[-1].offset + 1 >= end:
                    remaining.discard(tp)
            for tp in list(remaining):  # compaction may have removed the range's last offsets
                if await consumer.position(tp) >= wanted[tp][1]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return records, nbytes


@dataclass(frozen=True)
class LiveState:
    """What a stopped worker's data directory holds per table: live keys, their raw bytes
    (key + value as stored) and the SST bytes they take once copied to a fresh DB with the
    worker's own options and compacted (as `runway bench`'s state phases measure); the
    checkpoint marker and Faust's offset key left out."""

    keys: dict[str, int]
    raw_bytes: dict[str, int]
    sst_bytes: dict[str, int]
    pairs: int  # the join's pair keys

    @property
    def total_keys(self) -> int:
        return sum(self.keys.values())


def live_state(datadir: Path, options: Callable[[], Options], scratch: Path) -> LiveState:
    counts: dict[str, int] = {}
    raw: dict[str, int] = {}
    sst: dict[str, int] = {}
    pairs = 0
    force = CompactOptions()
    force.set_bottommost_level_compaction(BottommostLevelCompaction.force())
    for path in sorted(datadir.glob("**/tables/*.db")):
        table = path.name.rsplit("-", 1)[0]  # join-3.db -> join
        source = Rdict(str(path), Options(raw_mode=True), access_type=AccessType.read_only())
        copy_path = str(scratch / path.name)
        copy = Rdict(copy_path, options())
        try:
            batch = WriteBatch(raw_mode=True)
            for key, value in source.items():
                assert isinstance(key, bytes) and isinstance(value, bytes)  # a raw-mode DB
                if key in IGNORED:
                    continue
                batch.put(key, value)
                counts[table] = counts.get(table, 0) + 1
                raw[table] = raw.get(table, 0) + len(key) + len(value)
                if table == "join" and key[:1] == keys.PAIR:
                    pairs += 1
                if len(batch) >= COPY_BATCH_KEYS:
                    copy.write(batch)
                    batch = WriteBatch(raw_mode=True)
            if len(batch):
                copy.write(batch)
            copy.flush()
            copy.compact_range(None, None, force)
            sst[table] = sst.get(table, 0) + sum(int(f["size"]) for f in copy.live_files())
        finally:
            copy.close()
            source.close()
            Rdict.destroy(copy_path, options())
    return LiveState(counts, raw, sst, pairs)


async def wait_committed(
    settings: Settings,
    ends: dict[TopicPartition, int],
    timeout_s: float,
    workers: Iterable[WorkerProcess],
    what: str,
    cpu: CpuSamples | None = None,
) -> float:
    """Poll the group's offsets until every partition of `ends` is committed up to it; the
    epoch time it was seen. A worker that dies meanwhile is an error. With `cpu`, the CPU
    seconds of its worker are sampled at every poll."""
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await admin.start()
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if cpu is not None:
                cpu.sample()
            if await committed_up_to(admin, settings, ends):
                return time.time()
            for worker in workers:
                if not worker.alive():
                    raise worker.died()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not committed within {timeout_s:.0f}s")
            await asyncio.sleep(POLL_S)
    finally:
        await admin.close()


@dataclass
class CpuSamples:
    """A worker's CPU seconds over wall time, so that a span read from its log afterwards
    gets its CPU cost: restore keys per CPU-second do not depend on how busy the machine was."""

    worker: WorkerProcess
    samples: list[tuple[float, float]] = field(default_factory=list)

    def sample(self) -> None:
        if self.worker.pid is not None and self.worker.alive():
            self.samples.append((time.time(), cpu_seconds(self.worker.pid)))

    def at(self, when: float) -> float | None:
        """CPU seconds at `when`, from the samples either side (linear between them)."""
        before = [s for s in self.samples if s[0] <= when]
        after = [s for s in self.samples if s[0] >= when]
        if not before or not after:
            return None
        (t0, c0), (t1, c1) = before[-1], after[0]
        return c0 if t1 == t0 else c0 + (c1 - c0) * (when - t0) / (t1 - t0)

    def between(self, start: float | None, end: float | None) -> float | None:
        if start is None or end is None:
            return None
        first, last = self.at(start), self.at(end)
        return None if first is None or last is None else last - first


async def joined_ends(settings: Settings) -> dict[TopicPartition, int]:
    """The end offset of every non-empty partition of `joined`: once the inputs are committed,
    every pair the join made is on it (outputs are acknowledged before offsets commit)."""
    consumer = AIOKafkaConsumer(**kafka_options(settings))
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topic("joined"), p) for p in range(settings.partitions)]
        return {tp: int(end) for tp, end in (await consumer.end_offsets(tps)).items() if end}
    finally:
        await consumer.stop()


async def wait_batch_view(settings: Settings, workers: Iterable[WorkerProcess], what: str) -> None:
    """The batch view wrote every joined pair (its offsets on `joined` are committed only
    after its files and its dedup state): its table is then complete for the state's figures."""
    ends = await joined_ends(settings)
    await wait_committed(settings, ends, DRAIN_TIMEOUT_S, workers, what)


async def send_after(settings: Settings, models: int, tag: str) -> dict[TopicPartition, int]:
    """The small backlog sent after a loss: every model a few records; the input's new ends."""
    spec = backlog_spec(
        models, AFTER_EVENTS_PER_MODEL * models, AFTER_BATCH_SIZE, f"{settings.app_id}-{tag}"
    )
    await preload(settings, spec)
    return await input_ends(settings)


async def settled(workers: list[WorkerProcess], timeout_s: float) -> None:
    """Every worker answers /health "ok" and owns join partitions after its last recovery."""
    deadline = time.monotonic() + timeout_s
    while True:
        ready = True
        for worker in workers:
            if not worker.alive():
                raise worker.died()
            health = await asyncio.to_thread(worker.health)
            owns = owned_partitions(since_last_start(worker.log_path))
            ready = ready and health is not None and health.get("status") == "ok" and bool(owns)
        if ready:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the group did not settle within {timeout_s:.0f}s")
        await asyncio.sleep(0.5)


async def restore_figures(
    settings: Settings, log: Path, since: float, prefix: str = "", cpu: CpuSamples | None = None
) -> dict[str, Any]:
    restore = parse_restore(since_last_start(log), since)
    records, nbytes = await read_ranges(settings, restore.ranges)
    seconds = restore.seconds
    cpu_s = None if cpu is None else cpu.between(restore.started_at, restore.done_at)
    return {
        f"{prefix}restore_cpu_s": None if cpu_s is None else round(cpu_s, 2),
        f"{prefix}restore_keys_per_cpu_s": round(records / cpu_s, 1) if cpu_s else None,
        f"{prefix}restore_s": round(seconds, 3),
        f"{prefix}restore_keys": records,
        f"{prefix}restore_bytes": nbytes,
        f"{prefix}restore_keys_per_s": round(records / seconds, 1) if seconds else None,
        f"{prefix}restore_mb_per_s": round(nbytes / 1e6 / seconds, 3) if seconds else None,
        f"{prefix}restore_partitions": len(restore.ranges),
    }


async def cold_phase(
    settings: Settings, workdir: Path, events: int, batch_size: int, models: int, say: Emit
) -> dict[str, Any]:
    phase = bench_settings(settings, "cold", workdir, settings.web_port).model_copy(
        update={"table_standby_replicas": 0}
    )
    log = workdir / "cold" / "worker.log"
    try:
        say(f"cold: preloading {events:,} events in records of {batch_size} ...")
        backlog = await preload(phase, backlog_spec(models, events, batch_size, phase.app_id))
        worker = WorkerProcess(phase, log).start()
        try:
            began = time.time()
            await wait_committed(phase, backlog.ends, DRAIN_TIMEOUT_S, [worker], "cold drain")
            joined_s = time.time() - began
            await wait_batch_view(phase, [worker], "cold batch view")
        finally:
            worker.stop()
        say(f"  joined in {joined_s:.1f}s; data directory deleted, replacement starting ...")
        shutil.rmtree(phase.datadir)
        ends = await send_after(phase, models, "after")
        began = time.time()
        worker = WorkerProcess(phase, log).start()
        cpu = CpuSamples(worker)
        try:
            seen = await wait_committed(phase, ends, DRAIN_TIMEOUT_S, [worker], "cold restore", cpu)
            await wait_batch_view(phase, [worker], "restored batch view")
        finally:
            worker.stop()
        result = await restore_figures(phase, log, began, cpu=cpu)
        scratch = workdir / "cold" / "compacted"
        scratch.mkdir()
        live = live_state(Path(phase.datadir), worker_db_options(phase), scratch)
        result.update(
            first_record_after_s=round(seen - began, 2),
            events=backlog.events,
            cold_join_s=round(joined_s, 2),
            state_live_keys=live.total_keys,
            state_pairs=live.pairs,
            **{f"state_keys_{table}": count for table, count in live.keys.items()},
            **{f"state_raw_bytes_{table}": count for table, count in live.raw_bytes.items()},
            **{f"state_sst_bytes_{table}": count for table, count in live.sst_bytes.items()},
            restore_keys_per_live_key=round(result["restore_keys"] / max(live.total_keys, 1), 3),
            restore_bytes_per_key=round(
                result["restore_bytes"] / max(result["restore_keys"], 1), 1
            ),
        )
        say(
            f"  restored {result['restore_keys']:,} keys ({result['restore_bytes'] / 1e6:,.1f} MB)"
            f" in {result['restore_s']:.1f}s; first record after {result['first_record_after_s']}s"
        )
        return result
    finally:
        with contextlib.suppress(Exception):
            await cleanup(phase)


def _pair(phase: Settings, workdir: Path, tag: str, index: int) -> Settings:
    return phase.model_copy(
        update={
            "datadir": workdir / tag / f"worker-{index}",
            "web_port": phase.web_port + index,
        }
    )


async def standby_phases(
    settings: Settings,
    workdir: Path,
    events: int,
    batch_size: int,
    models: int,
    fast_session_timeout_s: float,
    say: Emit,
) -> dict[str, Any]:
    phase = bench_settings(settings, "standby", workdir, settings.web_port + 2).model_copy(
        update={"table_standby_replicas": 1}
    )
    one, two = _pair(phase, workdir, "standby", 0), _pair(phase, workdir, "standby", 1)
    logs = workdir / "standby" / "worker-0.log", workdir / "standby" / "worker-1.log"
    first = WorkerProcess(one, logs[0])
    second = WorkerProcess(two, logs[1])
    result: dict[str, Any] = {}
    try:
        say(f"standby: preloading {events:,} events; two workers, one standby replica ...")
        backlog = await preload(phase, backlog_spec(models, events, batch_size, phase.app_id))
        first.start()
        second.start()
        await wait_healthy([first, second], SETTLE_TIMEOUT_S)
        await wait_committed(phase, backlog.ends, DRAIN_TIMEOUT_S, [first, second], "drain")
        await wait_batch_view(phase, [first, second], "batch view")
        cpu = CpuSamples(second)
        cpu.sample()
        stopped = time.time()
        first.stop()
        cpu.sample()
        ends = await send_after(phase, models, "after")
        seen = await wait_committed(phase, ends, SETTLE_TIMEOUT_S, [second], "takeover", cpu)
        result.update(await restore_figures(phase, logs[1], stopped, "standby_", cpu))
        result["standby_first_record_after_s"] = round(seen - stopped, 2)
        say(
            f"  the survivor restored {result['standby_restore_keys']:,} keys in "
            f"{result['standby_restore_s']:.1f}s; every partition served "
            f"{result['standby_first_record_after_s']}s after the stop"
        )
        for name, timeout in (
            ("failover", phase.session_timeout_s),
            ("failover_fast", fast_session_timeout_s),
        ):
            first = WorkerProcess(one.model_copy(update={"session_timeout_s": timeout}), logs[0])
            restarted = time.time()
            first.start()
            await settled([first, second], SETTLE_TIMEOUT_S)
            # its disk kept (a persistent volume): what it restored before it served again
            again = "restart" if name == "failover" else "restart_after_kill"
            restart = await restore_figures(phase, logs[0], restarted, f"{again}_")
            result.update(
                {
                    f"{again}_restore_keys": restart[f"{again}_restore_keys"],
                    f"{again}_restore_s": restart[f"{again}_restore_s"],
                    f"{again}_settled_s": round(time.time() - restarted, 2),
                }
            )
            killed = time.time()
            first.kill("SIGKILL by bench-recovery")
            if first.process is not None:
                first.process.wait(timeout=30)
            ends = await send_after(phase, models, name)
            seen = await wait_committed(phase, ends, SETTLE_TIMEOUT_S, [second], name)
            restore = await restore_figures(phase, logs[1], killed, f"{name}_")
            result.update(
                {
                    f"{name}_s": round(seen - killed, 2),
                    f"{name}_session_timeout_s": timeout,
                    f"{name}_restore_s": restore[f"{name}_restore_s"],
                    f"{name}_restore_keys": restore[f"{name}_restore_keys"],
                }
            )
            say(
                f"  SIGKILL at session timeout {timeout:g}s: every partition served "
                f"{result[f'{name}_s']}s later (restored {result[f'{name}_restore_keys']:,} keys)"
            )
        return result
    finally:
        for worker in (first, second):
            worker.stop()
        with contextlib.suppress(Exception):
            await cleanup(phase)


async def run_recovery_bench(
    settings: Settings,
    *,
    events: int,
    batch_size: int,
    models: int,
    fast_session_timeout_s: float,
    emit: Emit = print,
    phases: Iterable[str] = PHASES,
    snapshot_probe_mb: int = 128,
) -> dict[str, Any]:
    """The phases asked for (all by default); the dict is what `--json` prints (also written
    to var/bench/recovery.json, or recovery-<phases>.json for some of them)."""
    chosen = [p for p in PHASES if p in set(phases)]
    began = time.monotonic()

    def say(text: str) -> None:
        emit(f"[{time.monotonic() - began:6.1f}s] {text}")

    workdir = Path(tempfile.mkdtemp(prefix="runway-bench-recovery-"))
    base = settings.model_copy(update={"web_port": 20_000 + random.randrange(20_000)})
    result: dict[str, Any] = {
        "partitions": settings.partitions,
        "batch_size": batch_size,
        "models": models,
        "session_timeout_s": settings.session_timeout_s,
        "cpus": os.cpu_count(),
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
    }
    try:
        if "cold" in chosen:
            result.update(await cold_phase(base, workdir, events, batch_size, models, say))
        if "standby" in chosen:
            result.update(
                await standby_phases(
                    base, workdir, events, batch_size, models, fast_session_timeout_s, say
                )
            )
        if "snapshot" in chosen:
            from tools.bench_snapshot import snapshot_phase  # it builds on this module

            result.update(
                await snapshot_phase(
                    base, workdir, events, batch_size, models, snapshot_probe_mb, say
                )
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    name = "recovery" if chosen == list(PHASES) else f"recovery-{'-'.join(chosen)}"
    out = Path(__file__).resolve().parents[1] / "var" / "bench" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result
