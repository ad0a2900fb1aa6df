"""`runway generate`: send synthetic traffic (`tools.traffic`) to Kafka at a chosen rate.

Why a separate module: generation is pure and tested alone; this is the thin I/O shell around
it (pacing, progress bar; the producer is the product's own, `streams.producer`), wired into
the Faust CLI by `register`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click
import faust
from faust.cli import option

from config.settings import Settings
from streams.producer import make_producer
from tools.traffic import TrafficSpec, generate

MAX_IN_FLIGHT = 2_000  # send futures awaited together, so errors surface and memory stays flat


@dataclass(frozen=True)
class GenerateReport:
    records: int
    events: int
    bytes: int
    elapsed_s: float
    events_per_s: float


class _Pacer:
    """Sleeps so that `events` sent so far never run ahead of `rate` events per second."""

    def __init__(self, rate: float | None, clock: Callable[[], float]) -> None:
        self.rate = rate if rate and rate > 0 else None
        self.clock = clock
        self.start = clock()

    async def wait(self, events: int) -> None:
        if self.rate is None:
            return
        ahead = events / self.rate - (self.clock() - self.start)
        if ahead > 0.005:
            await asyncio.sleep(ahead)


async def produce(
    settings: Settings,
    spec: TrafficSpec,
    progress: bool,
    rng: random.Random | None = None,
    clock: Callable[[], float] = time.monotonic,
    on_sent: Callable[[int, int], None] | None = None,
) -> GenerateReport:
    """Send every record of `generate(spec, rng)`, paced to `spec.rate`; count what was sent.

    `on_sent(records, events)` is told of every record as it goes (the demo's live footer).
    """
    topics = {"predictions": settings.topic("predictions"), "outcomes": settings.topic("outcomes")}
    producer = make_producer(settings)
    await producer.start()
    records = events = nbytes = 0
    in_flight: list[asyncio.Future[Any]] = []
    bar = _progress_bar(spec) if progress else None
    pacer = _Pacer(spec.rate, clock)
    started = clock()
    try:
        for record in generate(spec, rng or random.Random(1)):
            in_flight.append(
                await producer.send(topics[record.topic], record.value, key=record.key)
            )
            records += 1
            events += record.events
            nbytes += len(record.value)
            if on_sent is not None:
                on_sent(1, record.events)
            if len(in_flight) >= MAX_IN_FLIGHT:
                await asyncio.gather(*in_flight)
                in_flight.clear()
            if bar is not None:
                bar.update(events)
            await pacer.wait(events)
        await producer.flush()
        await asyncio.gather(*in_flight)
    finally:
        if bar is not None:
            bar.close(events)
        await producer.stop()
    elapsed = max(clock() - started, 1e-9)
    return GenerateReport(records, events, nbytes, elapsed, events / elapsed)


class _progress_bar:  # noqa: N801 - used like a function
    """A rich progress bar over events sent (the total is an estimate: shares are random)."""

    def __init__(self, spec: TrafficSpec) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]generate"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("events"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        self.task = self.progress.add_task("generate", total=spec.expected_sent_events)
        self.progress.start()
        self.last = 0

    def update(self, events: int) -> None:
        if events - self.last >= 1000:
            self.progress.update(self.task, completed=events)
            self.last = events

    def close(self, events: int) -> None:
        self.progress.update(self.task, completed=events, total=max(events, 1))
        self.progress.stop()


def register(app: faust.App, settings: Settings) -> None:
    """Declare `runway generate` on the Faust app's CLI."""

    @app.command(
        option("--models", type=int, default=10, help="Number of synthetic models."),
        option("--rate", type=float, default=1000.0, help="Events/s to send; 0 = unpaced."),
        option("--duration", type=float, default=60.0, help="Seconds of event time."),
        option("--events", type=int, default=None, help="Total valid events (beats duration)."),
        option("--event-rate", type=float, default=None, help="Event-time events/s (def. rate)."),
        option("--batch-size", type=int, default=100, help="Events per record (1 = no array)."),
        option("--linger-ms", type=int, default=1000, help="Event-time age to send a batch."),
        option("--start-ms", type=int, default=None, help="Event time of the first event (now)."),
        option(
            "--label-delay",
            type=click.Choice(["exponential", "fixed", "uniform"]),
            default="exponential",
            help="Label delay distribution.",
        ),
        option("--label-delay-ms", type=float, default=5000.0, help="Mean/fixed/max delay."),
        option("--unlabeled-share", type=float, default=0.1, help="Predictions never labeled."),
        option("--early-share", type=float, default=0.05, help="Outcomes sent first."),
        option("--duplicate-share", type=float, default=0.01, help="Events sent twice."),
        option("--malformed-share", type=float, default=0.001, help="Bad items per event."),
        option("--features", type=int, default=0, help="Numeric features per prediction."),
        option("--drain/--no-drain", default=True, help="Send pending outcomes at the end."),
        option("--run-id", type=str, default=None, help="Prediction id prefix."),
        option("--model-version", type=str, default="v1", help="Every model's model_version."),
        option("--drift-models", type=int, default=0, help="The first N models drift."),
        option(
            "--drift-after-s", type=float, default=0.0, help="...after this much event time (s)."
        ),
        option(
            "--drift-shift",
            type=float,
            default=1.5,
            help="Score shift: binary logit, regression in units of the model's spread.",
        ),
        option("--seed", type=int, default=1, help="Random seed."),
        option("--progress/--no-progress", default=True, help="Show a progress bar."),
    )
    async def generate(
        self: Any,
        models: int,
        rate: float,
        duration: float,
        events: int | None,
        event_rate: float | None,
        batch_size: int,
        linger_ms: int,
        start_ms: int | None,
        label_delay: str,
        label_delay_ms: float,
        unlabeled_share: float,
        early_share: float,
        duplicate_share: float,
        malformed_share: float,
        features: int,
        drain: bool,
        run_id: str | None,
        model_version: str,
        drift_models: int,
        drift_after_s: float,
        drift_shift: float,
        seed: int,
        progress: bool,
    ) -> None:
        """Produce synthetic predictions and outcomes."""
        spec = TrafficSpec(
            models=models,
            rate=rate,
            duration_s=duration,
            events=events,
            event_rate=event_rate,
            batch_size=batch_size,
            linger_ms=linger_ms or None,
            start_ms=start_ms if start_ms is not None else int(time.time() * 1000),
            label_delay=label_delay,  # type: ignore[arg-type]
            label_delay_ms=label_delay_ms,
            unlabeled_share=unlabeled_share,
            early_share=early_share,
            duplicate_share=duplicate_share,
            malformed_share=malformed_share,
            drain=drain,
            features=features,
            run_id=run_id,
            model_version=model_version,
            drift_models=drift_models,
            drift_after_ms=round(drift_after_s * 1000),
            drift_shift=drift_shift,
        )
        report = await produce(settings, spec, progress, rng=random.Random(seed))
        self.say(
            f"sent {report.events} events in {report.records} records "
            f"({report.bytes / 1e6:.1f} MB) in {report.elapsed_s:.1f}s: "
            f"{report.events_per_s:,.0f} events/s"
        )
