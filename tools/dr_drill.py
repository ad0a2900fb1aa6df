"""`runway dr-drill`: lose the primary region under traffic and fail over to the standby.

Method (one run, everything private to it under `var/dr-drill/<run>/`, `tools/dr_plan.py`):

1. **Two regions.** A private primary Kafka (one broker, `dev`) and a private standby (three
   brokers, `production`: RF 3, `min.insync.replicas=2`), the six topics on each; MirrorMaker 2
   (`stack/mirror.py`) copies `predictions` and `outcomes` from primary to standby with the
   same names and partitions. Each region runs its own workers (`--workers` each), writing its
   views under its own `region=` batch-view directory and Redis key prefix. The standby's
   workers start with the primary's (`--standby hot`) or only after the loss (`cold`); either
   way they build their own state from the mirrored input, with their own offsets.
2. **Traffic** from the generator (`tools/traffic.py`: late and early labels, unlabeled
   predictions, duplicates; no malformed records) at `--rate` events/s into the primary, every
   acknowledgement recorded per event (`(topic, prediction_id)`).
3. **The loss**, `--kill-after-s` seconds into the traffic: SIGKILL of the primary's broker and
   of its workers at once; the generator stops. MirrorMaker is stopped (what it had written to
   the standby is what the standby has).
4. **Failover.** The registry standby is promoted (`registry/standby.py`), then the drill waits
   until the standby's group has committed every mirrored input record and both its views equal
   the oracle (`tools/dr_oracle.py`) over exactly the mirrored input: that instant is the RTO.
   Then `runway validate-failover` runs against the standby region (exit 0 = healthy).

Figures (`--json`): `rpo_events` (events the primary acknowledged that the standby lacks),
`rpo_s` (from the oldest such event's acknowledgement to the kill; 0 when none is lost),
`rto_s` (kill to the standby's views current and exact), `mirrored_events`, `views_exact`,
`produced_events`, `run_s`, and the steps' own times.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import click
import faust
import pyarrow as pa
import pyarrow.dataset as ds
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from faust.cli import option
from redis.asyncio import Redis

from config.connections import kafka_options, redis_options, s3_keys
from config.settings import Settings, worker_environment
from config.windows import parse_windows
from contracts.ids import escape_id
from sinks.batch_view import open_filesystem
from stack import api, processes
from stack.kafka import node_services
from stack.mirror import MirrorFlow, MirrorService
from stack.plan import Layout
from stack.processes import WorkerProcess, runway_executable, wait_healthy
from stack.topics import ensure_topics
from tools import dr_oracle, dr_registry
from tools.dr_plan import (
    PRIMARY,
    STANDBY,
    DrillLayout,
    Region,
    drill_layout,
    free_block,
    ports_needed,
)
from tools.dr_traffic import parse_acks
from tools.traffic import TrafficSpec, plan_models

ROOT = Path(__file__).resolve().parents[1]
INPUTS = ("predictions", "outcomes")
POLL_S = 0.5
MIRROR = "mirror"
DRILL_PID = "drill.pid"  # the drill's own process: a run whose drill died is cleaned up
StandbyMode = Literal["hot", "cold"]


@dataclass(frozen=True)
class DrillOptions:
    rate: float = 1000.0  # events/s sent to the primary
    kill_after_s: float = 60.0  # of traffic, then the primary region is killed
    models: int = 8
    partitions: int = 4
    workers: int = 1  # per region
    standby: StandbyMode = "hot"
    timeout_s: float = 900.0  # for the standby to become current after the loss
    keep: bool = False  # keep data dirs (logs are always kept)
    seed: int = 1


@dataclass
class Timeline:
    """Monotonic instants of the run's steps (seconds)."""

    started: float = field(default_factory=time.monotonic)
    traffic: float = 0.0
    killed: float = 0.0
    speed_view: float = 0.0  # the standby's speed view exact (the batch view may flush later)
    promoted: float = 0.0
    current: float = 0.0
    validated: float = 0.0


