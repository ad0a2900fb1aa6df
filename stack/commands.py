"""`runway stack up|down|status [--brokers 3]` and `runway topics create`.

Errors the user can act on (a missing program, a taken port, a service that does not answer,
a topic with the wrong partition count) are printed as one sentence and exit with code 1.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Sequence
from typing import TypeVar

import click
import faust
from faust.cli import argument, option
from rich.console import Console
from rich.table import Table

from config.settings import Settings
from stack import api
from stack.errors import StackError, TopicMismatch
from stack.topics import create_topics

T = TypeVar("T")


def status_table(rows: Sequence[api.ServiceStatus], title: str) -> Table:
    table = Table(title=title)
    for column in ("service", "state", "pid", "address"):
        table.add_column(column)
    for row in rows:
        if not row.running:
            state = "[dim]stopped[/dim]"
        elif row.answering:
            state = "[green]running[/green]"
        else:
            state = "[yellow]running, not answering[/yellow]"
        table.add_row(row.name, state, str(row.pid or "-"), row.address)
    return table


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(1)


async def _guard(work: Awaitable[T]) -> T:
    try:
        return await work
    except StackError as exc:
        print(exc.log_tail, file=sys.stderr) if exc.log_tail else None
        _fail(exc.sentence)
    except TopicMismatch as exc:
        _fail(str(exc))
    raise AssertionError("unreachable")


def register(app: faust.App, settings: Settings) -> None:
    @app.command(
        argument("action", type=click.Choice(["up", "down", "status"])),
        option(
            "--brokers",
            type=click.Choice(["1", "3"]),
            default="1",
            help="1: the dev broker on 9092; 3: the three-broker cluster on 9192-9194.",
        ),
    )
    async def stack(self: object, action: str, brokers: str) -> None:
        """Start, stop or show the local stack (Kafka, Redis, S3, PostgreSQL)."""
        console = Console()
        layout = api.Layout.of(settings)
        if action == "up":
            started = time.monotonic()
            rows = await _guard(api.up(settings, int(brokers)))
            elapsed = time.monotonic() - started
            console.print(status_table(rows, f"runway stack ({layout.root}) up in {elapsed:.1f}s"))
        elif action == "down":
            stopped = api.down(settings)
            for name, pid in stopped:
                console.print(f"stopped {name} (pid {pid})")
            if not stopped:
                console.print("nothing was running")
        else:
            rows = await api.status(settings)
            console.print(status_table(rows, f"runway stack ({layout.root})"))

    @app.command(argument("action", type=click.Choice(["create"])))
    async def topics(self: object, action: str) -> None:
        """Create Runway's topics (partitions, replication, retention from settings)."""
        del action
        created = await _guard(create_topics(settings))
        for name in settings.topic_names.values():
            state = "created" if name in created else "exists"
            print(f"{name}: {state} ({settings.partitions} partitions)")
