"""`runway demo`: the product's main job on one machine, watched live.

It brings up the local stack, creates the topics, starts `--workers` `runway worker`
subprocesses (each with its own data directory `var/demo/worker-<i>` and web port `6066 + i`,
logging to `var/demo/worker-<i>.log`), waits for each to answer `/health` and for the consumer
group to settle with every worker in it (so no rebalance starts under load), then sends
synthetic live traffic (`streams.traffic`: event time = now, exponential label delay, unlabeled,
early, duplicate and malformed events) and shows the speed view (Redis, window 1h, so it also
counts earlier runs of the last hour) as a table refreshed twice a second, with a footer of
workers, events sent, events/s, the group's backlog and dead letters.

Ctrl-C (or SIGTERM/SIGHUP, or `--duration`) stops the generator, then the workers: SIGTERM and a
wait, SIGKILL after `STOP_TIMEOUT_S` or at a second Ctrl-C (SIGKILL loses nothing: the join
recovers from its changelogs). Workers also get SIGTERM from the kernel if the demo itself dies.
The stack stays up (`runway stack down` stops it). A worker that dies stops the demo with its
log tail. The demo uses the default settings: the product's topics, consumer group and Redis
prefix. `table_rows` (Redis hashes -> table cells) is pure and unit tested.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import math
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from faust.cli import option
from redis.asyncio import Redis
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from config.settings import Settings, worker_environment
from stack import api
from stack.errors import StackError
from stack.topics import ensure_topics
from streams.generate_cli import produce
from streams.traffic import TrafficSpec, plan_models

DEMO_DIR = Path("var/demo")
WINDOW = "1h"
REFRESH_S = 0.5
HEALTH_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
GROUP_TIMEOUT_S = 90.0
PR_SET_PDEATHSIG = 1
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
FOREVER_S = 30 * 24 * 3600.0  # event time the generator could send: a month, i.e. until stopped

COLUMNS = (
    "model",
    "task",
    "predictions",
    "labeled",
    "coverage",
    "p50 delay",
    "acc / MAE",
    "AUC / RMSE",
    "duplicates",
    "expired",
)


class DemoError(Exception):
    """Something the demo cannot go on without; the message is for the user."""


# -- the pure part: Redis hashes -> table cells ---------------------------------------------------


def _number(fields: Mapping[str, str], name: str) -> float | None:
    raw = fields.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return None if math.isnan(value) else value


def _count(fields: Mapping[str, str], name: str) -> str:
    value = _number(fields, name)
    return "-" if value is None else f"{int(value):,}"


def _fixed(fields: Mapping[str, str], name: str) -> str:
    value = _number(fields, name)
    return "-" if value is None else f"{value:.3f}"


def table_rows(
    views: Mapping[str, tuple[Mapping[str, str], Mapping[str, str]]],
) -> list[tuple[str, ...]]:
    """One row of `COLUMNS` per model, sorted by model id.

    `views` maps a model id to its model hash and its window hash (both as Redis returns them,
    decoded). Missing or NaN figures show as "-": binary models show accuracy and ROC AUC,
    regression models MAE and RMSE.
    """
    rows: list[tuple[str, ...]] = []
    for model_id in sorted(views):
        info, window = views[model_id]
        task = info.get("task", "-")
        coverage = _number(window, "label_coverage")
        delay = _number(window, "label_delay_p50_ms")
        if task == "regression":
            first, second = _fixed(window, "mae"), _fixed(window, "rmse")
        else:
            first, second = _fixed(window, "accuracy"), _fixed(window, "roc_auc")
        rows.append(
            (
                model_id,
                task,
                _count(window, "predictions"),
                _count(window, "labeled"),
                "-" if coverage is None else f"{coverage:.1%}",
                "-" if delay is None else f"{delay / 1000:.1f}s",
                first,
                second,
                _count(window, "duplicates"),
                _count(window, "unlabeled_expired"),
            )
        )
    return rows


def metrics_table(rows: Sequence[tuple[str, ...]], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for name in COLUMNS:
        table.add_column(name, justify="left" if name in ("model", "task") else "right")
    for row in rows:
        table.add_row(*row)
    if not rows:
        table.add_row("[dim]waiting for the speed view...[/dim]", *[""] * (len(COLUMNS) - 1))
    return table


# -- workers ---------------------------------------------------------------------------------------


def _parent_death_signal() -> Callable[[], None] | None:
    """A `preexec_fn` (Linux) that has the kernel SIGTERM the worker when the demo dies.

    Called from the thread that starts the workers (the event loop's): the signal follows
    that thread. libc is loaded here, in the parent; the child only makes the one call.
    """
    if sys.platform != "linux":
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))

    return preexec


def _runway_executable() -> list[str]:
    beside = Path(sys.executable).parent / "runway"
    return [str(beside)] if beside.exists() else ["runway"]


@dataclass
class DemoWorker:
    index: int
    settings: Settings
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    killed: str = ""  # why the demo sent SIGKILL, if it did

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*_runway_executable(), "worker", "-l", "info"],
                env=worker_environment(self.settings),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # the terminal's Ctrl-C is ours; we SIGTERM them
                preexec_fn=_parent_death_signal(),
            )

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def health(self) -> dict[str, Any] | None:
        url = f"http://{self.settings.web_host}:{self.settings.web_port}/health"
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status != 200:
                    return None
                body: dict[str, Any] = json.loads(response.read())
                return body
        except (OSError, ValueError):
            return None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])

    def kill(self, why: str) -> None:
        if self.process is not None and self.process.poll() is None:
            self.killed = why
            self.process.kill()

    def stop(self) -> str:
        """SIGTERM and wait (SIGKILL after `STOP_TIMEOUT_S`); how it ended, in words."""
        if self.process is None:
            return "not started"
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill(f"still running {STOP_TIMEOUT_S:.0f}s after SIGTERM")
                self.process.wait(timeout=10)
        code = self.process.returncode
        if code >= 0:
            return f"exit {code}"
        name = signal.Signals(-code).name
        if self.killed:
            return f"{name} ({self.killed}; see {self.log_path})"
        return f"ended by {name}, not sent by the demo (see {self.log_path})"


def worker_settings(settings: Settings, index: int) -> Settings:
    return settings.model_copy(
        update={
            "datadir": DEMO_DIR / f"worker-{index}",
            "web_port": settings.web_port + index,
        }
    )


def _died(worker: DemoWorker) -> DemoError:
    code = worker.process.returncode if worker.process else None
    return DemoError(
        f"worker {worker.index} (pid {worker.pid}) exited with code {code}; "
        f"the end of {worker.log_path}:\n{worker.log_tail()}"
    )


async def wait_healthy(workers: Sequence[DemoWorker], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    waiting = list(workers)
    while waiting:
        for worker in list(waiting):
            if not worker.alive():
                raise _died(worker)
            if await asyncio.to_thread(worker.health) is not None:
                waiting.remove(worker)
        if waiting and time.monotonic() > deadline:
            names = ", ".join(str(w.log_path) for w in waiting)
            raise DemoError(f"no /health answer within {timeout_s:.0f}s; see {names}")
        if waiting:
            await asyncio.sleep(0.25)


# -- the generator ---------------------------------------------------------------------------------


@dataclass
class SendCounter:
    """What the generator has sent so far, and a recent rate."""

    events: int = 0
    records: int = 0
    samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=20))

    def add(self, records: int, events: int) -> None:
        self.records += records
        self.events += events

    def sample(self, now: float) -> float:
        """Events/s over the last few seconds of samples."""
        self.samples.append((now, self.events))
        (t0, e0), (t1, e1) = self.samples[0], self.samples[-1]
        return (e1 - e0) / (t1 - t0) if t1 > t0 else 0.0


# -- reading what the workers made -----------------------------------------------------------------


async def read_views(
    redis: Redis, prefix: str, model_ids: Sequence[str]
) -> dict[str, tuple[dict[str, str], dict[str, str]]]:
    pipe = redis.pipeline(transaction=False)
    for model_id in model_ids:
        pipe.hgetall(f"{prefix}:model:{model_id}")
        pipe.hgetall(f"{prefix}:model:{model_id}:window:{WINDOW}")
    replies = await pipe.execute()
    views = {}
    for i, model_id in enumerate(model_ids):
        info, window = replies[2 * i], replies[2 * i + 1]
        if info:
            views[model_id] = (_decode(info), _decode(window))
    return views


def _decode(fields: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    def text(v: bytes | str) -> str:
        return v.decode() if isinstance(v, bytes) else v

    return {text(k): text(v) for k, v in fields.items()}


class GroupWatch:
    """The consumer group and the topics around it, seen from Kafka.

    `dead_letters`: records on the dead-letters topic since `start`; `backlog`: records of the
    input topics the group has not committed yet; `members`: the group's state and size.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.group = settings.app_id
        self.dead = [
            TopicPartition(settings.topic("dead-letters"), p) for p in range(settings.partitions)
        ]
        self.inputs = [
            TopicPartition(settings.topic(name), p)
            for name in ("predictions", "outcomes")
            for p in range(settings.partitions)
        ]
        self.consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
        self.admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        self.baseline = 0
        self.dead_letters = 0
        self.backlog: int | None = None

    async def start(self) -> None:
        await self.consumer.start()
        await self.admin.start()
        self.baseline = await self._dead_total()

    async def stop(self) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def _dead_total(self) -> int:
        ends = await self.consumer.end_offsets(self.dead)
        return int(sum(ends.values()))

    async def members(self) -> tuple[str, int]:
        """(state, member count) of the join's consumer group."""
        response = await self.admin.describe_consumer_groups([self.group])
        group = response[0].to_object()["groups"][0]
        return str(group["state"]), len(group["members"])

    async def refresh(self) -> None:
        with contextlib.suppress(Exception):
            self.dead_letters = await self._dead_total() - self.baseline
            ends = await self.consumer.end_offsets(self.inputs)
            committed = await self.admin.list_consumer_group_offsets(self.group)
            self.backlog = sum(
                end - (committed[tp].offset if tp in committed else 0) for tp, end in ends.items()
            )


# -- the demo --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoOptions:
    models: int = 8
    rate: float = 5000.0
    workers: int = 2
    duration: float = 0.0
    batch_size: int = 100


def demo_spec(options: DemoOptions, start_ms: int) -> TrafficSpec:
    """Live-looking traffic: event time starts now and advances with the wall clock."""
    return TrafficSpec(
        models=options.models,
        rate=options.rate,
        duration_s=FOREVER_S,
        event_rate=options.rate,
        batch_size=options.batch_size,
        linger_ms=1000,
        start_ms=start_ms,
        label_delay="exponential",
        label_delay_ms=5000.0,
        unlabeled_share=0.1,
        early_share=0.05,
        duplicate_share=0.01,
        malformed_share=0.001,
        drain=False,
    )


class Demo:
    def __init__(self, settings: Settings, options: DemoOptions, console: Console) -> None:
        self.settings = settings
        self.options = options
        self.console = console
        self.workers: list[DemoWorker] = []
        self.counter = SendCounter()
        self.stop_reason = ""
        self.stopping = False  # workers are being stopped: another signal kills them

    async def run(self) -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, self._request_stop, stop, signum)
        generator: asyncio.Task[Any] | None = None
        watch: GroupWatch | None = None
        sending_s = 0.0
        failure: DemoError | None = None
        try:
            await self._prepare(stop)
            watch = GroupWatch(self.settings)
            await watch.start()
            await self._wait_group(watch, stop)
            if not stop.is_set():
                spec = demo_spec(self.options, int(time.time() * 1000))
                generator = asyncio.create_task(
                    produce(
                        self.settings,
                        spec,
                        False,
                        random.Random(spec.start_ms),
                        on_sent=self.counter.add,
                    )
                )
                model_ids = [plan.model_id for plan in plan_models(spec, random.Random(0))]
                started = time.monotonic()
                try:
                    await self._watch(stop, generator, watch, model_ids)
                finally:
                    sending_s = time.monotonic() - started
        except DemoError as exc:
            failure = exc
        finally:
            if generator is not None:
                generator.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await generator
            if watch is not None:
                with contextlib.suppress(Exception):
                    await watch.stop()
            codes = await self._stop_workers()
            for signum in STOP_SIGNALS:
                loop.remove_signal_handler(signum)
        if not self.console.is_terminal:
            self.console.line()  # Live's last frame ends without one in a log
        if failure is not None:
            self.console.print(f"[red]demo stopped:[/red] {failure}")
        stopped = ", ".join(f"worker {i}: {how}" for i, how in codes)
        self.console.print(
            f"demo {self.stop_reason or 'stopped'}: sent {self.counter.events:,} events in "
            f"{self.counter.records:,} records over {sending_s:.0f}s "
            f"({self.counter.events / max(sending_s, 1e-9):,.0f} events/s); "
            f"workers stopped ({stopped or 'none started'}); the stack is still up "
            f"(`runway stack down` stops it)."
        )
        return 1 if failure is not None else 0

    def _request_stop(self, stop: asyncio.Event, signum: int) -> None:
        """The first signal stops the demo gently; another while stopping kills the workers."""
        if self.stopping:
            for worker in self.workers:
                worker.kill(f"{signal.Signals(signum).name} while stopping")
            return
        if not stop.is_set() and not self.stop_reason:
            self.stop_reason = f"stopped by {signal.Signals(signum).name}"
        stop.set()

    async def _prepare(self, stop: asyncio.Event) -> None:
        console, settings = self.console, self.settings
        started = time.monotonic()
        with console.status("bringing up the local stack (Kafka, Redis, S3, PostgreSQL)..."):
            try:
                await api.up(settings, brokers=1)
            except StackError as exc:
                raise DemoError(
                    exc.sentence + (f"\n{exc.log_tail}" if exc.log_tail else "")
                ) from exc
        console.print(f"stack up in {time.monotonic() - started:.1f}s ({settings.stack_dir})")
        started = time.monotonic()
        await ensure_topics(settings)
        console.print(
            f"topics ready in {time.monotonic() - started:.1f}s "
            f"({settings.partitions} partitions each)"
        )
        if stop.is_set():
            return
        started = time.monotonic()
        DEMO_DIR.mkdir(parents=True, exist_ok=True)
        for i in range(self.options.workers):
            worker = DemoWorker(i, worker_settings(settings, i), DEMO_DIR / f"worker-{i}.log")
            worker.start()
            self.workers.append(worker)
        with console.status(f"starting {len(self.workers)} workers..."):
            await wait_healthy(self.workers, HEALTH_TIMEOUT_S)
        ports = ", ".join(str(w.settings.web_port) for w in self.workers)
        console.print(
            f"{len(self.workers)} workers answering /health in "
            f"{time.monotonic() - started:.1f}s (ports {ports}; logs in {DEMO_DIR}/)"
        )

    async def _wait_group(self, watch: GroupWatch, stop: asyncio.Event) -> None:
        """Traffic starts once every worker holds its partitions: no rebalance under load."""
        started = time.monotonic()
        want = len(self.workers)
        state, members = "?", 0
        with self.console.status(f"waiting for the {watch.group} group to settle..."):
            while not stop.is_set():
                for worker in self.workers:
                    if not worker.alive():
                        raise _died(worker)
                with contextlib.suppress(Exception):
                    state, members = await watch.members()
                if state == "Stable" and members == want:
                    break
                if time.monotonic() - started > GROUP_TIMEOUT_S:
                    raise DemoError(
                        f"the consumer group {watch.group} did not settle within "
                        f"{GROUP_TIMEOUT_S:.0f}s (state {state}, {members}/{want} members); "
                        f"see {DEMO_DIR}/worker-*.log"
                    )
                await asyncio.sleep(0.5)
        await watch.refresh()
        backlog = f"; backlog {watch.backlog:,} records" if watch.backlog else ""
        self.console.print(
            f"group {watch.group} stable with {members} members in "
            f"{time.monotonic() - started:.1f}s{backlog}"
        )

    async def _watch(
        self,
        stop: asyncio.Event,
        generator: asyncio.Task[Any],
        watch: GroupWatch,
        model_ids: list[str],
    ) -> None:
        settings, options = self.settings, self.options
        redis = Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
        started = time.monotonic()
        title = (
            f"runway demo: speed view, window {WINDOW} "
            f"(Redis {settings.redis_key_prefix}:model:*), Ctrl-C to stop"
        )
        rows: list[tuple[str, ...]] = []
        tick = 0
        try:
            with Live(console=self.console, auto_refresh=False) as live:
                while not stop.is_set():
                    now = time.monotonic()
                    if options.duration and now - started >= options.duration:
                        self.stop_reason = f"finished (--duration {options.duration:g})"
                        break
                    for worker in self.workers:
                        if not worker.alive():
                            raise _died(worker)
                    if generator.done():
                        error = generator.exception()
                        raise DemoError(f"the generator stopped: {error!r}")
                    with contextlib.suppress(Exception):
                        rows = table_rows(
                            await read_views(redis, settings.redis_key_prefix, model_ids)
                        )
                    if tick % 4 == 0:
                        await watch.refresh()
                    footer = self._footer(now - started, watch)
                    live.update(Group(metrics_table(rows, title), footer), refresh=True)
                    tick += 1
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(stop.wait(), REFRESH_S)
        finally:
            await redis.aclose()

    def _footer(self, elapsed: float, watch: GroupWatch) -> Text:
        rate = self.counter.sample(time.monotonic())
        backlog = "?" if watch.backlog is None else f"{watch.backlog:,}"
        return Text(
            f"workers {sum(w.alive() for w in self.workers)}/{len(self.workers)}  |  "
            f"sent {self.counter.events:,} events ({self.counter.records:,} records)  |  "
            f"{rate:,.0f} events/s (target {self.options.rate:,.0f})  |  "
            f"backlog {backlog} records  |  dead letters {watch.dead_letters:,}  |  "
            f"{elapsed:.0f}s"
        )

    async def _stop_workers(self) -> list[tuple[int, str]]:
        if not self.workers:
            return []
        self.stopping = True
        status = f"stopping {len(self.workers)} workers (SIGTERM; Ctrl-C again kills them)..."
        with self.console.status(status):
            codes = await asyncio.gather(*(asyncio.to_thread(w.stop) for w in self.workers))
        return [(w.index, code) for w, code in zip(self.workers, codes, strict=True)]


def register(app: faust.App, settings: Settings) -> None:
    """Declare `runway demo` on the Faust app's CLI."""

    @app.command(
        option("--models", type=int, default=8, help="Number of synthetic models."),
        option("--rate", type=float, default=5000.0, help="Events/s to send."),
        option("--workers", type=int, default=2, help="`runway worker` processes to start."),
        option("--duration", type=float, default=0.0, help="Seconds to run; 0 = until Ctrl-C."),
        option("--batch-size", type=int, default=100, help="Events per Kafka record."),
    )
    async def demo(
        self: Any, models: int, rate: float, workers: int, duration: float, batch_size: int
    ) -> None:
        """Run the whole pipeline locally on live synthetic traffic and watch the speed view."""
        if workers < 1 or models < 1 or rate <= 0:
            raise SystemExit("error: --workers, --models and --rate must be positive")
        options = DemoOptions(models, rate, workers, duration, batch_size)
        console = Console()
        if not console.is_terminal:
            console.width = max(console.width, 140)  # a log file: room for every column
        code = await Demo(settings, options, console).run()
        if code:
            raise SystemExit(code)
