"""`runway demo`: the whole product on one machine, watched live.

It brings up the local stack, creates the topics, and starts as subprocesses (each with its own
log under `var/demo/`): `--workers` `runway worker`s (data directory `var/demo/worker-<i>`, web
port `6066 + i`), the orchestrator stand-in (8090), the registry agent and the HTTP API (8080)
on the stack's PostgreSQL, and the retrain agent (6070) (`tools.demo_services`). It waits for
each to answer `/health`, registers the models, this run's version of each (`v<UTC time>`) and
the dependency chain model-000 -> 001 -> 002 -> 003 through the API, waits for the consumer group
to settle with every worker in it (so no rebalance starts under load), then sends synthetic live
traffic (`tools.traffic`: unlabeled, early, duplicate and malformed events) whose event time
runs `--speedup` (60) times faster than the wall clock, and in which the first `--drift-models`
(1) models' scores shift `--drift-after-s` (75) wall seconds in. With the 1-hour reference window
of `demo_settings`, drift can be judged a minute after traffic starts: the drifted model turns
WARNING/STALE about half a minute after its drift, the others stay FRESH, and the retrain agent
starts one retrain of it on the stand-in.

The screen: the speed view (Redis, window 1h of event time, i.e. the last minute at 60x) with
each model's last staleness verdict on this run's version, refreshed twice a second; a footer of
workers, events sent, events/s, the group's backlog and dead letters; and a panel of the retrain
agent's breaker and retrains, the stand-in's started runs and the API's /health.

Ctrl-C (or SIGTERM/SIGHUP, or `--duration`) stops the generator, then every process: SIGTERM
and a wait, SIGKILL after `stack.processes.STOP_TIMEOUT_S` or at a second Ctrl-C (SIGKILL loses
nothing: the join recovers from its changelogs). They also get SIGTERM from the kernel if the
demo itself dies. The stack stays up (`runway stack down` stops it). A process that dies stops
the demo with its log tail. The demo uses the product's topics, consumer groups and Redis
prefix. What it shows is computed by the pure `tools.demo_table` (unit tested).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
import httpx
from faust.cli import option
from redis.asyncio import Redis
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from config.connections import redis_options
from config.settings import Settings
from stack import api
from stack.errors import StackError
from stack.processes import RunwayProcess, WorkerProcess, wait_healthy
from stack.topics import ensure_topics
from tools.demo_services import (
    HTTP_TIMEOUT_S,
    DemoError,
    demo_settings,
    first_event_time,
    model_clocks,
    poll_status,
    register_models,
    registration_calls,
    service_processes,
)
from tools.demo_table import (
    Milestones,
    ServiceStatus,
    metrics_table,
    service_panel,
    table_rows,
)
from tools.demo_watch import WINDOW, GroupWatch, SendCounter, read_views
from tools.generate_cli import produce
from tools.traffic import ModelPlan, TrafficSpec, plan_models

__all__ = ["Demo", "DemoError", "DemoOptions", "demo_spec", "register"]

DEMO_DIR = Path("var/demo")
REFRESH_S = 0.5
HEALTH_TIMEOUT_S = 120.0
GROUP_TIMEOUT_S = 90.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
FOREVER_S = 30 * 24 * 3600.0  # wall seconds the generator could send: a month, i.e. until stopped


# -- the demo --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoOptions:
    models: int = 8
    rate: float = 2000.0
    workers: int = 2
    duration: float = 0.0
    batch_size: int = 100
    speedup: float = 60.0  # event-time seconds per wall second
    drift_models: int = 1
    drift_after_s: float = 75.0  # wall seconds after traffic starts


def run_version(wall_s: float) -> str:
    """This run's model version: each run deploys a new one, so it gets its own reference
    window and a new staleness episode (the retrain agent asks for one retrain per episode)."""
    return time.strftime("v%Y%m%d-%H%M%S", time.gmtime(wall_s))


def demo_spec(options: DemoOptions, start_ms: int, version: str = "v1") -> TrafficSpec:
    """Live-looking traffic whose event time runs `speedup` times faster than the wall clock.

    Event-time figures stay those of live traffic (labels 5 s late on average); a partial batch
    waits one wall second, as at 1x. The drift starts `drift_after_s` wall seconds in.
    """
    speed = options.speedup
    return TrafficSpec(
        models=options.models,
        rate=options.rate,
        duration_s=FOREVER_S * speed,
        event_rate=options.rate / speed,
        batch_size=options.batch_size,
        linger_ms=round(1000 * speed),
        start_ms=start_ms,
        label_delay="exponential",
        label_delay_ms=5000.0,
        unlabeled_share=0.1,
        early_share=0.05,
        duplicate_share=0.01,
        malformed_share=0.001,
        drain=False,
        model_version=version,
        drift_models=options.drift_models,
        drift_after_ms=round(options.drift_after_s * speed * 1000),
    )


class Demo:
    def __init__(self, settings: Settings, options: DemoOptions, console: Console) -> None:
        self.token_made = "api_token" not in settings.model_fields_set
        self.settings = demo_settings(settings, f"demo-{secrets.token_hex(8)}")
        self.options = options
        self.console = console
        self.workers: list[WorkerProcess] = []
        self.services: list[RunwayProcess] = []
        self.counter = SendCounter()
        self.status = ServiceStatus()
        self.stop_reason = ""
        self.stopping = False  # processes are being stopped: another signal kills them
        self.milestones: Milestones | None = None
        self.model_ids: list[str] = []  # this run's models (`_register`)

    @property
    def processes(self) -> list[RunwayProcess]:
        return [*self.workers, *self.services]

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
            spec = await self._register() if not stop.is_set() else None
            watch = GroupWatch(self.settings)
            await watch.start()
            await self._wait_group(watch, stop)
            if spec is not None and not stop.is_set():
                generator = asyncio.create_task(
                    produce(
                        self.settings,
                        spec,
                        False,
                        random.Random(spec.start_ms),
                        on_sent=self.counter.add,
                    )
                )
                started = time.monotonic()
                try:
                    await self._watch(stop, generator, watch, spec)
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
            codes = await self._stop_processes()
            for signum in STOP_SIGNALS:
                loop.remove_signal_handler(signum)
        if not self.console.is_terminal:
            self.console.line()  # Live's last frame ends without one in a log
        if failure is not None:
            self.console.print(f"[red]demo stopped:[/red] {failure}")
        if self.milestones is not None:
            self.console.print(self.milestones.summary())
        stopped = ", ".join(f"{name}: {how}" for name, how in codes)
        self.console.print(
            f"demo {self.stop_reason or 'stopped'}: sent {self.counter.events:,} events in "
            f"{self.counter.records:,} records over {sending_s:.0f}s "
            f"({self.counter.events / max(sending_s, 1e-9):,.0f} events/s); "
            f"processes stopped ({stopped or 'none started'}); the stack is still up "
            f"(`runway stack down` stops it)."
        )
        return 1 if failure is not None else 0

    def _request_stop(self, stop: asyncio.Event, signum: int) -> None:
        """The first signal stops the demo gently; another while stopping kills the processes."""
        if self.stopping:
            for process in self.processes:
                process.kill(f"{signal.Signals(signum).name} while stopping")
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
        services = service_processes(settings, DEMO_DIR)
        for i in range(self.options.workers):
            worker = WorkerProcess.in_slot(settings, DEMO_DIR, i)
            worker.start()
            self.workers.append(worker)
        for service in services:
            service.start()
            self.services.append(service)
        with console.status(f"starting {len(self.processes)} processes..."):
            await wait_healthy(self.processes, HEALTH_TIMEOUT_S, stop)
        if stop.is_set():
            return
        ports = ", ".join(str(w.settings.web_port) for w in self.workers)
        console.print(
            f"{len(self.workers)} workers (ports {ports}) and {len(self.services)} services "
            f"answering in {time.monotonic() - started:.1f}s; logs in {DEMO_DIR}/"
        )
        token = f" (writes: Bearer {settings.api_token})" if self.token_made else ""
        console.print(
            f"dashboard http://{settings.api_host}:{settings.api_port}/dashboard/ (fleet; a "
            "model's page from its row)"
        )
        console.print(
            f"registry API http://{settings.api_host}:{settings.api_port}{token} on "
            f"{settings.registry_dsn}; stand-in orchestrator "
            f"http://{settings.standin_host}:{settings.standin_port}/calls; retrain agent "
            f"http://{settings.web_host}:{settings.retrain_web_port}/health"
        )

    async def _register(self) -> TrafficSpec:
        """This run's spec, its models, version and chain registered through the API."""
        options, settings = self.options, self.settings
        version = run_version(time.time())
        # The plans (ids, tasks, version) do not depend on where event time starts.
        plans: list[ModelPlan] = plan_models(demo_spec(options, 0, version), random.Random(0))
        self.model_ids = [p.model_id for p in plans]
        redis = Redis.from_url(
            settings.redis_url,
            **redis_options(settings),
            socket_timeout=2,
            socket_connect_timeout=2,
        )
        try:
            clocks = await model_clocks(redis, settings.redis_key_prefix, self.model_ids)
        finally:
            await redis.aclose()
        start_ms = first_event_time(int(time.time() * 1000), clocks)
        spec = demo_spec(options, start_ms, version)
        await register_models(settings, registration_calls(plans, start_ms))
        chain = " -> ".join(p.model_id for p in plans[:4])
        self.console.print(
            f"registered {len(plans)} models, version {spec.model_version}, chain {chain}; "
            f"event time {options.speedup:g}x the wall clock; reference window 1h "
            f"(RUNWAY_STALENESS_REFERENCE_WINDOW_MS={settings.staleness_reference_window_ms}, "
            f"RUNWAY_MAX_FUTURE_SKEW_MS={settings.max_future_skew_ms}: event time runs ahead); "
            f"drift of the first {options.drift_models} model(s) after {options.drift_after_s:g}s"
        )
        return spec

    async def _wait_group(self, watch: GroupWatch, stop: asyncio.Event) -> None:
        """Traffic starts once every worker holds its partitions: no rebalance under load."""
        started = time.monotonic()
        want = len(self.workers)
        state, members = "?", 0
        with self.console.status(f"waiting for the {watch.group} group to settle..."):
            while not stop.is_set():
                self._check_alive()
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
        if stop.is_set():
            return
        await watch.refresh()
        backlog = f"; backlog {watch.backlog:,} records" if watch.backlog else ""
        self.console.print(
            f"group {watch.group} stable with {members} members in "
            f"{time.monotonic() - started:.1f}s{backlog}"
        )

    def _check_alive(self) -> None:
        for process in self.processes:
            if not process.alive():
                raise process.died()

    async def _poll(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT_S) as client:
            while not stop.is_set():
                self.status = await poll_status(client, self.settings)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), 2.0)

    async def _watch(
        self,
        stop: asyncio.Event,
        generator: asyncio.Task[Any],
        watch: GroupWatch,
        spec: TrafficSpec,
    ) -> None:
        settings, options = self.settings, self.options
        model_ids = self.model_ids
        self.milestones = Milestones(
            frozenset(model_ids[: options.drift_models]), spec.model_version
        )
        redis = Redis.from_url(
            settings.redis_url,
            **redis_options(settings),
            socket_timeout=2,
            socket_connect_timeout=2,
        )
        poller = asyncio.create_task(self._poll(stop))
        started = time.monotonic()
        title = (
            f"runway demo: speed view, window {WINDOW} of event time (the last "
            f"{3600 / options.speedup:.0f}s at {options.speedup:g}x; Redis "
            f"{settings.redis_key_prefix}:model:*), staleness of {spec.model_version}; "
            f"Ctrl-C to stop"
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
                    self._check_alive()
                    if generator.done():
                        error = generator.exception()
                        raise DemoError(f"the generator stopped: {error!r}")
                    with contextlib.suppress(Exception):
                        views = await read_views(redis, settings.redis_key_prefix, model_ids)
                        rows = table_rows(views, spec.model_version)
                    self.milestones.see(now - started, rows, self.status)
                    if tick % 4 == 0:
                        await watch.refresh()
                    footer = self._footer(now - started, watch)
                    panel = Text("\n".join(service_panel(self.status)), style="cyan")
                    live.update(Group(metrics_table(rows, title), footer, panel), refresh=True)
                    tick += 1
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(stop.wait(), REFRESH_S)
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await poller
            await redis.aclose()

    def _footer(self, elapsed: float, watch: GroupWatch) -> Text:
        rate = self.counter.sample(time.monotonic())
        backlog = "?" if watch.backlog is None else f"{watch.backlog:,}"
        options = self.options
        drift = (
            f"drift of {options.drift_models} model(s) from {options.drift_after_s:g}s"
            if options.drift_models
            else "no drift"
        )
        return Text(
            f"workers {sum(w.alive() for w in self.workers)}/{len(self.workers)}  |  "
            f"sent {self.counter.events:,} events ({self.counter.records:,} records)  |  "
            f"{rate:,.0f} events/s (target {options.rate:,.0f})  |  "
            f"backlog {backlog} records  |  dead letters {watch.dead_letters:,}  |  "
            f"{elapsed:.0f}s, event time +{elapsed * options.speedup / 3600:.1f}h  |  {drift}"
        )

    async def _stop_processes(self) -> list[tuple[str, str]]:
        processes = self.processes
        if not processes:
            return []
        self.stopping = True
        status = f"stopping {len(processes)} processes (SIGTERM; Ctrl-C again kills them)..."
        with self.console.status(status):
            codes = await asyncio.gather(*(asyncio.to_thread(p.stop) for p in processes))
        return [(p.name, code) for p, code in zip(processes, codes, strict=True)]


def register(app: faust.App, settings: Settings) -> None:
    """Declare `runway demo` on the Faust app's CLI."""

    @app.command(
        option("--models", type=int, default=8, help="Number of synthetic models."),
        option("--rate", type=float, default=2000.0, help="Events/s to send."),
        option("--workers", type=int, default=2, help="`runway worker` processes to start."),
        option("--duration", type=float, default=0.0, help="Seconds to run; 0 = until Ctrl-C."),
        option("--batch-size", type=int, default=100, help="Events per Kafka record."),
        option("--speedup", type=float, default=60.0, help="Event-time seconds per wall second."),
        option("--drift-models", type=int, default=1, help="The first N models drift (0: none)."),
        option(
            "--drift-after-s", type=float, default=75.0, help="...this many seconds into traffic."
        ),
    )
    async def demo(
        self: Any,
        models: int,
        rate: float,
        workers: int,
        duration: float,
        batch_size: int,
        speedup: float,
        drift_models: int,
        drift_after_s: float,
    ) -> None:
        """Run the whole product locally on live synthetic traffic with a drift, and watch it."""
        if workers < 1 or models < 1 or rate <= 0 or speedup <= 0:
            raise SystemExit("error: --workers, --models, --rate and --speedup must be positive")
        if not 0 <= drift_models <= models or drift_after_s < 0:
            raise SystemExit("error: --drift-models must be in [0, --models], --drift-after-s >= 0")
        options = DemoOptions(
            models, rate, workers, duration, batch_size, speedup, drift_models, drift_after_s
        )
        console = Console()
        if not console.is_terminal:
            console.width = max(console.width, 150)  # a log file: room for every column
        code = await Demo(settings, options, console).run()
        if code:
            raise SystemExit(code)
