"""`runway bench`'s latency phase: from an outcome's arrival to the speed view's write of it.

Why: the speed view is what people watch; its promise is freshness ("seconds"), and the worker's
checkpoint and speed-view intervals trade throughput for it. The figure is the time from an
outcome's Kafka CreateTime to the moment Redis shows it counted, at a steady load below the
worker's maximum (half of the main phase's `worker_events_per_s`), not while draining a backlog.

Method: one `runway worker` (every agent, the run's settings) on fresh topics. A warm-up of
2,000 events (every model labelled) is drained first: the group has committed every warm-up
record and each model's `labeled` count in Redis equals its warm-up outcomes. Then traffic paced
at `rate` events/s for `duration_s`: predictions and their outcomes, labels 1 s of event time
late, no unlabeled, early, duplicate or bad events, event time = wall clock, so every event falls
in the longest window of the speed view. Each record is sent with an explicit timestamp (the
wall clock at the send); its CreateTime is the one the send's metadata returns. A thread polls
every model's `labeled` field of its longest-window hash (`runway:model:{id}:window:{w}`) every
`poll_ms` and notes each change with the wall-clock time of the reply.

Pairing (`outcome_latencies`, pure): per model, outcomes in send order; the k-th outcome of a
model is in the view at the first poll whose count reaches the warm-up count + k (outcomes of a
model share a partition and are joined in order, and with no duplicates, early or unlabeled
events each one adds exactly one). Its latency is that poll's time minus its CreateTime. A poll
bounds the write from above: the figure is at most one poll period (plus a Redis round trip)
above the truth. Outcomes whose count never shows within the deadline are counted as unseen and
rank above every measured latency in the percentiles (nearest rank).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from redis import Redis

from config.connections import kafka_options, redis_options
from config.settings import Settings
from config.windows import parse_windows
from contracts.ids import escape_id
from stack.processes import WorkerProcess, wait_healthy
from stack.topics import ensure_topics
from streams.producer import make_producer
from tools.bench_sweep import committed_up_to, input_ends
from tools.traffic import TrafficSpec, generate, plan_models

DEFAULT_RATE = 5_000.0  # events/s when no main phase gives the maximum (`--only latency`)
DEFAULT_DURATION_S = 40.0
POLL_MS = 10.0
WARMUP_EVENTS = 2_000
CATCH_UP_S = 120.0  # longest wait for the warm-up, and for the last outcome after the last send
Phase = Callable[[str], Settings]


@dataclass(frozen=True)
class Poll:
    at_ms: float  # wall clock when the reply came
    model: str
    labeled: int


def outcome_latencies(
    sent: Mapping[str, Sequence[tuple[int, int]]],
    polls: Iterable[Poll],
    base: Mapping[str, int],
) -> tuple[list[tuple[int, float]], int]:
    """(CreateTime, latency ms) of every outcome seen in the view, and how many were never seen.

    `sent[model]`: the model's outcome records in send order, each (CreateTime ms, outcomes);
    `polls`: changes of each model's labeled count, in time order; `base[model]`: the count
    before the first of them was sent. Raises if a count shows an outcome before its send
    (the traffic or the base was not what this pairing assumes).
    """
    seen_by_model: dict[str, list[Poll]] = defaultdict(list)
    for poll in polls:
        seen_by_model[poll.model].append(poll)
    latencies: list[tuple[int, float]] = []
    unseen = 0
    for model, records in sent.items():
        observed = seen_by_model.get(model, [])
        target = base.get(model, 0)
        at = 0
        for create_ms, count in records:
            target += count
            while at < len(observed) and observed[at].labeled < target:
                at += 1
            if at == len(observed):
                unseen += count
                continue
            latency = observed[at].at_ms - create_ms
            if latency < 0:
                raise ValueError(
                    f"model {model!r}: labeled count {observed[at].labeled} at "
                    f"{observed[at].at_ms:.0f} ms, before its outcome's CreateTime {create_ms}"
                )
            latencies.extend([(create_ms, latency)] * count)
    return latencies, unseen


def nearest_rank(ordered: Sequence[float], total: int, q: float) -> float | None:
    """The q-quantile (nearest rank) of `total` values whose smallest are `ordered`; the
    others (unseen) rank above them all, so a rank among them has no value (None)."""
    if total <= 0:
        return None
    rank = max(math.ceil(q * total), 1)
    return ordered[rank - 1] if rank <= len(ordered) else None


def p99_by_slice(latencies: Sequence[tuple[int, float]], slice_ms: int) -> list[float]:
    """The p99 (nearest rank) of the outcomes sent in each `slice_ms` from the first one, in
    order (an empty slice repeats nothing: it is left out); shows a lag that builds or bursts."""
    if not latencies:
        return []
    first = min(create for create, _ in latencies)
    slices: dict[int, list[float]] = defaultdict(list)
    for create, latency in latencies:
        slices[(create - first) // slice_ms].append(latency)
    out = []
    for index in sorted(slices):
        ordered = sorted(slices[index])
        value = nearest_rank(ordered, len(ordered), 0.99)
        assert value is not None
        out.append(round(value, 1))
    return out


def summarize(latencies: Sequence[tuple[int, float]], unseen: int) -> dict[str, Any]:
    ordered = sorted(latency for _, latency in latencies)
    total = len(ordered) + unseen

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value, 1)

    return {
        "outcome_to_view_p50_ms": ms(nearest_rank(ordered, total, 0.50)),
        "outcome_to_view_p95_ms": ms(nearest_rank(ordered, total, 0.95)),
        "outcome_to_view_p99_ms": ms(nearest_rank(ordered, total, 0.99)),
        "outcome_to_view_max_ms": ms(ordered[-1] if ordered and not unseen else None),
        "outcome_to_view_outcomes": len(ordered),
        "outcome_to_view_unseen": unseen,
        "outcome_to_view_p99_ms_by_10s": p99_by_slice(latencies, 10_000),
    }


class Poller(threading.Thread):
    """Reads every model's labeled count every `period_ms`; keeps the changes.

    A thread with a blocking client, so the paced producer's event loop cannot delay a poll.
    """

    def __init__(self, settings: Settings, models: list[str], period_ms: float) -> None:
        super().__init__(name="latency-poller", daemon=True)
        longest = max(parse_windows(settings.windows), key=lambda w: w.length_ms)
        prefix = settings.redis_key_prefix
        self.models = models
        self.names = [f"{prefix}:model:{escape_id(m)}:window:{longest.name}" for m in models]
        self.period_s = period_ms / 1000
        self.redis = Redis.from_url(settings.redis_url, **redis_options(settings))
        self.changes: list[Poll] = []
        self.latest: dict[str, int] = {}
        self.polls = 0
        self.first_s = self.last_s = 0.0
        self.max_gap_s = 0.0  # the longest time between two polls' replies
        self.error: BaseException | None = None
        self._halt = threading.Event()

    def poll(self) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for name in self.names:
            pipe.hget(name, "labeled")
        values = pipe.execute()
        at_ms = time.time() * 1000
        for model, value in zip(self.models, values, strict=True):
            labeled = int(value) if value is not None else 0
            if self.latest.get(model) != labeled:
                self.latest[model] = labeled
                self.changes.append(Poll(at_ms, model, labeled))
        self.polls += 1

    def run(self) -> None:
        try:
            self.polls = 0  # the owner's own polls before the start (the warm-up) are not ours
            self.first_s = next_s = time.monotonic()
            while not self._halt.is_set():
                self.poll()
                now = time.monotonic()
                if self.polls > 1:
                    self.max_gap_s = max(self.max_gap_s, now - self.last_s)
                self.last_s = now
                next_s += self.period_s
                self._halt.wait(max(next_s - time.monotonic(), 0.0))
        except BaseException as exc:  # noqa: BLE001 - handed to the phase, which raises it
            self.error = exc

    def stop(self) -> None:
        """Stop polling (twice is fine); raises what made the thread fail, if anything did."""
        self._halt.set()
        if self.is_alive():
            self.join(timeout=10)
        self.redis.close()
        if self.error is not None:
            raise RuntimeError(f"latency poller failed: {self.error!r}") from self.error

    @property
    def mean_period_ms(self) -> float:
        return 1000 * (self.last_s - self.first_s) / max(self.polls - 1, 1)


def _spec(
    models: int, batch_size: int, events: int, rate: float, start_ms: int, run_id: str
) -> TrafficSpec:
    return TrafficSpec(
        models=models,
        rate=rate,
        events=events,
        event_rate=rate,
        batch_size=batch_size,
        start_ms=start_ms,
        label_delay="fixed",
        label_delay_ms=1_000.0,
        unlabeled_share=0.0,
        early_share=0.0,
        duplicate_share=0.0,
        malformed_share=0.0,
        run_id=run_id,
    )


async def _send(
    settings: Settings, spec: TrafficSpec, rate: float | None, stop: Callable[[], None]
) -> dict[str, list[tuple[int, int]]]:
    """Send `spec`'s records, paced to `rate` events/s (None: unpaced); per model, its
    outcome records as (CreateTime, outcomes) in send order. `stop` is checked between sends
    (it raises when the worker died)."""
    producer = make_producer(settings)
    await producer.start()
    started = time.monotonic()
    sent_events = 0
    pending: list[tuple[str, Any, int]] = []
    try:
        for record in generate(spec, random.Random(2)):
            if rate:
                ahead = sent_events / rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
                    stop()
            future = await producer.send(
                settings.topic(record.topic),
                record.value,
                key=record.key,
                timestamp_ms=int(time.time() * 1000),
            )
            if record.topic == "outcomes":
                pending.append((record.key.decode(), future, record.events))
            sent_events += record.events
        await producer.flush()
        per_model: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for model, future, events in pending:
            meta = await future
            per_model[model].append((int(meta.timestamp), events))  # as sent, on CreateTime
        return per_model
    finally:
        await producer.stop()


async def _wait(check: Callable[[], Any], worker: WorkerProcess, timeout_s: float) -> bool:
    """Until `check()` holds (True) or `timeout_s` passed (False); the worker must live."""
    deadline = time.monotonic() + timeout_s
    while True:
        if not worker.alive():
            raise worker.died()
        if await check():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)


async def latency_phase(
    fresh: Phase,
    cleanup: Callable[[Settings], Any],
    *,
    rate: float,
    rate_source: str,
    duration_s: float,
    models: int,
    batch_size: int,
    emit: Callable[[str], None],
    poll_ms: float = POLL_MS,
) -> dict[str, Any]:
    """The phase; the JSON keys `outcome_to_view_*` (see the module docstring)."""
    settings = fresh("late")
    workdir = Path(settings.datadir).parent
    model_ids = [plan.model_id for plan in plan_models(TrafficSpec(models), random.Random(0))]
    worker = WorkerProcess(settings, workdir / "worker.log")
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    poller: Poller | None = None
    try:
        await ensure_topics(settings)
        worker.start()
        await wait_healthy([worker], 120.0)
        await admin.start()

        def alive() -> None:
            if not worker.alive():
                raise worker.died()

        now_ms = int(time.time() * 1000)
        warm = _spec(models, batch_size, WARMUP_EVENTS, 1_000.0, now_ms - 60_000, "warm")
        warm_sent = await _send(settings, warm, None, alive)
        base = {m: sum(n for _, n in records) for m, records in warm_sent.items()}
        poller = Poller(settings, model_ids, poll_ms)

        ends = await input_ends(settings)  # the warm-up is all sent: its ends are final

        async def warmed() -> bool:
            poller.poll()
            return await committed_up_to(admin, settings, ends) and all(
                poller.latest.get(m, 0) == base.get(m, 0) for m in model_ids
            )

        if not await _wait(warmed, worker, CATCH_UP_S):
            raise TimeoutError(f"latency warm-up not in the view after {CATCH_UP_S:.0f}s")
        poller.changes.clear()
        events = max(2, round(rate * duration_s))
        emit(f"latency: {events:,} events at {rate:,.0f} events/s ({rate_source}) ...")
        poller.start()
        began = time.monotonic()
        spec = _spec(models, batch_size, events, rate, int(time.time() * 1000), settings.app_id)
        sent = await _send(settings, spec, rate, alive)
        sending_s = time.monotonic() - began
        expected = {m: base.get(m, 0) + sum(n for _, n in sent.get(m, [])) for m in model_ids}

        async def all_seen() -> bool:
            return all(poller.latest.get(m, 0) >= expected[m] for m in model_ids)

        await _wait(all_seen, worker, CATCH_UP_S)
        poller.stop()
        beyond = {m: n for m, n in poller.latest.items() if n > expected[m]}
        if beyond:  # more labels than outcomes sent: the pairing's premise does not hold
            raise RuntimeError(f"labeled counts beyond the outcomes sent: {beyond} > {expected}")
        latencies, unseen = outcome_latencies(sent, poller.changes, base)
    finally:
        if poller is not None:
            with contextlib.suppress(RuntimeError):
                poller.stop()
        await admin.close()
        worker.stop()
        await cleanup(settings)
    result = summarize(latencies, unseen)
    result.update(
        outcome_to_view_rate_events_per_s=round(rate, 1),
        outcome_to_view_rate_source=rate_source,
        outcome_to_view_sent_events_per_s=round(events / sending_s, 1),
        outcome_to_view_duration_s=round(sending_s, 1),
        outcome_to_view_poll_ms=poll_ms,
        outcome_to_view_poll_mean_ms=round(poller.mean_period_ms, 2),
        outcome_to_view_poll_max_gap_ms=round(poller.max_gap_s * 1000, 1),
        outcome_to_view_checkpoint_interval_ms=settings.checkpoint_interval_ms,
        outcome_to_view_speed_view_interval_ms=settings.speed_view_interval_ms,
    )
    emit(
        f"  p50 {result['outcome_to_view_p50_ms']} ms, p95 {result['outcome_to_view_p95_ms']} ms,"
        f" p99 {result['outcome_to_view_p99_ms']} ms, max {result['outcome_to_view_max_ms']} ms"
        f" over {result['outcome_to_view_outcomes']:,} outcomes ({unseen:,} unseen)"
    )
    return result
