"""`runway bench`: one worker's sustained input events/s against a bare-consumer baseline.

Method (one run, fresh topics and consumer groups each phase, deleted at the end):

1. **Preload** a backlog with the traffic generator (unpaced, ``malformed_share`` 0) through
   a fast idempotent producer; every record's (partition, offset, events) is kept, so a
   committed offset converts exactly into input events consumed.
2. **Baseline**: a bare ``AIOKafkaConsumer`` (manual assignment, from earliest, large
   fetches) over predictions + outcomes decodes every record with orjson and puts every event
   (key ``p:``/``o:`` + prediction_id, value its JSON) into one local rocksdict ``Rdict``
   (block cache = ``RUNWAY_ROCKSDB_BLOCK_CACHE_BYTES``), one ``WriteBatch`` per ``getmany``.
   Clock: first record received to last record written.
3. **Worker**: one ``runway worker`` subprocess with the full pipeline (join, speed view to
   Redis, batch view to a local Parquet dir), group offsets polled every 0.2 s. Clock: it
   starts at the *first committed offset* seen (so process start, group join and recovery are
   left out), and the events already committed then are subtracted; it stops when every input
   record is committed. ``worker_events_per_s = (events - events_at_first_commit) / elapsed``.
   The wall figure from process start (``worker_wall_events_per_s``) is reported too.
   Peak memory is the worker's ``VmHWM`` (/proc/<pid>/status).
4. The same worker measurement over a smaller backlog of single-event records.
5. The sweep phase (`tools/bench_sweep.py`): idle models' state is forgotten; the join
   state's keys and the phase's Redis keys before and after.
6. The state phases (`tools/bench_state.py`): the join table's compacted SST bytes per pending
   prediction and per joined pair.
7. The latency phase (`tools/bench_latency.py`): an outcome's CreateTime to the speed view's
   write of it, at half of step 3's events/s.

``--only state,latency`` runs steps 6 and/or 7 alone (at ``--latency-rate``).

``--profile PATH`` attaches ``py-spy record -f raw`` to the batch-100 worker while it drains.

``--peer quix`` runs the same join in Quix Streams over the backlogs of steps 3 and 4 right
after them, measured the same way (`tools/bench_peer.py`): ``peer_events_per_s``,
``peer_single_record_events_per_s``, ``peer_ratio`` and ``peer_single_ratio`` (worker ÷ peer).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import faust
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import GroupCoordinatorNotAvailableError
from faust.cli import option
from rocksdict import BlockBasedOptions, Cache, Options, Rdict, WriteBatch

from config.connections import kafka_options, redis_options
from config.settings import Settings, worker_environment
from stack.topics import ensure_topics
from streams.producer import make_producer
from tools.bench_latency import DEFAULT_DURATION_S, DEFAULT_RATE, latency_phase
from tools.bench_state import state_phase
from tools.bench_sweep import sweep_phase, sweep_settings
from tools.traffic import TrafficSpec, generate

ROOT = Path(__file__).resolve().parents[1]
RUNWAY = str(Path(sys.executable).parent / "runway")
INPUTS = ("predictions", "outcomes")
POLL_S = 0.2
MAX_IN_FLIGHT = 2_000
STOP_GRACE_S = 10.0
STATE_PREDICTIONS = 200_000
PHASES = ("state", "latency")  # the phases `--only` may name


@dataclass
class Backlog:
    """What was preloaded: per input partition, offsets and cumulative events per record."""

    settings: Settings
    events: int = 0
    records: int = 0
    bytes: int = 0
    preload_s: float = 0.0
    offsets: dict[TopicPartition, list[int]] = field(default_factory=dict)
    cumulative: dict[TopicPartition, list[int]] = field(default_factory=dict)

    def events_before(self, tp: TopicPartition, offset: int) -> int:
        """Events carried by the records of `tp` below `offset` (a committed offset)."""
        offsets = self.offsets.get(tp)
        if not offsets:
            return 0
        index = bisect.bisect_left(offsets, offset)
        return self.cumulative[tp][index - 1] if index else 0

    @property
    def ends(self) -> dict[TopicPartition, int]:
        return {tp: offsets[-1] + 1 for tp, offsets in self.offsets.items()}


def bench_settings(settings: Settings, tag: str, workdir: Path, port: int) -> Settings:
    """Fresh topics, group, Redis keys, datadir and batch view for one phase."""
    run = f"bench-{tag}-{uuid.uuid4().hex[:8]}"
    return settings.model_copy(
        update={
            "topic_prefix": f"{run}.",
            "app_id": run,
            "redis_key_prefix": run,
            "datadir": workdir / tag / "worker",
            "batch_view_uri": str(workdir / tag / "batch-view"),
            "web_port": port,
        }
    )


async def preload(settings: Settings, spec: TrafficSpec) -> Backlog:
    """Send the whole backlog; remember where every record landed and how many events it has."""
    await ensure_topics(settings)
    backlog = Backlog(settings)
    per_tp: dict[TopicPartition, list[tuple[int, int]]] = defaultdict(list)
    producer = make_producer(settings)
    await producer.start()
    in_flight: list[tuple[asyncio.Future[Any], int]] = []

    async def settle() -> None:
        metas = await asyncio.gather(*(future for future, _ in in_flight))
        for meta, (_, events) in zip(metas, in_flight, strict=True):
            per_tp[TopicPartition(meta.topic, meta.partition)].append((meta.offset, events))
        in_flight.clear()

    started = time.monotonic()
    try:
        for record in generate(spec, random.Random(1)):
            topic = settings.topic(record.topic)
            future = await producer.send(topic, record.value, key=record.key)
            in_flight.append((future, record.events))
            backlog.records += 1
            backlog.events += record.events
            backlog.bytes += len(record.value)
            if len(in_flight) >= MAX_IN_FLIGHT:
                await settle()
        await producer.flush()
        await settle()
    finally:
        await producer.stop()
    backlog.preload_s = time.monotonic() - started
    for tp, rows in per_tp.items():
        rows.sort()
        backlog.offsets[tp] = [offset for offset, _ in rows]
        total, cumulative = 0, []
        for _, events in rows:
            total += events
            cumulative.append(total)
        backlog.cumulative[tp] = cumulative
    return backlog


def _put_events(batch: WriteBatch, prefix: bytes, value: bytes) -> int:
    decoded = orjson.loads(value)
    events = decoded if isinstance(decoded, list) else [decoded]
    for event in events:
        key = prefix + str(event.get("prediction_id", "")).encode()
        batch.put(key, orjson.dumps(event))
    return len(events)


async def baseline(backlog: Backlog, dbdir: Path) -> dict[str, float]:
    """The bare consumer: decode every event, one RocksDB WriteBatch per fetch."""
    settings = backlog.settings
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    table = BlockBasedOptions()
    table.set_block_cache(Cache(settings.rocksdb_block_cache_bytes))
    options.set_block_based_table_factory(table)
    db = Rdict(str(dbdir), options)
    consumer = AIOKafkaConsumer(
        **kafka_options(settings),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_bytes=64 * 1_048_576,
        max_partition_fetch_bytes=4 * 1_048_576,
        max_poll_records=None,
    )
    await consumer.start()
    prefixes = {settings.topic("predictions"): b"p:", settings.topic("outcomes"): b"o:"}
    ends = backlog.ends
    remaining = set(ends)
    events = 0
    first: float | None = None
    cpu0 = 0.0
    try:
        consumer.assign(list(ends))
        await consumer.seek_to_beginning(*ends)
        while remaining:
            fetched = await consumer.getmany(timeout_ms=1000)
            if not fetched:
                continue
            if first is None:
                first = time.monotonic()
                cpu0 = time.process_time()
            batch = WriteBatch(raw_mode=True)
            for tp, messages in fetched.items():
                prefix = prefixes[tp.topic]
                for message in messages:
                    events += _put_events(batch, prefix, message.value or b"")
                if messages and messages[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
            db.write(batch)
        elapsed = time.monotonic() - (first or time.monotonic())
        cpu = time.process_time() - cpu0
    finally:
        await consumer.stop()
        db.close()
        Rdict.destroy(str(dbdir))
    return {
        "events": events,
        "elapsed_s": elapsed,
        "events_per_s": events / max(elapsed, 1e-9),
        "cpu_s": cpu,
    }


def _vm_hwm(pid: int) -> int:
    """Peak resident set size of `pid` in bytes (0 when it is gone)."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds `pid` has used so far."""
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


