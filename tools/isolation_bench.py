"""`runway bench-isolation`: the join benchmark's throughput with a healthy and with a hung
orchestrator, measured in one run (issue 5, "Isolation").

One stand-in orchestrator and one retrain agent run for the whole benchmark as `runway`
subprocesses on free ports, with their own topic prefix, app id (so consumer groups), Redis key
prefix and SQLite registry. A feeder sends STALE verdicts for new models at a steady rate into the
agent's `staleness` topic all along, so the agent keeps calling the orchestrator. Then runs
alternate healthy, hung, healthy, ... healthy (`tools.isolation_result.run_order`), after an
uncounted healthy warm-up run over a quarter of the backlog; each run:

1. preloads a fresh backlog (`tools.bench.preload`: fresh topics and group);
2. switches the stand-in (`POST /control {"hang": ...}`) and waits until the agent shows it:
   healthy = breaker closed and a run started since the switch; hung = the breaker opened
   since the switch (its calls timed out);
3. measures one join worker over the backlog (`tools.bench.measure_worker`) while sampling the
   agent's `/health`, and takes the agent's and the stand-in's counters before and after.

Evidence per run: the stand-in's calls by outcome (a hung run must show only `hung`), the agent's
orchestrator calls, breaker openings and states seen, requests by status, CPU seconds of the
agent and the stand-in. By default the breaker's call timeout and reset timeout are shortened
(2 s, 5 s; the seed's are 30 s, 60 s) so a hung run goes through several breaker cycles.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from config.settings import Settings, worker_environment
from retrain.messages import synthetic_staleness
from stack.processes import free_port
from stack.topics import ensure_topics
from streams.producer import make_producer
from tools.bench import (
    ROOT,
    RUNWAY,
    backlog_spec,
    bench_settings,
    cleanup,
    cpu_seconds,
    measure_worker,
    preload,
    stop_process,
)
from tools.isolation_result import HEALTHY, HUNG, compare, delta, outcomes_after, run_order

SAMPLE_S = 0.5
SETTLE_TIMEOUT_S = 180.0


def rig_settings(
    settings: Settings, run: str, workdir: Path, call_timeout_s: float, reset_timeout_s: float
) -> Settings:
    """The agent's and stand-in's own world: topics, groups, Redis keys, registry, ports."""
    standin_port = free_port()
    return settings.model_copy(
        update={
            "topic_prefix": f"{run}-retrain.",
            "app_id": f"{run}-retrain",
            "redis_key_prefix": f"{run}-retrain",
            "datadir": workdir / "agent",
            "registry_dsn": f"sqlite:///{workdir / 'agent' / 'registry.sqlite3'}",
            "standin_port": standin_port,
            "retrain_orchestrator_url": f"http://127.0.0.1:{standin_port}",
            "retrain_web_port": free_port(),
            "retrain_call_timeout_s": call_timeout_s,
            "retrain_reset_timeout_s": reset_timeout_s,
        }
    )


@dataclass
class Snapshot:
    health: dict[str, Any]
    counters: dict[str, float]
    calls: list[dict[str, Any]]
    agent_cpu_s: float
    standin_cpu_s: float
    sent: int

    @property
    def last_seq(self) -> int:
        return max((int(c["seq"]) for c in self.calls), default=0)


def counters(metrics_text: str) -> dict[str, float]:
    """Prometheus counters as `name` or `name{label=value}` -> value."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name.endswith("_total"):
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