def log(message: str) -> None:
    print(f"[dr-drill {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the regions ---------------------------------------------------------------------------------


async def start_clusters(layout: DrillLayout) -> None:
    chosen = [
        *node_services(layout.stack, layout.primary.cluster),
        *node_services(layout.stack, layout.standby.cluster),
    ]
    await api.start_services(layout.stack, chosen)
    await asyncio.gather(
        ensure_topics(layout.primary.settings), ensure_topics(layout.standby.settings)
    )


def mirror_service(layout: DrillLayout) -> MirrorService:
    topics = tuple(layout.primary.settings.topic(name) for name in INPUTS)
    flow = MirrorFlow(PRIMARY, layout.primary.cluster, STANDBY, layout.standby.cluster, topics)
    partitions = len(topics) * layout.primary.settings.partitions
    return MirrorService(layout.stack, flow, MIRROR, partitions)


def start_workers(region: Region, count: int, root: Path) -> list[WorkerProcess]:
    return [
        WorkerProcess.in_slot(region.settings, root / region.name, i).start() for i in range(count)
    ]


def kill_broker(layout: DrillLayout) -> None:
    pid_file = Layout.of(layout.stack).pid_file(layout.primary.cluster.nodes[0].name)
    processes.stop(pid_file, signal.SIGKILL, 10.0)


# -- traffic -------------------------------------------------------------------------------------


def traffic_spec(options: DrillOptions, run: str) -> TrafficSpec:
    """Live-looking traffic whose event time follows the wall clock (so windows and the
    future-skew check see now), long enough to be still flowing at the kill."""
    events = int(options.rate * (options.kill_after_s + 600))
    return TrafficSpec(
        models=options.models,
        rate=options.rate,
        events=events,
        event_rate=options.rate,
        start_ms=int(time.time() * 1000),
        malformed_share=0.0,
        drain=False,
        run_id=f"dr{run}",
    )


def start_traffic(settings: Settings, spec: TrafficSpec, root: Path, seed: int) -> TrafficProcess:
    """The generator as a process of the primary region (`tools/dr_traffic.py`)."""
    acks = root / "acks.txt"
    log_file = (root / "traffic.log").open("ab")
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "tools.dr_traffic", json.dumps(dataclasses.asdict(spec)),
             str(acks), str(seed)],
            env=worker_environment(settings), cwd=ROOT, stdin=subprocess.DEVNULL,
            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    finally:
        log_file.close()
    return TrafficProcess(process, acks)