async def committed_events(admin: AIOKafkaAdminClient, backlog: Backlog, group: str) -> int:
    """Input events below `group`'s committed offsets (exact: the backlog knows its records).

    A group the broker has no coordinator for yet (its offsets topic still being made on a fresh
    broker, or the group not joined yet) has committed nothing: 0, and the next poll asks again.
    """
    try:
        committed = await admin.list_consumer_group_offsets(group)
    except GroupCoordinatorNotAvailableError:
        return 0
    return sum(
        backlog.events_before(tp, meta.offset)
        for tp, meta in committed.items()
        if tp in backlog.offsets and meta.offset >= 0
    )


async def drain(
    process: subprocess.Popen[bytes],
    backlog: Backlog,
    group: str,
    log_path: Path,
    timeout_s: float,
    name: str,
    on_first_commit: Callable[[int], None] = lambda pid: None,
) -> dict[str, float]:
    """Poll `group`'s offsets until it has committed the whole backlog; the figures.

    The one measure of the worker and of the peer: events/s from the first committed offset
    (startup, group join and recovery left out), CPU over the same span, peak RSS (VmHWM).
    """
    spawned = time.monotonic()
    admin = AIOKafkaAdminClient(**kafka_options(backlog.settings))
    await admin.start()
    peak = 0
    first: tuple[float, int] | None = None
    cpu0 = 0.0
    try:
        while True:
            await asyncio.sleep(POLL_S)
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")
            peak = max(peak, _vm_hwm(process.pid))
            now = time.monotonic()
            done = await committed_events(admin, backlog, group)
            if first is None and done > 0:
                first = (now, done)
                cpu0 = cpu_seconds(process.pid)
                on_first_commit(process.pid)
            if done >= backlog.events:
                break
            if now - spawned > timeout_s:
                raise TimeoutError(f"{name} did not drain in {timeout_s:.0f}s: {done} events")
    finally:
        await admin.close()
    assert first is not None
    if first[1] >= backlog.events:  # drained before the first poll saw a commit
        first, cpu0 = (spawned, 0), 0.0
    elapsed = now - first[0]
    return {
        "events_per_s": (backlog.events - first[1]) / elapsed,
        "elapsed_s": elapsed,
        "events_at_first_commit": first[1],
        "startup_s": first[0] - spawned,
        "wall_events_per_s": backlog.events / (now - spawned),
        "peak_rss_bytes": max(peak, _vm_hwm(process.pid)),
        "cpu_s": cpu_seconds(process.pid) - cpu0,
        "load_1m": os.getloadavg()[0],
    }


