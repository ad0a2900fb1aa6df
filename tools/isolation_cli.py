"""`runway bench-isolation` on the command line: options, the rich table, `--json`."""

from __future__ import annotations

import json
import sys
from typing import Any

import faust
from faust.cli import option

from config.settings import Settings
from tools.isolation_bench import run_isolation_bench


def _tables(result: dict[str, Any]) -> tuple[Any, Any]:
    """Per run: the join's figure and what the agent and the stand-in did meanwhile; then the
    verdict. Narrow enough for an 80-column terminal (the JSON has everything)."""
    from rich.table import Table

    runs = Table(title=f"join over {result['events']:,} events a run, records of "
                 f"{result['batch_size']}; retrain agent fed {result['stale_rate_per_s']:g} "
                 "STALE/s")  # fmt: skip
    for column in ("#", "orchestrator", "join ev/s", "stand-in calls", "agent calls", "breaker",
                   "to DLQ", "agent CPU s"):  # fmt: skip
        runs.add_column(column, justify="left" if column in ("orchestrator", "stand-in calls",
                                                             "breaker") else "right")  # fmt: skip
    for index, run in enumerate(result["runs"], 1):
        calls = run["standin_calls"]
        opened = run["breaker_opened"]
        runs.add_row(
            str(index),
            run["phase"],
            f"{run['events_per_s']:,.0f}",
            ", ".join(f"{k.replace('duplicate', 'dup')} {v}" for k, v in calls.items()) or "-",
            str(run["orchestrator_calls"]),
            f"opened {opened}x" if opened else "/".join(run["breaker_states_seen"]),
            str(run["requests"].get("dead-lettered", 0)),
            f"{run['agent_cpu_s']:.1f}",
        )
    verdict = Table(title="hung vs healthy orchestrator")
    verdict.add_column("measure")
    verdict.add_column("value", justify="right")
    within = "yes" if result["within_10_percent"] else "NO"
    for label, value in (
        ("join ev/s, healthy (mean)", f"{result['healthy_events_per_s']:,.0f}"),
        ("join ev/s, hung (mean)", f"{result['hung_events_per_s']:,.0f}"),
        ("ratio hung / healthy", f"{result['ratio']:.3f}"),
        ("within 10 %", within),
        ("spread of the healthy runs", f"{result['healthy_spread']:.1%}"),
        ("conclusive (spread <= 10 %)", "yes" if result["conclusive"] else "NO: noisy machine"),
        ("ratio of join ev per worker CPU-s", f"{result['cpu_ratio']:.3f}"),
        ("breaker opened (hung / healthy runs)",
         f"{result['breaker_opened_hung']} / {result['breaker_opened_healthy']}"),
    ):  # fmt: skip
        verdict.add_row(label, value)
    return runs, verdict


def register(app: faust.App, settings: Settings) -> None:
    """Declare `runway bench-isolation` on the Faust app's CLI."""

    @app.command(
        option("--events", type=int, default=400_000, help="Backlog events per run."),
        option("--batch-size", type=int, default=100, help="Events per record."),
        option("--models", type=int, default=10, help="Synthetic models of the backlog."),
        option("--rounds", type=int, default=2, help="Hung runs; healthy runs = rounds + 1."),
        option("--stale-rate", type=float, default=20.0, help="STALE verdicts a second."),
        option("--call-timeout-s", type=float, default=2.0, help="Agent's call timeout."),
        option("--reset-timeout-s", type=float, default=5.0, help="Agent's breaker reset."),
        option(
            "--warmup/--no-warmup",
            default=True,
            help="First a healthy run of events/4, not counted.",
        ),
        option("--json", "as_json", is_flag=True, default=False, help="Print one JSON object."),
        name="bench-isolation",
    )
    async def bench_isolation(
        self: Any,
        events: int,
        batch_size: int,
        models: int,
        rounds: int,
        stale_rate: float,
        call_timeout_s: float,
        reset_timeout_s: float,
        warmup: bool,
        as_json: bool,
    ) -> None:
        """The join's throughput with a healthy and with a hung orchestrator, in one run."""

        def say(text: str) -> None:
            print(text, file=sys.stderr if as_json else sys.stdout, flush=True)

        result = await run_isolation_bench(
            settings, events, batch_size, models, rounds, stale_rate,
            call_timeout_s, reset_timeout_s, warmup, emit=say,
        )  # fmt: skip
        if as_json:
            print(json.dumps(result))
        else:
            from rich.console import Console

            for table in _tables(result):
                Console().print(table)
