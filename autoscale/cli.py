"""`runway lag` and `runway autoscale` on the Faust app's CLI; `lag_table` is pure (tested)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import faust
from faust.cli import option
from rich.console import Console
from rich.live import Live
from rich.table import Table

from autoscale.lag import GroupLag, as_json
from autoscale.metrics import LagMetrics
from autoscale.probe import LagProbe, sample_twice
from autoscale.supervisor import Autoscaler
from config.settings import Settings
from streams.signals import until_signalled


def _fmt(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:,.1f}{unit}"


def lag_table(lag: GroupLag) -> Table:
    """Per-partition rows, then the group's line (lag = max, offset lag = sum)."""
    table = Table(title=f"consumer group {lag.group}: lag", title_justify="left")
    for name in ("topic", "partition", "committed", "end", "offset lag", "lag", "rate", "drain"):
        table.add_column(name, justify="left" if name == "topic" else "right", no_wrap=True)
    for p in lag.partitions:
        table.add_row(
            p.topic,
            str(p.partition),
            "-" if p.committed is None else f"{p.committed:,}",
            f"{p.end:,}",
            f"{p.offset_lag:,}",
            _fmt(p.lag_s, "s"),
            _fmt(p.rate, "/s"),
            _fmt(p.drain_s, "s"),
        )
    table.add_section()
    table.add_row(
        "group",
        "",
        "",
        "",
        f"{lag.offset_lag:,}",
        _fmt(lag.lag_s, "s"),
        _fmt(lag.consumption_rate, "/s"),
        _fmt(lag.drain_s, "s"),
        style="bold",
    )
    return table


async def _lag(
    settings: Settings,
    watch: bool,
    as_json_: bool,
    interval: float,
    port: int,
    stop: asyncio.Event,
) -> None:
    console = Console()
    async with LagProbe.for_join(settings) as probe:
        if not watch:
            lag = await sample_twice(probe, interval)
            if as_json_:
                print(json.dumps(as_json(lag)))
            else:
                console.print(lag_table(lag))
            return
        metrics = LagMetrics()
        if port:
            metrics.serve(settings.web_host, port)
        live = None if as_json_ else Live(console=console, auto_refresh=False)
        with live or contextlib.nullcontext():
            while not stop.is_set():
                lag = await probe.sample()
                metrics.observe(lag)
                if live is None:
                    print(json.dumps(as_json(lag)), flush=True)
                else:
                    live.update(lag_table(lag), refresh=True)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval)


def register(app: faust.App, settings: Settings) -> None:
    """Declare `runway lag` and `runway autoscale` on the Faust app's CLI."""

    @app.command(
        option("--watch", is_flag=True, default=False, help="Refresh until Ctrl-C."),
        option("--json", "as_json_", is_flag=True, default=False, help="JSON (a line per sample)."),
        option("--interval", type=float, default=2.0, help="Seconds between samples."),
        option("--metrics-port", type=int, default=0, help="With --watch: serve /metrics here."),
    )
    async def lag(
        self: Any, watch: bool, as_json_: bool, interval: float, metrics_port: int
    ) -> None:
        """Lag in seconds of the join's consumer group, per partition of its input topics."""
        try:
            await until_signalled(
                lambda stop: _lag(settings, watch, as_json_, interval, metrics_port, stop)
            )
        except LookupError as exc:  # no such topic: say so, no traceback
            raise SystemExit(f"error: {exc.args[0]}") from None

    @app.command()
    async def autoscale(self: Any) -> None:
        """Run local workers and size them by the group's lag (RUNWAY_AUTOSCALE_* settings)."""
        autoscaler = Autoscaler(settings, say=lambda line: print(line, flush=True))
        await until_signalled(autoscaler.run)