async def measure_worker(
    backlog: Backlog, log_path: Path, timeout_s: float, profile: Path | None = None
) -> dict[str, float]:
    """Run one worker over the backlog until the group has committed every input record."""
    settings = backlog.settings
    spies: list[subprocess.Popen[bytes]] = []

    def start_profile(pid: int) -> None:
        spy = _start_py_spy(pid, profile) if profile is not None else None
        if spy is not None:
            spies.append(spy)

    log = log_path.open("ab")
    process = subprocess.Popen(
        [RUNWAY, "worker", "-l", "warn"],
        env=worker_environment(settings),
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        return await drain(
            process, backlog, settings.app_id, log_path, timeout_s, "worker", start_profile
        )
    finally:
        for spy in spies:
            if spy.poll() is None:
                spy.send_signal(signal.SIGINT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    spy.wait(timeout=60)
        stop_process(process)
        log.close()


def _start_py_spy(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [exe, "record", "-f", "raw", "-r", "100", "-o", str(out), "--pid", str(pid)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after STOP_GRACE_S: the figures are taken, and a worker whose
    batch view still holds un-flushed rows waits in Faust's `wait_empty` until they age out."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


async def cleanup(settings: Settings) -> None:
    """Delete the phase's topics (inputs, outputs, Faust's changelogs and leader topic)."""
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await admin.start()
    try:
        mine = [
            t
            for t in await admin.list_topics()
            if t.startswith(settings.topic_prefix) or t.startswith(f"{settings.app_id}-")
        ]
        if mine:
            await admin.delete_topics(mine)
    finally:
        await admin.close()
    with contextlib.suppress(Exception):
        from redis.asyncio import Redis

        redis = Redis.from_url(settings.redis_url, **redis_options(settings))
        keys = [k async for k in redis.scan_iter(match=f"{settings.redis_key_prefix}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


def backlog_spec(models: int, events: int, batch_size: int, run_id: str) -> TrafficSpec:
    return TrafficSpec(
        models=models,
        rate=None,
        events=events,
        batch_size=batch_size,
        start_ms=int(time.time() * 1000) - 3_600_000,
        label_delay_ms=2_000.0,
        unlabeled_share=0.1,
        early_share=0.05,
        duplicate_share=0.01,
        malformed_share=0.0,
        run_id=run_id,
    )


async def run_bench(
    settings: Settings,
    events: int,
    batch_size: int,
    single_events: int,
    models: int,
    profile: Path | None = None,
    peer: str | None = None,
    emit: Callable[[str], None] = print,
    state_predictions: int = STATE_PREDICTIONS,
    latency_rate: float | None = None,
    latency_duration_s: float = DEFAULT_DURATION_S,
) -> dict[str, Any]:
    """Run the whole benchmark; the result dict is what `--json` prints."""
    began = time.monotonic()

    def say(text: str) -> None:
        emit(f"[{time.monotonic() - began:6.1f}s] {text}")

    workdir = Path(tempfile.mkdtemp(prefix="runway-bench-"))
    port = 20_000 + random.randrange(20_000)
    main = bench_settings(settings, "main", workdir, port)
    single = bench_settings(settings, "single", workdir, port + 1)
    sweeping = bench_settings(settings, "sweep", workdir, port + 2)
    result: dict[str, Any] = {"batch_size": batch_size, "partitions": settings.partitions}
    peer_python = None
    if peer is not None:  # before the preload: a failed install stops the run at once
        from tools import bench_peer  # here, not at the top: it builds on this module

        peer_python = await asyncio.to_thread(bench_peer.peer_python, emit=say)
    try:
        say(f"preloading {events:,} events in records of {batch_size} ...")
        backlog = await preload(main, backlog_spec(models, events, batch_size, main.app_id))
        say(f"  {backlog.events:,} events, {backlog.records:,} records in {backlog.preload_s:.1f}s")
        say("baseline: bare aiokafka consumer + rocksdict ...")
        base = await baseline(backlog, workdir / "baseline-db")
        say(f"  {base['events_per_s']:,.0f} events/s")
        say("worker: join + speed view + batch view ...")
        worker = await measure_worker(backlog, workdir / "worker-main.log", 1800.0, profile)
        say(f"  {worker['events_per_s']:,.0f} events/s")
        say(f"preloading {single_events:,} single-event records ...")
        single_backlog = await preload(
            single, backlog_spec(models, single_events, 1, single.app_id)
        )
        say("worker: single-event records ...")
        one = await measure_worker(single_backlog, workdir / "worker-single.log", 1800.0)
        say(f"  {one['events_per_s']:,.0f} events/s")
        peer_runs = None
        if peer_python is not None:
            peer_runs = await bench_peer.peer_phases(
                peer_python, (backlog, single_backlog), workdir, say
            )
        say("sweep: idle models forgotten (7 h window, 60 s TTL) ...")
        swept = await sweep_phase(sweeping, workdir)
        say(
            f"  state keys {swept['state_keys_before_sweep']:,} -> "
            f"{swept['state_keys_after_sweep']:,}, Redis keys {swept['redis_keys_before_sweep']:,}"
            f" -> {swept['redis_keys_after_sweep']:,}"
        )
        result.update(swept)
        result.update(
            await extra_phases(
                settings,
                workdir,
                port + 3,
                PHASES,
                models=models,
                batch_size=batch_size,
                state_predictions=state_predictions,
                latency_rate=latency_rate or worker["events_per_s"] / 2,
                latency_rate_source="option" if latency_rate else "half of worker_events_per_s",
                latency_duration_s=latency_duration_s,
                emit=say,
            )
        )
        result.update(
            worker_events_per_s=round(worker["events_per_s"], 1),
            baseline_events_per_s=round(base["events_per_s"], 1),
            ratio=round(worker["events_per_s"] / base["events_per_s"], 4),
            peak_rss_bytes=int(worker["peak_rss_bytes"]),
            single_record_events_per_s=round(one["events_per_s"], 1),
            events=backlog.events,
            records=backlog.records,
            backlog_bytes=backlog.bytes,
            preload_s=round(backlog.preload_s, 2),
            preload_events_per_s=round(backlog.events / backlog.preload_s, 1),
            baseline_s=round(base["elapsed_s"], 2),
            baseline_cpu_s=round(base["cpu_s"], 2),
            worker_cpu_s=round(worker["cpu_s"], 2),
            worker_events_per_cpu_s=round(
                (backlog.events - worker["events_at_first_commit"]) / max(worker["cpu_s"], 1e-9), 1
            ),
            worker_s=round(worker["elapsed_s"], 2),
            worker_startup_s=round(worker["startup_s"], 2),
            worker_events_at_first_commit=int(worker["events_at_first_commit"]),
            worker_wall_events_per_s=round(worker["wall_events_per_s"], 1),
            single_events=single_backlog.events,
            single_worker_s=round(one["elapsed_s"], 2),
            single_peak_rss_bytes=int(one["peak_rss_bytes"]),
            models=models,
            rocksdb_block_cache_bytes=settings.rocksdb_block_cache_bytes,
            cpus=os.cpu_count(),
            load_average_1m=round(worker["load_1m"], 2),
        )
        if peer_runs is not None:
            result.update(
                bench_peer.peer_figures(
                    *peer_runs, worker["events_per_s"], one["events_per_s"], backlog.events
                )
            )
        if profile is not None:
            result["profile"] = str(profile)
    finally:
        say("cleaning up ...")
        for phase in (main, single, sweep_settings(sweeping)):
            with contextlib.suppress(Exception):
                await cleanup(phase)
        shutil.rmtree(workdir, ignore_errors=True)
    out = ROOT / "var" / "bench" / "last.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


async def extra_phases(
    settings: Settings,
    workdir: Path,
    port: int,
    phases: Collection[str],
    *,
    models: int,
    batch_size: int,
    state_predictions: int,
    latency_rate: float,
    latency_rate_source: str,
    latency_duration_s: float,
    emit: Callable[[str], None],
) -> dict[str, Any]:
    """The state and latency phases; each makes its own topics and removes them."""
    ports = itertools.count(port)

    def fresh(tag: str) -> Settings:
        return bench_settings(settings, tag, workdir, next(ports))

    async def tidy(phase: Settings) -> None:
        with contextlib.suppress(Exception):
            await cleanup(phase)

    result: dict[str, Any] = {}
    if "state" in phases:
        result.update(
            await state_phase(
                fresh,
                tidy,
                predictions=state_predictions,
                models=models,
                batch_size=batch_size,
                emit=emit,
            )
        )
    if "latency" in phases:
        result.update(
            await latency_phase(
                fresh,
                tidy,
                rate=latency_rate,
                rate_source=latency_rate_source,
                duration_s=latency_duration_s,
                models=models,
                batch_size=batch_size,
                emit=emit,
            )
        )
    return result


async def run_phases(
    settings: Settings,
    phases: Collection[str],
    *,
    models: int,
    batch_size: int,
    state_predictions: int,
    latency_rate: float | None,
    latency_duration_s: float,
    emit: Callable[[str], None],
) -> dict[str, Any]:
    """`--only`: some of the extra phases alone (no main phase: the latency phase's rate is
    `latency_rate`, else DEFAULT_RATE); written to var/bench/phases.json."""
    workdir = Path(tempfile.mkdtemp(prefix="runway-bench-"))
    result: dict[str, Any] = {
        "phases": [phase for phase in PHASES if phase in phases],
        "batch_size": batch_size,
        "partitions": settings.partitions,
        "models": models,
    }
    try:
        result.update(
            await extra_phases(
                settings,
                workdir,
                20_000 + random.randrange(20_000),
                phases,
                models=models,
                batch_size=batch_size,
                state_predictions=state_predictions,
                latency_rate=latency_rate or DEFAULT_RATE,
                latency_rate_source="option",
                latency_duration_s=latency_duration_s,
                emit=emit,
            )
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    out = ROOT / "var" / "bench" / "phases.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _table(result: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title=f"runway bench: {result['events']:,} events, {result['partitions']} parts")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        (
            f"worker, records of {result['batch_size']}",
            f"{result['worker_events_per_s']:,.0f} ev/s",
        ),
        ("baseline (aiokafka + rocksdict)", f"{result['baseline_events_per_s']:,.0f} ev/s"),
        ("ratio worker / baseline", f"{result['ratio']:.4f}"),
        ("worker peak RSS", f"{result['peak_rss_bytes'] / 2**20:,.0f} MiB"),
        (
            f"worker, single-event records ({result['single_events']:,})",
            f"{result['single_record_events_per_s']:,.0f} ev/s",
        ),
        ("preload (producer)", f"{result['preload_events_per_s']:,.0f} ev/s"),
        ("worker startup (excluded)", f"{result['worker_startup_s']:.1f} s"),
        ("worker incl. startup", f"{result['worker_wall_events_per_s']:,.0f} ev/s"),
    ]
    if "peer_events_per_s" in result:
        rows += [
            (
                f"peer ({result['peer_version']}), records of {result['batch_size']}",
                f"{result['peer_events_per_s']:,.0f} ev/s",
            ),
            ("ratio worker / peer", f"{result['peer_ratio']:.3f}"),
            ("peer peak RSS", f"{result['peer_peak_rss_bytes'] / 2**20:,.0f} MiB"),
            (
                "peer, single-event records",
                f"{result['peer_single_record_events_per_s']:,.0f} ev/s",
            ),
            ("ratio worker / peer, single-event records", f"{result['peer_single_ratio']:.3f}"),
        ]
    if "state_bytes_per_pending" in result:
        rows.append(("state per pending prediction", f"{result['state_bytes_per_pending']} B"))
        rows.append(("state per joined pair", f"{result['state_bytes_per_joined']} B"))
    if "outcome_to_view_p99_ms" in result:
        rows.append(("outcome -> speed view, p99", f"{result['outcome_to_view_p99_ms']} ms"))
    for row in rows:
        table.add_row(*row)
    return table


def register(app: faust.App, settings: Settings) -> None:
    """Declare `runway bench` on the Faust app's CLI."""

    @app.command(
        option(
            "--events", type=int, default=1_000_000, help="Backlog events (>= 1M for the figure)."
        ),
        option("--batch-size", type=int, default=100, help="Events per record."),
        option("--single-events", type=int, default=100_000, help="Backlog of 1-event records."),
        option("--models", type=int, default=10, help="Synthetic models."),
        option("--profile", type=str, default=None, help="py-spy raw profile of the worker here."),
        option("--json", "as_json", is_flag=True, default=False, help="Print one JSON object."),
        option(
            "--peer",
            type=click.Choice(["quix"]),
            default=None,
            help="Also run this peer (Quix Streams) over the same backlogs.",
        ),
        option("--only", type=str, default=None, help="Only these phases: state,latency."),
        option(
            "--state-predictions",
            type=int,
            default=STATE_PREDICTIONS,
            help="Predictions of each state phase.",
        ),
        option(
            "--latency-rate",
            type=float,
            default=None,
            help=f"Events/s of the latency phase (default: half the worker's; {DEFAULT_RATE:.0f}"
            " with --only).",
        ),
        option(
            "--latency-duration",
            type=float,
            default=DEFAULT_DURATION_S,
            help="Seconds of paced traffic in the latency phase.",
        ),
    )
    async def bench(
        self: Any,
        events: int,
        batch_size: int,
        single_events: int,
        models: int,
        profile: str | None,
        as_json: bool,
        peer: str | None,
        only: str | None,
        state_predictions: int,
        latency_rate: float | None,
        latency_duration: float,
    ) -> None:
        """Benchmark one worker against a bare consumer baseline."""

        def say(text: str) -> None:
            if as_json:
                print(text, file=sys.stderr, flush=True)
            else:
                self.say(text)

        if only is not None:
            phases = {name.strip() for name in only.split(",") if name.strip()}
            if not phases or not phases <= set(PHASES):
                raise click.BadParameter(f"--only takes {','.join(PHASES)}, not {only!r}")
            alone = await run_phases(
                settings,
                phases,
                models=models,
                batch_size=batch_size,
                state_predictions=state_predictions,
                latency_rate=latency_rate,
                latency_duration_s=latency_duration,
                emit=say,
            )
            print(json.dumps(alone) if as_json else json.dumps(alone, indent=2))
            return
        result = await run_bench(
            settings,
            events,
            batch_size,
            single_events,
            models,
            profile=Path(profile) if profile else None,
            peer=peer,
            emit=say,
            state_predictions=state_predictions,
            latency_rate=latency_rate,
            latency_duration_s=latency_duration,
        )
        if as_json:
            print(json.dumps(result))
        else:
            from rich.console import Console

            Console().print(_table(result))
