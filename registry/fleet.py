"""What `runway models` and `runway model ID` show: the fleet's verdicts as tables, pure.

The readers (`registry/fleet_read.py`) hand over plain JSON-shaped dicts, the same whether they
come from the registry database or its HTTP API, so the rows and the tables here are computed
and tested without either. Times are printed in UTC with their age against an injected `now`,
because an operator asks "how long ago", and a test needs a fixed clock to say what it expects.
A model's row (`fleet_row`) and the counts per state are also the web dashboard's
(`registry/dashboard.py` adds the speed view's live figures), so both views read a verdict alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

STATES = ("STALE", "WARNING", "FRESH")
NO_VERDICT = "-"  # a registered model the registry has no verdict for yet
STATE_STYLE = {"STALE": "bold red", "WARNING": "yellow", "FRESH": "green", NO_VERDICT: "dim"}
_SEVERITY = {"STALE": 0, "WARNING": 1, "FRESH": 2, NO_VERDICT: 3}


@dataclass(frozen=True)
class FleetRow:
    """One model and its last verdict (the fields of its latest staleness event)."""

    model_id: str
    task: str | None
    state: str  # STALE, WARNING, FRESH or NO_VERDICT
    score: float | None = None
    basis: tuple[str, ...] = ()
    uncertainty: float | None = None
    model_version: str | None = None
    event_time: int | None = None
    emitted_at: int | None = None
    reason: str | None = None


def fleet_row(model: Mapping[str, Any], latest: Mapping[str, Any] | None) -> FleetRow:
    """The one reading of a model's latest verdict, for the commands and the dashboard alike."""
    if latest is None:
        return FleetRow(model_id=model["model_id"], task=model.get("task"), state=NO_VERDICT)
    return FleetRow(
        model_id=model["model_id"],
        task=model.get("task"),
        state=latest["state"],
        score=latest.get("score"),
        basis=tuple(latest.get("basis") or ()),
        uncertainty=latest.get("uncertainty"),
        model_version=latest.get("model_version"),
        event_time=latest.get("event_time"),
        emitted_at=latest.get("emitted_at"),
        reason=latest.get("reason"),
    )


def fleet_rows(
    models: Sequence[Mapping[str, Any]],
    latest: Mapping[str, Mapping[str, Any] | None],
    states: Sequence[str] = (),
) -> list[FleetRow]:
    """Worst first (STALE, WARNING, FRESH, none; then the higher score), so the models that
    need a person are on the first screen; `states` keeps only those states."""
    rows = [fleet_row(m, latest.get(m["model_id"])) for m in models]
    if states:
        rows = [r for r in rows if r.state in states]
    return sorted(rows, key=lambda r: (_SEVERITY.get(r.state, 3), -(r.score or 0.0), r.model_id))


def state_counts(rows: Iterable[FleetRow], none: str = NO_VERDICT) -> dict[str, int]:
    """Every state with its count, zero or not, so a caption or a page always shows the same
    ones; `none` names the models without a verdict (the table's '-', the JSON's 'none', the
    dashboard's 'UNKNOWN')."""
    counts = dict.fromkeys((*STATES, none), 0)
    for row in rows:
        state = none if row.state == NO_VERDICT else row.state
        counts[state] = counts.get(state, 0) + 1
    return counts


def _json_state(state: str) -> str | None:
    return None if state == NO_VERDICT else state


def fleet_json(rows: Sequence[FleetRow], source: str) -> dict[str, Any]:
    """`runway models --json`: one object, the rows in the table's order."""
    return {
        "source": source,
        "counts": state_counts(rows, none="none"),
        "models": [
            {**asdict(r), "basis": list(r.basis), "state": _json_state(r.state)} for r in rows
        ],
    }


def utc(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def ago(ms: int | None, now_ms: int) -> str:
    """How long before `now_ms`; a time ahead of it (the demo's fast event time) says 'ahead'."""
    if ms is None:
        return "-"
    delta = (now_ms - ms) // 1000
    suffix = "ago" if delta >= 0 else "ahead"
    delta = abs(delta)
    if delta < 60:
        text = f"{delta}s"
    elif delta < 3600:
        text = f"{delta // 60}m"
    elif delta < 86400:
        text = f"{delta // 3600}h{delta % 3600 // 60:02d}m"
    else:
        text = f"{delta // 86400}d{delta % 86400 // 3600:02d}h"
    return f"{text} {suffix}"


def short(ms: int | None) -> str:
    """A table cell's time: month, day and time of day (UTC); the year is in the header."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%m-%d %H:%M:%S")


_SHORT_BASIS = {"performance": "perf", "drift": "drift", "age": "age"}


def _basis(basis: Sequence[str]) -> str:
    return ",".join(_SHORT_BASIS.get(b, b) for b in basis) or "-"


def _state(state: str) -> Text:
    return Text(state, style=STATE_STYLE.get(state, ""))


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def counts_line(rows: Sequence[FleetRow]) -> Text:
    counts = state_counts(rows)
    line = Text(f"{len(rows)} models: ")
    parts = [(f"{counts[s]} {s}", STATE_STYLE[s]) for s in STATES]
    parts.append((f"{counts[NO_VERDICT]} without a verdict", STATE_STYLE[NO_VERDICT]))
    for i, (text, style) in enumerate(parts):
        line.append(("" if i == 0 else ", ") + text, style=style)
    return line


def fleet_table(rows: Sequence[FleetRow], now_ms: int, source: str) -> Table:
    table = Table(
        title=f"ML models in the registry ({source})",
        title_justify="left",
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.caption = counts_line(rows)
    # model ids and versions fold rather than squeeze the state out of an 80-column terminal
    table.add_column("model", overflow="fold", min_width=10)
    table.add_column("state", no_wrap=True, min_width=7)
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("basis", overflow="fold")
    table.add_column("version", overflow="fold", min_width=16)
    table.add_column("last verdict", justify="right", no_wrap=True)
    for r in rows:
        table.add_row(
            r.model_id,
            _state(r.state),
            _score(r.score),
            _basis(r.basis),
            r.model_version or "-",
            ago(r.emitted_at, now_ms),
        )
    return table


@dataclass(frozen=True)
class ModelDetail:
    """`runway model ID`: the registry's record, newest verdict first, and the graph around it."""

    model: dict[str, Any]
    versions: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)  # staleness events, newest first
    impacted: list[str] = field(default_factory=list)  # downstream model ids, sorted
    downstream: list[dict[str, Any]] = field(default_factory=list)  # {node, kind, depth}
    upstream: list[dict[str, Any]] = field(default_factory=list)
    retrains: list[dict[str, Any]] = field(default_factory=list)


