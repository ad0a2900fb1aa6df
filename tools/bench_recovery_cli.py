"""`runway bench-recovery` on the command line: options, the rich table, `--json`."""

from __future__ import annotations

import json
import sys
from typing import Any

import faust
from faust.cli import option

from config.settings import Settings
from tools.bench_recovery import PHASES, run_recovery_bench


def _seconds(value: Any) -> str:
    return "-" if value is None else f"{value:,.2f} s"


def _rate(value: Any, unit: str, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f} {unit}".strip()


def table(result: dict[str, Any]) -> Any:
    """Cold restore against the standby's takeover, then the failovers after SIGKILL; the
    snapshot phase's figures in a table of their own."""
    from rich.console import Group

    tables = []
    if "restore_s" in result and "standby_restore_s" in result:
        tables.append(changelog_table(result))
    if "snapshot_restore_s" in result:
        tables.append(snapshot_table(result))
    return Group(*tables)


def snapshot_table(result: dict[str, Any]) -> Any:
    from rich.table import Table

    out = Table(
        title=f"runway bench-recovery, snapshot: {result['snapshot_events']:,} events joined, "
        f"{result['partitions']} partitions"
    )
    out.add_column("measure")
    out.add_column("value", justify="right")
    rows = [
        ("snapshot_bytes", f"{result['snapshot_bytes']:,}"),
        ("snapshot_upload_mb_per_s", _rate(result["snapshot_upload_mb_per_s"], "MB/s", 2)),
        ("snapshot_restore_s (downloads)", _seconds(result["snapshot_restore_s"])),
        ("snapshot_restore_mb_per_s", _rate(result["snapshot_restore_mb_per_s"], "MB/s", 2)),
        ("snapshot_tail_records", f"{result['snapshot_tail_records']:,}"),
        ("changelog records (whole)", f"{result['snapshot_changelog_records']:,}"),
        ("snapshot_tail_restore_s", _seconds(result["snapshot_tail_restore_s"])),
        ("snapshot_first_record_after_s", _seconds(result["snapshot_first_record_after_s"])),
    ]
    if "snapshot_probe_bytes" in result:
        rows += [
            ("probe bytes (one partition)", f"{result['snapshot_probe_bytes']:,}"),
            ("probe upload", _rate(result["snapshot_probe_upload_mb_per_s"], "MB/s")),
            ("probe restore", _rate(result["snapshot_probe_restore_mb_per_s"], "MB/s")),
            ("probe restore CPU", _rate(result["snapshot_probe_restore_cpu_s_per_gb"], "s/GB", 2)),
        ]
    for label, value in rows:
        out.add_row(label, value)
    return out


def changelog_table(result: dict[str, Any]) -> Any:
    from rich.table import Table

    out = Table(
        title=f"runway bench-recovery: {result['events']:,} events joined, "
        f"{result['partitions']} partitions, {result['state_live_keys']:,} live state keys"
    )
    out.caption = (
        f"load average {result['load_average_1m_at_start']} at the start, "
        f"{result['load_average_1m_at_end']} at the end, {result['cpus']} CPUs"
    )
    out.add_column("measure")
    out.add_column("no standby (cold)", justify="right")
    out.add_column("standby replica", justify="right")
    for label, key, show in (
        ("restore_s", "restore_s", _seconds),
        ("restore_keys", "restore_keys", lambda v: f"{v:,}"),
        ("restore_keys_per_s", "restore_keys_per_s", lambda v: _rate(v, "keys/s")),
        ("restore_mb_per_s", "restore_mb_per_s", lambda v: _rate(v, "MB/s", 3)),
        ("restore keys per worker CPU-s", "restore_keys_per_cpu_s", lambda v: _rate(v, "")),
        ("first_record_after_s", "first_record_after_s", _seconds),
    ):
        out.add_row(label, show(result[key]), show(result[f"standby_{key}"]))
    for name in ("failover", "failover_fast"):
        out.add_row(
            f"failover_s, SIGKILL, session timeout {result[f'{name}_session_timeout_s']:g} s",
            "",
            f"{_seconds(result[f'{name}_s'])} ({result[f'{name}_restore_keys']:,} keys restored)",
        )
    return out


def register(app: faust.App, settings: Settings) -> None:
    """Declare `runway bench-recovery` on the Faust app's CLI."""

    @app.command(
        option("--events", type=int, default=200_000, help="Backlog events joined before a loss."),
        option("--batch-size", type=int, default=100, help="Events per record."),
        option("--models", type=int, default=16, help="Synthetic models of the backlog."),
        option(
            "--fast-session-timeout",
            type=float,
            default=10.0,
            help="The second failover's RUNWAY_SESSION_TIMEOUT_S (the first: the setting's).",
        ),
        option(
            "--phases",
            default=",".join(PHASES),
            help="Comma list of phases: cold, standby, snapshot (default: all).",
        ),
        option(
            "--snapshot-probe-mb",
            type=int,
            default=128,
            help="The snapshot phase's probe: one partition DB of this size through S3 (0: none).",
        ),
        option("--json", "as_json", is_flag=True, default=False, help="Print one JSON object."),
        name="bench-recovery",
    )
    async def bench_recovery(
        self: Any,
        events: int,
        batch_size: int,
        models: int,
        fast_session_timeout: float,
        phases: str,
        snapshot_probe_mb: int,
        as_json: bool,
    ) -> None:
        """Restore speed from the changelog, with and without a standby; failover after SIGKILL."""

        def say(text: str) -> None:
            print(text, file=sys.stderr if as_json else sys.stdout, flush=True)

        result = await run_recovery_bench(
            settings,
            events=events,
            batch_size=batch_size,
            models=models,
            fast_session_timeout_s=fast_session_timeout,
            emit=say,
            phases=[p.strip() for p in phases.split(",") if p.strip()],
            snapshot_probe_mb=snapshot_probe_mb,
        )
        from rich.console import Console

        Console(stderr=as_json).print(table(result))
        if as_json:
            print(json.dumps(result))