@dataclass
class Rig:
    """The stand-in orchestrator and the retrain agent, as subprocesses of this benchmark."""

    settings: Settings
    workdir: Path
    run_id: str
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    sent: int = 0  # STALE verdicts the feeder has sent
    http: aiohttp.ClientSession | None = None

    @property
    def standin(self) -> str:
        return f"http://127.0.0.1:{self.settings.standin_port}"

    @property
    def agent(self) -> str:
        return f"http://127.0.0.1:{self.settings.retrain_web_port}"

    def spawn(self, name: str, args: list[str]) -> None:
        with (self.workdir / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [RUNWAY, *args],
                env=worker_environment(self.settings),
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def start(self) -> None:
        (self.workdir / "agent").mkdir(parents=True, exist_ok=True)
        await ensure_topics(self.settings)
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self.spawn("standin", ["orchestrator-standin"])
        self.spawn("agent", ["retrain-agent"])
        await self.wait(self._ready, 90.0, "the agent and the stand-in to answer")

    def stop(self) -> None:
        for process in self.processes.values():
            stop_process(process)

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()

    async def get(self, url: str) -> Any:
        assert self.http is not None
        try:
            async with self.http.get(url) as response:
                response.raise_for_status()
                return await (response.text() if url.endswith("/metrics") else response.json())
        except (TimeoutError, aiohttp.ClientError):
            return None

    async def _ready(self) -> bool:
        health = await self.get(f"{self.agent}/health")
        return bool(health and health["ready"]) and bool(await self.get(f"{self.standin}/health"))

    async def wait(
        self, condition: Callable[[], Awaitable[bool]], timeout: float, what: str
    ) -> None:
        deadline = time.monotonic() + timeout
        while not await condition():
            for name, process in self.processes.items():
                if process.poll() is not None:
                    tail = (self.workdir / f"{name}.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout:.0f}s for {what}")
            await asyncio.sleep(0.25)

    async def set_hang(self, hang: bool) -> None:
        assert self.http is not None
        async with self.http.post(f"{self.standin}/control", json={"hang": hang}) as response:
            response.raise_for_status()

    async def snapshot(self) -> Snapshot:
        health = await self.get(f"{self.agent}/health")
        metrics = await self.get(f"{self.agent}/metrics")
        calls = await self.get(f"{self.standin}/calls")
        if health is None or metrics is None or calls is None:
            raise RuntimeError("the agent or the stand-in stopped answering")
        return Snapshot(
            health,
            counters(metrics),
            list(calls["calls"]),
            cpu_seconds(self.processes["agent"].pid),
            cpu_seconds(self.processes["standin"].pid),
            self.sent,
        )

    async def switch(self, phase: str) -> None:
        """Switch the stand-in and wait until the agent has felt it."""
        before = await self.snapshot()
        await self.set_hang(phase == HUNG)

        async def felt() -> bool:
            now = await self.snapshot()
            if phase == HUNG:
                return bool(now.health["breaker_opened"] > before.health["breaker_opened"])
            started = outcomes_after(now.calls, before.last_seq).get("started", 0)
            return now.health["breaker"] == "closed" and started > 0

        await self.wait(felt, SETTLE_TIMEOUT_S, f"the agent to see the orchestrator {phase}")

    async def feed(self, rate: float) -> None:
        """STALE verdicts for new models, `rate` a second: each one is a retrain request."""
        producer = make_producer(self.settings)
        await producer.start()
        topic = self.settings.topic("staleness")
        started = time.monotonic()
        try:
            while True:
                due = int((time.monotonic() - started) * rate) + 1
                while self.sent < due:
                    model = f"iso-{self.sent:07d}"
                    now = int(time.time() * 1000)
                    value = synthetic_staleness(model, "1", "STALE", "bench-isolation", now)
                    await producer.send(topic, value, key=model.encode())
                    self.sent += 1
                await asyncio.sleep(max(0.0, (due / rate) - (time.monotonic() - started)))
        finally:
            await producer.stop()

    async def sample(self, states: set[str], depth: list[int]) -> None:
        """The breaker states and queue depths the agent reports while a run measures."""
        while True:
            health = await self.get(f"{self.agent}/health")
            if health is not None:
                states.add(str(health["breaker"]))
                depth.append(int(health["queue_depth"]))
            await asyncio.sleep(SAMPLE_S)


def evidence(
    before: Snapshot, after: Snapshot, states: set[str], depth: list[int]
) -> dict[str, Any]:
    """What the agent and the stand-in did during one run."""
    requests = delta(after.counters, before.counters)
    prefix = "runway_retrain_requests_total{status="
    return {
        "standin_calls": outcomes_after(after.calls, before.last_seq),
        "orchestrator_calls": int(
            after.health["orchestrator_calls"] - before.health["orchestrator_calls"]
        ),
        "breaker_opened": int(after.health["breaker_opened"] - before.health["breaker_opened"]),
        "breaker_states_seen": sorted(states),
        "max_queue_depth": max(depth, default=0),
        "requests": {
            k[len(prefix) : -1]: int(v) for k, v in requests.items() if k.startswith(prefix)
        },
        "dlq_replayed": int(requests.get("runway_retrain_dlq_replayed_total", 0)),
        "staleness_events_sent": after.sent - before.sent,
        "agent_cpu_s": round(after.agent_cpu_s - before.agent_cpu_s, 2),
        "standin_cpu_s": round(after.standin_cpu_s - before.standin_cpu_s, 2),
    }


async def measure_run(
    rig: Rig, settings: Settings, phase: str, index: int, spec: dict[str, int]
) -> dict[str, Any]:
    """One run: a fresh backlog, the stand-in switched, one worker measured over it."""
    run = bench_settings(settings, f"{rig.run_id}-{index}-{phase}", rig.workdir, free_port())
    try:
        backlog = await preload(
            run, backlog_spec(spec["models"], spec["events"], spec["batch_size"], run.app_id)
        )
        await rig.switch(phase)
        states: set[str] = set()
        depth: list[int] = []
        before = await rig.snapshot()
        sampler = asyncio.create_task(rig.sample(states, depth))
        try:
            worker = await measure_worker(backlog, rig.workdir / f"worker-{index}.log", 900.0)
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        after = await rig.snapshot()  # before the next switch releases hung calls
    finally:
        with contextlib.suppress(Exception):
            await cleanup(run)
    return {
        "phase": phase,
        "events_per_s": round(worker["events_per_s"], 1),
        "events": backlog.events,
        "elapsed_s": round(worker["elapsed_s"], 2),
        "worker_cpu_s": round(worker["cpu_s"], 2),
        "events_per_cpu_s": round(
            (backlog.events - worker["events_at_first_commit"]) / max(worker["cpu_s"], 1e-9), 1
        ),
        "load_average_1m": round(worker["load_1m"], 2),
        **evidence(before, after, states, depth),
    }


def _sum(runs: list[dict[str, Any]], phase: str, key: str) -> Any:
    values = [run[key] for run in runs if run["phase"] == phase]
    if values and isinstance(values[0], dict):
        total: Counter[str] = Counter()
        for value in values:
            total.update(value)
        return dict(sorted(total.items()))
    return round(sum(values), 2)


async def run_isolation_bench(
    settings: Settings,
    events: int,
    batch_size: int,
    models: int,
    rounds: int,
    stale_rate: float,
    call_timeout_s: float,
    reset_timeout_s: float,
    warmup: bool = True,
    emit: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The whole benchmark; the result dict is what `--json` prints."""
    began = time.monotonic()

    def say(text: str) -> None:
        emit(f"[{time.monotonic() - began:6.1f}s] {text}")

    workdir = Path(tempfile.mkdtemp(prefix="runway-isolation-"))
    run_id = f"iso-{uuid.uuid4().hex[:8]}"
    rig = Rig(
        rig_settings(settings, run_id, workdir, call_timeout_s, reset_timeout_s), workdir, run_id
    )
    spec = {"events": events, "batch_size": batch_size, "models": models}
    order = run_order(rounds)
    runs: list[dict[str, Any]] = []
    feeder: asyncio.Task[None] | None = None
    warmup_run: dict[str, Any] | None = None
    try:
        say(f"starting the stand-in orchestrator and the retrain agent ({run_id}) ...")
        await rig.start()
        feeder = asyncio.create_task(rig.feed(stale_rate))
        if warmup:
            say(f"warm-up run (not counted): orchestrator healthy, {events // 4:,} events ...")
            spec_warmup = {**spec, "events": events // 4}
            warmup_run = await measure_run(rig, settings, HEALTHY, -1, spec_warmup)
            say(f"  {warmup_run['events_per_s']:,.0f} events/s")
        for index, phase in enumerate(order):
            say(f"run {index + 1}/{len(order)}: orchestrator {phase}, {events:,} events ...")
            runs.append(await measure_run(rig, settings, phase, index, spec))
            last = runs[-1]
            say(
                f"  {last['events_per_s']:,.0f} events/s; stand-in calls {last['standin_calls']},"
                f" breaker opened {last['breaker_opened']}x, seen {last['breaker_states_seen']}"
            )
            if feeder.done():
                feeder.result()  # raises what stopped it
    finally:
        say("stopping the agent and the stand-in, cleaning up ...")
        if feeder is not None:
            feeder.cancel()
            with contextlib.suppress(BaseException):
                await feeder
        rig.stop()
        await rig.close()
        # Every run's topics, groups' changelogs and Redis keys start with `bench-<run id>-`:
        # one sweep also catches a run interrupted while its topics were being created.
        sweep = f"bench-{run_id}-"
        everything = settings.model_copy(
            update={"topic_prefix": sweep, "app_id": sweep[:-1], "redis_key_prefix": sweep}
        )
        for world in (rig.settings, everything):
            with contextlib.suppress(Exception):
                await cleanup(world)
        shutil.rmtree(workdir, ignore_errors=True)
    verdict = compare([(run["phase"], run["events_per_s"]) for run in runs])
    result: dict[str, Any] = {
        "healthy_events_per_s": round(verdict.healthy_events_per_s, 1),
        "hung_events_per_s": round(verdict.hung_events_per_s, 1),
        "ratio": round(verdict.ratio, 4),
        "within_10_percent": verdict.within,
        "healthy_spread": round(verdict.healthy_spread, 4),
        "conclusive": verdict.conclusive,
        "order": order,
        "healthy_runs_events_per_s": [r["events_per_s"] for r in runs if r["phase"] == HEALTHY],
        "hung_runs_events_per_s": [r["events_per_s"] for r in runs if r["phase"] == HUNG],
    }
    # The worker's events per CPU-second: what a neighbour's load on the shared cores moves
    # least, so a second view of the same question.
    per_cpu = compare([(run["phase"], run["events_per_cpu_s"]) for run in runs])
    result.update(
        healthy_events_per_cpu_s=round(per_cpu.healthy_events_per_s, 1),
        hung_events_per_cpu_s=round(per_cpu.hung_events_per_s, 1),
        cpu_ratio=round(per_cpu.ratio, 4),
    )
    for phase in (HEALTHY, HUNG):
        for key in ("orchestrator_calls", "breaker_opened", "standin_calls", "requests",
                    "staleness_events_sent", "agent_cpu_s"):  # fmt: skip
            result[f"{key}_{phase}"] = _sum(runs, phase, key)
    result["breaker_opened"] = result["breaker_opened_hung"]  # the headline: it did open
    result["breaker_states_seen_hung"] = sorted(
        {s for r in runs if r["phase"] == HUNG for s in r["breaker_states_seen"]}
    )
    result.update(
        runs=runs,
        warmup_events_per_s=None if warmup_run is None else warmup_run["events_per_s"],
        events=events,
        batch_size=batch_size,
        models=models,
        partitions=settings.partitions,
        stale_rate_per_s=stale_rate,
        retrain_call_timeout_s=call_timeout_s,
        retrain_reset_timeout_s=reset_timeout_s,
        cpus=os.cpu_count(),
    )
    out = ROOT / "var" / "bench" / "isolation.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result
