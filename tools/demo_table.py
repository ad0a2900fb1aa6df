"""What `runway demo` shows, as pure functions of what it read (unit-tested without services).

- `table_rows`: a model's Redis hashes (model, window, staleness) -> one row of table cells;
- `service_panel`: the retrain agent's /health, the stand-in orchestrator's /calls and the
  registry API's /health -> the lines under the table;
- `Milestones`: when (seconds since traffic started) the first verdict, the first WARNING and
  STALE of a drifted model and its first started retrain were seen, for the closing summary.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

COLUMNS = (
    "model",
    "task",
    "predictions",
    "labeled",
    "coverage",
    "p50 delay",
    "acc / MAE",
    "AUC / RMSE",
    "duplicates",
    "expired",
    "staleness",
)
STATE_STYLE = {"FRESH": "green", "WARNING": "yellow", "STALE": "bold red"}

Hashes = tuple[Mapping[str, str], Mapping[str, str], Mapping[str, str]]


def _number(fields: Mapping[str, str], name: str) -> float | None:
    raw = fields.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return None if math.isnan(value) else value


def _count(fields: Mapping[str, str], name: str) -> str:
    value = _number(fields, name)
    return "-" if value is None else f"{int(value):,}"


def _fixed(fields: Mapping[str, str], name: str) -> str:
    value = _number(fields, name)
    return "-" if value is None else f"{value:.3f}"


def staleness_cell(fields: Mapping[str, str], version: str | None = None) -> str:
    """`STATE score` of the model's last verdict; "-" when none, or one of another version."""
    state = fields.get("state")
    if not state or (version is not None and fields.get("model_version") != version):
        return "-"
    score = _number(fields, "score")
    return state if score is None else f"{state} {score:.2f}"


def table_rows(views: Mapping[str, Hashes], version: str | None = None) -> list[tuple[str, ...]]:
    """One row of `COLUMNS` per model, sorted by model id.

    `views` maps a model id to its model hash, its window hash and its staleness hash (as Redis
    returns them, decoded). Missing or NaN figures show as "-": binary models show accuracy and
    ROC AUC, regression models MAE and RMSE. With `version`, only a verdict on that version
    shows (the demo's run deploys a new one; the last run's verdict is not this run's).
    """
    rows: list[tuple[str, ...]] = []
    for model_id in sorted(views):
        info, window, staleness = views[model_id]
        task = info.get("task", "-")
        coverage = _number(window, "label_coverage")
        delay = _number(window, "label_delay_p50_ms")
        if task == "regression":
            first, second = _fixed(window, "mae"), _fixed(window, "rmse")
        else:
            first, second = _fixed(window, "accuracy"), _fixed(window, "roc_auc")
        rows.append(
            (
                model_id,
                task,
                _count(window, "predictions"),
                _count(window, "labeled"),
                "-" if coverage is None else f"{coverage:.1%}",
                "-" if delay is None else f"{delay / 1000:.1f}s",
                first,
                second,
                _count(window, "duplicates"),
                _count(window, "unlabeled_expired"),
                staleness_cell(staleness, version),
            )
        )
    return rows


def metrics_table(rows: Sequence[tuple[str, ...]], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for name in COLUMNS:
        table.add_column(name, justify="left" if name in ("model", "task") else "right")
    for row in rows:
        style = STATE_STYLE.get(row[-1].split(" ")[0], "")
        table.add_row(*row[:-1], f"[{style}]{row[-1]}[/{style}]" if style else row[-1])
    if not rows:
        table.add_row("[dim]waiting for the speed view...[/dim]", *[""] * (len(COLUMNS) - 1))
    return table


# -- the services panel ------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceStatus:
    """The services' own answers (None: no answer)."""

    retrain: Mapping[str, Any] | None = None  # the retrain agent's GET /health
    calls: Mapping[str, Any] | None = None  # the stand-in orchestrator's GET /calls
    api: Mapping[str, Any] | None = None  # the registry API's GET /health


def started_runs(calls: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """(model_id, model_version) of every run the stand-in started, in call order."""
    runs = []
    for call in (calls or {}).get("calls") or []:
        if call.get("outcome") != "started":
            continue
        params = call.get("run_params") or {}
        runs.append(
            (
                str((params.get("model_id") or {}).get("value", "?")),
                str((params.get("model_version") or {}).get("value", "?")),
            )
        )
    return runs


def service_panel(status: ServiceStatus) -> list[str]:
    """Three lines: retrain agent, stand-in orchestrator, registry API."""
    r = status.retrain
    if r is None:
        retrain = "retrain agent: no answer"
    else:
        retrain = (
            f"retrain agent: breaker {r.get('breaker', '?')} "
            f"(opened {r.get('breaker_opened', 0)}x), queue {r.get('queue_depth', 0)}, "
            f"in flight {r.get('models_in_flight', 0)}, "
            f"orchestrator calls {r.get('orchestrator_calls', 0)}"
        )
    c = status.calls
    if c is None:
        orchestrator = "orchestrator stand-in: no answer"
    else:
        runs = started_runs(c)
        which = ", ".join(f"{model} {version}" for model, version in runs)
        orchestrator = (
            f"orchestrator stand-in: {c.get('started', len(runs))} retrain(s) started"
            f"{f' ({which})' if which else ''}, {len(c.get('calls') or [])} call(s), "
            f"{c.get('duplicates', 0)} duplicate(s)"
        )
    a = status.api
    if a is None:
        api = "registry API: no answer"
    else:
        checks = ", ".join(f"{k} {v}" for k, v in sorted((a.get("checks") or {}).items()))
        api = f"registry API /health: {a.get('status', '?')}{f' ({checks})' if checks else ''}"
    return [retrain, orchestrator, api]


# -- milestones --------------------------------------------------------------------------------


@dataclass
class Milestones:
    """First sightings, in seconds since traffic started (None: not yet)."""

    drifted: frozenset[str]
    version: str  # this run's: a retrain of an earlier version does not count
    first_verdict: float | None = None
    warning: float | None = None  # a drifted model WARNING or STALE
    stale: float | None = None  # a drifted model STALE
    retrain_started: float | None = None
    others_flagged: set[str] = field(default_factory=set)  # models not drifted, not FRESH

    def see(self, elapsed: float, rows: Sequence[tuple[str, ...]], status: ServiceStatus) -> None:
        for row in rows:
            state = row[-1].split(" ")[0]
            if state == "-":
                continue
            if self.first_verdict is None:
                self.first_verdict = elapsed
            if row[0] not in self.drifted:
                if state != "FRESH":
                    self.others_flagged.add(row[0])
                continue
            if state in ("WARNING", "STALE") and self.warning is None:
                self.warning = elapsed
            if state == "STALE" and self.stale is None:
                self.stale = elapsed
        if self.retrain_started is None and any(
            model in self.drifted and version == self.version
            for model, version in started_runs(status.calls)
        ):
            self.retrain_started = elapsed

    def summary(self) -> str:
        def at(value: float | None) -> str:
            return "not seen" if value is None else f"{value:.0f}s"

        others = ", ".join(sorted(self.others_flagged)) or "none"
        return (
            f"since traffic started: first verdict {at(self.first_verdict)}, drifted model "
            f"WARNING/STALE {at(self.warning)}, STALE {at(self.stale)}, retrain started "
            f"{at(self.retrain_started)}; other models ever not FRESH: {others}"
        )
