"""Recovery commands: `runway registry-backup`, `registry-restore`, `registry-standby`,
`registry-promote` and `validate-failover`.

Each prints one JSON document on stdout (`validate-failover` a table unless `--json`) so that a
script (the DR drill) reads the figures without parsing prose; errors an operator can act on are
one sentence on stderr and exit code 1 (`validate-failover`: 0 healthy, 1 degraded, 2 failing).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

import click
import faust
from faust.cli import argument, option
from rich.console import Console
from rich.table import Table

from config.settings import Settings
from registry import backup as backups
from registry.failover import validate
from registry.standby import promote, replication, standby_dsn
from registry.store import wall_ms
from registry.validate import Check, Status, overall, report
from stack import standby as local_standby
from stack.errors import StackError

STYLE = {Status.OK: "green", Status.DEGRADED: "yellow", Status.FAILING: "red"}


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(1)


def _print(doc: dict[str, Any]) -> None:
    print(json.dumps(doc), flush=True)


def checks_table(checks: Sequence[Check]) -> Table:
    worst = overall(checks)
    table = Table(
        title=f"validate-failover: [{STYLE[worst]}]{worst.label}[/] (exit {int(worst)})",
        title_justify="left",
    )
    for name in ("check", "status", "detail"):
        table.add_column(name, no_wrap=name != "detail")
    for c in checks:
        table.add_row(c.name, f"[{STYLE[c.status]}]{c.status.label}[/]", c.detail)
    return table


def register(app: faust.App, settings: Settings) -> None:
    @app.command(
        option("--to", "uri", default=None, help="Directory or s3://bucket/prefix "
               "(default RUNWAY_REGISTRY_BACKUP_URI)."),
        option("--every", type=float, default=0.0,
               help="Seconds between snapshots until Ctrl-C (default: one snapshot)."),
    )  # fmt: skip
    async def registry_backup(self: object, uri: str | None, every: float) -> None:
        """Snapshot the SQLite registry (online backup API); `registry-agent` does it on a
        schedule."""
        while True:
            try:
                taken = await asyncio.to_thread(backups.backup, settings, uri)
            except backups.BackupError as exc:
                _fail(str(exc))
            _print(taken.as_json())
            if every <= 0:
                return
            await asyncio.sleep(every)

    @app.command(
        option("--snapshot", default=None, help="Snapshot name (default: the newest)."),
        option("--from", "uri", default=None, help="Directory or s3://bucket/prefix "
               "(default RUNWAY_REGISTRY_BACKUP_URI)."),
        option("--force", is_flag=True, default=False,
               help="Replace an existing database file (stop the registry's processes first)."),
        option("--list", "list_", is_flag=True, default=False, help="List the snapshots only."),
    )  # fmt: skip
    async def registry_restore(
        self: object, snapshot: str | None, uri: str | None, force: bool, list_: bool
    ) -> None:
        """Put a registry snapshot in place of the SQLite registry file."""
        try:
            if list_:
                target = backups.target_of(settings, uri)
                names = await asyncio.to_thread(target.names)
                _print({"snapshots": backups.snapshots(names)})
                return
            restored = await asyncio.to_thread(backups.restore, settings, snapshot, force, uri)
        except backups.BackupError as exc:
            _fail(str(exc))
        _print(restored.as_json())

    @app.command(
        argument("action", type=click.Choice(["up", "down", "status"])),
        option("--purge", is_flag=True, default=False,
               help="With down: delete its data directory (the next up makes a new standby)."),
    )  # fmt: skip
    async def registry_standby(self: object, action: str, purge: bool) -> None:
        """A local streaming standby of the stack's PostgreSQL (pg_basebackup -R), on
        RUNWAY_REGISTRY_STANDBY_PORT."""
        dsn = standby_dsn(settings)
        if action == "up":
            try:
                await local_standby.up(settings)
            except StackError as exc:
                if exc.log_tail:
                    print(exc.log_tail, file=sys.stderr)
                _fail(exc.sentence)
        elif action == "down":
            pid = await asyncio.to_thread(local_standby.down, settings, purge)
            _print({"stopped": pid, "purged": purge})
            return
        doc: dict[str, Any] = {"dsn": dsn, "running": local_standby.running(settings)}
        if doc["running"]:
            try:
                found = await asyncio.to_thread(replication, dsn)
                doc.update(found.as_json())
            except Exception as exc:  # noqa: BLE001 - status shows what it can
                doc["error"] = str(exc).splitlines()[0]
        _print(doc)

    @app.command(
        option("--dsn", default=None,
               help="The standby's DSN (default: the local standby, runway registry-standby)."),
        option("--wait", type=float, default=60.0, help="Seconds to wait for the promotion."),
    )  # fmt: skip
    async def registry_promote(self: object, dsn: str | None, wait: float) -> None:
        """Promote a PostgreSQL registry standby to primary (pg_promote); then point
        RUNWAY_REGISTRY_DSN at it."""
        try:
            done = await asyncio.to_thread(promote, dsn or standby_dsn(settings), wait)
        except Exception as exc:  # noqa: BLE001 - one sentence for the operator
            _fail(f"promotion failed: {str(exc).splitlines()[0]}")
        _print(done.as_json())

    @app.command(
        option("--json", "as_json", is_flag=True, default=False, help="One JSON document."),
    )
    async def validate_failover(self: object, as_json: bool) -> None:
        """Check the system after a failover: exit 0 healthy, 1 degraded, 2 failing."""
        checks = await validate(settings)
        doc = report(checks, wall_ms())
        if as_json:
            _print(doc)
        else:
            Console().print(checks_table(checks))
        raise SystemExit(int(overall(checks)))