def detail_json(detail: ModelDetail, source: str) -> dict[str, Any]:
    return {"source": source, **asdict(detail)}


def _nodes(entries: Sequence[Mapping[str, Any]]) -> str:
    if not entries:
        return "none"
    return ", ".join(f"{e['node']} ({e['kind']}, depth {e['depth']})" for e in entries)


def detail_renderables(detail: ModelDetail, now_ms: int) -> list[RenderableType]:
    m = detail.model
    latest = detail.history[0] if detail.history else None
    row = fleet_row(m, latest)
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("model", m["model_id"])
    head.add_row("task", m.get("task") or "-")
    if m.get("owner"):
        head.add_row("owner", m["owner"])
    if m.get("description"):
        head.add_row("description", m["description"])
    head.add_row("state", _state(row.state))
    if latest is not None:
        head.add_row("score", f"{_score(row.score)} (uncertainty {_score(row.uncertainty)})")
        head.add_row("basis", ",".join(row.basis) or "-")
        head.add_row("version judged", row.model_version or "-")
        head.add_row("last verdict", f"{utc(row.emitted_at)} ({ago(row.emitted_at, now_ms)})")
        head.add_row("event time", utc(row.event_time))
        head.add_row("reason", row.reason or "-")
    head.add_row("impacted models", ", ".join(detail.impacted) or "none")
    head.add_row("downstream", _nodes(detail.downstream))
    head.add_row("upstream", _nodes(detail.upstream))
    out: list[RenderableType] = [head]

    versions = Table(title="versions (times UTC)", title_justify="left", box=box.SIMPLE_HEAD)
    for name in ("version", "task", "trained", "deployed", "max age"):
        versions.add_column(name, no_wrap=name != "version", overflow="fold")
    versions.add_column("baseline", overflow="fold")
    for v in detail.versions:
        baseline = ", ".join(f"{k}={val:g}" for k, val in sorted(v["baseline_metrics"].items()))
        versions.add_row(
            v["version"],
            v["task"],
            short(v.get("trained_at")),
            short(v.get("deployed_at")),
            f"{v['max_age_ms'] / 86_400_000:g} d",
            baseline or "-",
        )
    out.append(versions if detail.versions else Text("versions: none registered"))

    several = len({e["model_version"] for e in detail.history}) > 1
    # one verdict = a line of figures and its reason below it, indented: a reason is a sentence
    # too long for a table cell in an 80-column terminal
    lines: list[RenderableType] = [
        Text(f"verdicts, newest first (latest {len(detail.history)}; times UTC)", style="italic")
    ]
    for e in detail.history:
        line = Text(f"{short(e['emitted_at'])}  event time {short(e['event_time'])}  ")
        if several:
            line.append(f"{e['model_version']}  ")
        line.append_text(_state(e["state"]))
        line.append(f"  {_score(e['score'])}  {_basis(e['basis'])}")
        lines += [line, Padding(Text(e["reason"], style="dim"), (0, 0, 0, 4))]
    history = Group(*lines)
    out.append(history if detail.history else Text("verdicts: none recorded"))

    if detail.retrains:
        retrains = Table(
            title="retrain requests (times UTC)", title_justify="left", box=box.SIMPLE_HEAD
        )
        for name in ("request", "version", "status", "updated"):
            retrains.add_column(name, no_wrap=name != "version", overflow="fold")
        retrains.add_column("history", overflow="fold")
        for r in detail.retrains:
            steps = " > ".join(s["status"] for s in r.get("history", []))
            retrains.add_row(
                r["request_id"][:8], r["model_version"], r["status"], short(r["updated_at"]), steps
            )
        out.append(retrains)
    else:
        out.append(Text("retrain requests: none"))
    return out


def detail_group(detail: ModelDetail, now_ms: int) -> Group:
    return Group(*detail_renderables(detail, now_ms))