@dataclass
class TrafficProcess:
    process: subprocess.Popen[bytes]
    acks: Path

    def check(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(
                f"the traffic generator exited early (code {self.process.returncode}); "
                f"see {self.acks.parent / 'traffic.log'}"
            )

    def kill(self) -> tuple[dict[dr_oracle.EventId, float], int]:
        """SIGKILL (it dies with the region); what the primary acknowledged, events sent."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        if not self.acks.exists():
            return {}, 0
        with self.acks.open() as lines:
            return parse_acks(lines)


# -- reading a region ----------------------------------------------------------------------------


async def read_inputs(settings: Settings) -> list[tuple[str, bytes]]:
    """Every record of the region's two input topics: (topic kind, value)."""
    consumer = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        names = {settings.topic(kind): kind for kind in INPUTS}
        partitions = [TopicPartition(t, p) for t in names for p in range(settings.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[tuple[str, bytes]] = []
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(timeout_ms=1000)
            for tp, messages in batch.items():
                for message in messages:
                    if message.offset < ends[tp] and message.value is not None:
                        records.append((names[tp.topic], message.value))
                    if message.offset + 1 >= ends[tp]:
                        remaining.discard(tp)
        return records
    finally:
        await consumer.stop()


async def input_ends(settings: Settings) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(**kafka_options(settings))
    await consumer.start()
    try:
        tps = [
            TopicPartition(settings.topic(kind), p)
            for kind in INPUTS
            for p in range(settings.partitions)
        ]
        return {tp: int(end) for tp, end in (await consumer.end_offsets(tps)).items() if end}
    finally:
        await consumer.stop()


async def committed_up_to(settings: Settings, ends: dict[TopicPartition, int]) -> bool:
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(settings.app_id)
    except Exception:  # no coordinator yet: not caught up
        return False
    finally:
        await admin.close()
    return all(tp in committed and committed[tp].offset >= end for tp, end in ends.items())


def longest_window(settings: Settings) -> str:
    return max(parse_windows(settings.windows), key=lambda w: w.length_ms).name


async def read_windows(settings: Settings, model_ids: list[str]) -> dict[str, dict[str, str]]:
    """Each model's hash of the longest window (it covers the whole drill)."""
    window = longest_window(settings)
    redis = Redis.from_url(settings.redis_url, **redis_options(settings))
    try:
        pipe = redis.pipeline(transaction=False)
        for model_id in model_ids:
            pipe.hgetall(f"{settings.redis_key_prefix}:model:{escape_id(model_id)}:window:{window}")
        replies = await pipe.execute()
    finally:
        await redis.aclose()
    return {
        model_id: {k.decode(): v.decode() for k, v in reply.items()}
        for model_id, reply in zip(model_ids, replies, strict=True)
        if reply
    }


def read_rows(settings: Settings) -> list[dict[str, Any]]:
    filesystem, root = open_filesystem(
        settings.batch_view_uri, settings.s3_endpoint_url, *s3_keys(settings), settings.s3_region
    )
    partitioning = ds.partitioning(
        pa.schema([("date", pa.string()), ("model_id", pa.string())]), flavor="hive"
    )
    dataset = ds.dataset(
        root,
        filesystem=filesystem,
        format="parquet",
        partitioning=partitioning,
        exclude_invalid_files=True,
        ignore_prefixes=["_", "."],
    )
    return dataset.to_table().to_pylist()


async def view_problems(
    settings: Settings, expected: dr_oracle.Expected
) -> tuple[list[str], list[str]]:
    """How the speed view and the batch view differ from the oracle."""
    windows = await read_windows(settings, sorted(expected.models))
    rows = await asyncio.to_thread(read_rows, settings)
    return dr_oracle.view_problems(expected, windows), dr_oracle.row_problems(expected, rows)


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout_s: float, what: str, workers: list[WorkerProcess]
) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        for worker in workers:
            if not worker.alive():
                raise worker.died()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout_s:.0f}s")
        await asyncio.sleep(POLL_S)


async def validate_failover(settings: Settings, cwd: Path) -> dict[str, Any]:
    """`runway validate-failover --json` as an operator runs it, with the region's settings."""
    process = await asyncio.create_subprocess_exec(
        *runway_executable(), "validate-failover", "--json",
        env=worker_environment(settings), cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    try:
        report = json.loads(out)
    except ValueError:
        report = {"output": out.decode(errors="replace")[-2000:]}
    report["exit_code"] = process.returncode
    if process.returncode:
        report["stderr"] = err.decode(errors="replace")[-2000:]
    return report


# -- the drill -----------------------------------------------------------------------------------


@dataclass
class DrillResult:
    run: str
    rpo_events: int
    rpo_s: float
    rto_s: float | None  # None: the views were not exact within --timeout-s
    speed_view_s: float | None  # kill to the speed view exact (rto_s adds the batch view)
    mirrored_events: int
    produced_events: int
    unacknowledged_mirrored: int
    views_exact: bool
    passed: bool  # something mirrored, views exact, registry complete, validate-failover 0
    view_problems: list[str]
    sent_events: int
    kill_after_s: float
    standby: str
    workers: int
    partitions: int
    rate: float
    setup_s: float
    promote_s: float
    validated_s: float  # kill to validate-failover's answer (after the views were current)
    registry_models_lost: int
    validate_failover: dict[str, Any] | None
    run_s: float
    logs: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


async def run_drill(base: Settings, options: DrillOptions) -> DrillResult:
    run = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]
    root = ROOT / "var" / "dr-drill" / run
    rng = random.Random()
    ports = free_block(ports_needed(options.workers), rng)
    layout = drill_layout(base, run, root, ports, options.partitions)
    clock = Timeline()
    workers: dict[str, list[WorkerProcess]] = {PRIMARY: [], STANDBY: []}
    mirror = mirror_service(layout)
    log(f"run {run}: private primary on {layout.primary.cluster.bootstrap}, "
        f"standby on {layout.standby.cluster.bootstrap}; files under {root}")  # fmt: skip
    await clean_leftovers(base, root.parent)
    root.mkdir(parents=True, exist_ok=True)
    (root / DRILL_PID).write_text(f"{os.getpid()} {processes.start_ticks(os.getpid())}\n")
    try:
        await start_clusters(layout)
        log("clusters up; starting the mirror and the workers")
        workers[PRIMARY] = start_workers(layout.primary, options.workers, root)
        if options.standby == "hot":
            workers[STANDBY] = start_workers(layout.standby, options.workers, root)
        spec = traffic_spec(options, run)
        models = [(m.model_id, m.task) for m in plan_models(spec, random.Random(options.seed))]
        _, _, pair = await asyncio.gather(
            api.start_services(layout.stack, [mirror]),
            wait_healthy([*workers[PRIMARY], *workers[STANDBY]], 300.0),
            dr_registry.prepare(layout, models, spec.model_version),
        )
        setup_s = time.monotonic() - clock.started
        log(f"regions up in {setup_s:.1f}s; traffic at {options.rate:.0f} events/s "
            f"for {options.kill_after_s:.0f}s, then the primary is killed")  # fmt: skip

        spec = dataclasses.replace(spec, start_ms=int(time.time() * 1000))  # event time = now
        clock.traffic = time.monotonic()
        traffic = start_traffic(layout.primary.settings, spec, root, options.seed)
        await asyncio.sleep(options.kill_after_s)  # the traffic runs; nothing to wait on
        traffic.check()

        clock.killed = time.monotonic()
        kill_broker(layout)
        for worker in workers[PRIMARY]:
            worker.kill("primary region killed by the drill")
        acked, sent_events = traffic.kill()
        log(f"primary killed after {sent_events} events sent; stopping the mirror")
        api.stop_service(layout.stack, MIRROR)

        if options.standby == "cold":
            workers[STANDBY] = start_workers(layout.standby, options.workers, root)
        promote_s, registry_lost = await dr_registry.fail_over(pair, layout.standby.settings)
        clock.promoted = time.monotonic()
        log(f"registry standby promoted in {promote_s:.1f}s ({registry_lost} models missing)")

        mirrored_records = await read_inputs(layout.standby.settings)
        mirrored = dr_oracle.event_ids(mirrored_records)
        expected = dr_oracle.expected(mirrored_records)
        loss = dr_oracle.losses(acked, mirrored, clock.killed)
        ends = await input_ends(layout.standby.settings)
        log(f"standby holds {loss.mirrored} events ({loss.lost} acknowledged ones lost); "
            "waiting for its views")  # fmt: skip
        last: list[str] = []

        said = time.monotonic()

        async def current() -> bool:
            nonlocal last, said
            if not await committed_up_to(layout.standby.settings, ends):
                return False
            speed, batch = await view_problems(layout.standby.settings, expected)
            if not speed and not clock.speed_view:
                clock.speed_view = time.monotonic()
            last = speed + batch
            if last and time.monotonic() - said > 30:
                said = time.monotonic()
                log(f"input all read; the views differ yet ({len(last)}): {last[:3]}")
            return not last

        try:
            await wait_until(current, options.timeout_s, "the standby's views", workers[STANDBY])
            clock.current = time.monotonic()
        except TimeoutError:
            clock.current = 0.0
        rto_s = round(clock.current - clock.killed, 3) if clock.current else None
        log(f"standby current {rto_s:.1f}s after the kill" if rto_s is not None else
            f"standby not current: {last[:5]}")  # fmt: skip

        exact = bool(clock.current) and not last
        validation = await validate_failover(layout.standby.settings, ROOT)
        clock.validated = time.monotonic()
        log(f"validate-failover on the standby: exit {validation['exit_code']}")
        return DrillResult(
            run=run,
            rpo_events=loss.lost,
            rpo_s=round(loss.rpo_s, 3),
            rto_s=rto_s,
            speed_view_s=round(clock.speed_view - clock.killed, 3) if clock.speed_view else None,
            mirrored_events=loss.mirrored,
            produced_events=loss.produced,
            unacknowledged_mirrored=loss.unacknowledged_mirrored,
            views_exact=exact,
            passed=exact
            and loss.mirrored > 0
            and registry_lost == 0
            and validation.get("exit_code") == 0,
            view_problems=last[:20],
            sent_events=sent_events,
            kill_after_s=options.kill_after_s,
            standby=options.standby,
            workers=options.workers,
            partitions=options.partitions,
            rate=options.rate,
            setup_s=round(setup_s, 3),
            promote_s=round(promote_s, 3),
            validated_s=round(clock.validated - clock.killed, 3),
            registry_models_lost=registry_lost,
            validate_failover=validation,
            run_s=round(time.monotonic() - clock.started, 3),
            logs=str(root),
        )
    finally:
        await teardown(layout, [w for group in workers.values() for w in group], options.keep)


async def clean_leftovers(base: Settings, runs_dir: Path) -> None:
    """Stop what an earlier drill left running (one killed before its teardown): its private
    brokers, mirror and registry standby, its registry database and Redis keys."""
    for pid_dir in sorted(runs_dir.glob("*/stack/run")):
        run_root = pid_dir.parent.parent
        if not any(pid_dir.glob("*.pid")) or processes.running(run_root / DRILL_PID):
            continue  # nothing left, or that drill still runs
        run = run_root.name
        stack = base.model_copy(update={"stack_dir": pid_dir.parent})
        log(f"stopping what run {run} left running")
        await asyncio.to_thread(api.down, stack)
        await dr_registry.teardown(stack, run)
        await delete_keys(base, f"dr-{run}-")


async def delete_keys(settings: Settings, prefix: str) -> None:
    redis = Redis.from_url(settings.redis_url, **redis_options(settings))
    try:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}*", count=1000)]
        for start in range(0, len(keys), 1000):
            await redis.delete(*keys[start : start + 1000])
    except Exception as exc:  # the drill's result stands; its leftovers are named
        log(f"could not delete the Redis keys {prefix}*: {exc}")
    finally:
        await redis.aclose()


