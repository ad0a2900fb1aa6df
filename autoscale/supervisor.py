"""`runway autoscale`'s engine: local `runway worker` processes sized by `decision.decide`.

Each worker slot `i` has its own data directory `<autoscale_dir>/worker-<i>` and web port
`web_port + i`, and logs to `<autoscale_dir>/worker-<i>.log`. Scaling up starts the lowest free
slots; scaling down stops the highest ones with SIGTERM and waits (the worker leaves the group
cleanly, so its partitions move at once instead of after the session timeout; SIGKILL only if
it has not exited after `stack.processes.STOP_TIMEOUT_S`). A worker that dies on its own is
restarted in its slot. Stop (Ctrl-C, SIGTERM) stops every worker the same clean way.

The process handling and the slot layout are `stack.processes.WorkerProcess.in_slot` (new
session, parent-death signal, SIGTERM then wait), the demo's too: reused, not copied.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from autoscale.decision import Decision, Memory, Observation, Policy, decide
from autoscale.lag import GroupLag
from autoscale.metrics import LagMetrics
from autoscale.probe import LagProbe
from config.settings import Settings
from stack.processes import WorkerProcess


def policy_from(settings: Settings) -> Policy:
    return Policy(
        min_workers=settings.autoscale_min_workers,
        max_workers=settings.autoscale_max_workers,
        scale_up_lag_s=settings.autoscale_scale_up_lag_s,
        scale_down_lag_s=settings.autoscale_scale_down_lag_s,
        stabilization_s=settings.autoscale_stabilization_s,
        cooldown_s=settings.autoscale_cooldown_s,
    )


@dataclass(frozen=True)
class Event:
    """One line of the autoscaler's log (printed as JSON: tests and operators parse it)."""

    at_ms: int
    event: str  # "decision", "started", "stopped", "restarted"
    workers: int
    lag_s: float | None = None
    offset_lag: int | None = None
    target: int | None = None
    action: str | None = None
    reason: str | None = None
    slot: int | None = None
    how: str | None = None


class Autoscaler:
    def __init__(
        self,
        settings: Settings,
        say: Callable[[str], None] = print,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.policy = policy_from(settings)
        self.metrics = LagMetrics()
        self.workers: dict[int, WorkerProcess] = {}
        self.memory = Memory()
        self._say = say
        self._wall_ms = wall_ms
        self._monotonic = monotonic

    def _log(self, event: Event) -> None:
        self._say(json.dumps({k: v for k, v in asdict(event).items() if v is not None}))

    def _start_slot(self, index: int) -> None:
        worker = WorkerProcess.in_slot(self.settings, Path(self.settings.autoscale_dir), index)
        worker.start()
        self.workers[index] = worker

    async def _resize(self, target: int) -> None:
        while len(self.workers) < target:
            index = min(set(range(target)) - set(self.workers))
            self._start_slot(index)
            self._log(Event(self._wall_ms(), "started", len(self.workers), slot=index))
        doomed = sorted(self.workers)[target:]
        if doomed:
            stopping = [self.workers.pop(i) for i in doomed]
            hows = await asyncio.gather(*(asyncio.to_thread(w.stop) for w in stopping))
            for worker, how in zip(stopping, hows, strict=True):
                self._log(
                    Event(self._wall_ms(), "stopped", len(self.workers), slot=worker.index, how=how)
                )

    def _restart_dead(self) -> None:
        for index, worker in list(self.workers.items()):
            if not worker.alive():
                code = worker.process.returncode if worker.process else None
                self._start_slot(index)
                how = f"exit {code}; see {worker.log_path}"
                self._log(
                    Event(self._wall_ms(), "restarted", len(self.workers), slot=index, how=how)
                )

    def step(self, lag: GroupLag) -> Decision:
        """Decide from one lag sample (pure but for the memory it keeps)."""
        seen = Observation(
            workers=len(self.workers),
            lag_s=lag.lag_s,
            partitions=lag.partition_count,
            offset_lag=lag.offset_lag,
            consumption_rate=lag.consumption_rate,
            production_rate=lag.production_rate,
        )
        decision = decide(self.policy, seen, self.memory, self._monotonic())
        self.memory = decision.memory
        return decision

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.settings
        Path(settings.autoscale_dir).mkdir(parents=True, exist_ok=True)
        if settings.autoscale_metrics_port:
            self.metrics.serve(settings.web_host, settings.autoscale_metrics_port)
        probe = LagProbe.for_join(settings)
        await probe.start()
        try:
            await self._resize(self.policy.min_workers)
            while not stop.is_set():
                self._restart_dead()
                try:
                    lag = await probe.sample()
                except Exception as exc:  # Kafka hiccup: keep the workers, try again
                    failed = {"event": "sample_failed", "error": repr(exc)}
                    self._say(json.dumps({"at_ms": self._wall_ms(), **failed}))
                else:
                    self.metrics.observe(lag)
                    decision = self.step(lag)
                    self.metrics.scaled(
                        settings.app_id, len(self.workers), decision.workers, decision.capped
                    )
                    self._log(
                        Event(
                            lag.at_ms,
                            "decision",
                            len(self.workers),
                            lag_s=round(lag.lag_s, 3),
                            offset_lag=lag.offset_lag,
                            target=decision.workers,
                            action=decision.action,
                            reason=decision.reason,
                        )
                    )
                    if decision.workers != len(self.workers):
                        await self._resize(decision.workers)
                        self.metrics.scaled(
                            settings.app_id, len(self.workers), decision.workers, decision.capped
                        )
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), settings.autoscale_interval_s)
        finally:
            await self._resize(0)
            await probe.stop()