async def teardown(layout: DrillLayout, workers: list[WorkerProcess], keep: bool) -> None:
    await asyncio.gather(*(asyncio.to_thread(worker.stop) for worker in workers))
    await asyncio.to_thread(api.down, layout.stack)
    await dr_registry.teardown(layout.stack, layout.run)
    await delete_keys(layout.stack, f"dr-{layout.run}-")
    if not keep:
        for path in (layout.root / "stack" / "data", layout.root / PRIMARY, layout.root / STANDBY):
            for child in path.glob("*") if path.exists() else []:
                if child.is_dir() and child.name != "logs":
                    shutil.rmtree(child, ignore_errors=True)
        shutil.rmtree(layout.root / "batch-view", ignore_errors=True)


def _seconds(value: float | None) -> str:
    return "not reached" if value is None else f"{value:.1f} s"


def table(result: DrillResult) -> str:
    """The drill's figures for a person (`--json` has them all)."""
    validation = result.validate_failover or {}
    rows = [
        ("RPO: events lost", f"{result.rpo_events:,} of {result.produced_events:,} acknowledged"),
        ("RPO: oldest lost event's age at the kill", f"{result.rpo_s:.3f} s"),
        ("RTO: kill to the standby's views exact", _seconds(result.rto_s)),
        ("  the speed view exact", _seconds(result.speed_view_s)),
        ("events mirrored", f"{result.mirrored_events:,}"),
        ("views exact (oracle)", "yes" if result.views_exact else "NO"),
        ("registry promoted", f"{result.promote_s:.2f} s, {result.registry_models_lost} lost"),
        ("validate-failover", f"{validation.get('status')} (exit {validation.get('exit_code')})"),
        ("run", f"{result.run_s:.0f} s, files in {result.logs}"),
        ("passed", "yes" if result.passed else "NO"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def register(app: faust.App, settings: Settings) -> None:
    @app.command(
        option("--rate", type=float, default=DrillOptions.rate, help="Events/s to the primary."),
        option("--kill-after-s", type=float, default=DrillOptions.kill_after_s,
               help="Seconds of traffic before the primary region is killed."),
        option("--models", type=int, default=DrillOptions.models, help="Synthetic models."),
        option("--partitions", type=int, default=DrillOptions.partitions,
               help="Partitions of the drill's topics (both regions)."),
        option("--workers", type=int, default=DrillOptions.workers, help="Workers per region."),
        option("--standby", type=click.Choice(["hot", "cold"]), default="hot",
               help="hot: the standby's workers run all along; cold: started after the loss."),
        option("--timeout-s", type=float, default=DrillOptions.timeout_s,
               help="How long the standby may take to become current."),
        option("--keep", is_flag=True, default=False, help="Keep the run's data directories."),
        option("--json", "as_json", is_flag=True, default=False, help="Print JSON."),
    )  # fmt: skip
    async def dr_drill(
        self: object,
        rate: float,
        kill_after_s: float,
        models: int,
        partitions: int,
        workers: int,
        standby: StandbyMode,
        timeout_s: float,
        keep: bool,
        as_json: bool,
    ) -> None:
        """Kill the primary region under traffic; fail over to the mirrored standby region."""
        options = DrillOptions(
            rate=rate,
            kill_after_s=kill_after_s,
            models=models,
            partitions=partitions,
            workers=workers,
            standby=standby,
            timeout_s=timeout_s,
            keep=keep,
        )
        result = await run_drill(settings, options)
        print(json.dumps(result.as_json(), indent=2) if as_json else table(result))
        if not result.passed:
            raise SystemExit(1)
