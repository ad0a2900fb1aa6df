"""`runway bench-detection`: how soon the staleness scorer fires, and how often it cries wolf.

Synthetic binary models, one per scenario and traffic level, each a stream of predictions and
(late) labels in event time. Scores are calibrated by construction (a prediction scored p is
positive with probability p), uniform on [0, 1] while nothing changes (accuracy 0.75, ROC AUC
0.83). From the change on (day `CHANGE_DAY`):

- `stationary`: nothing changes, 28 days; the registry declares a 90-day maximum age;
- `drop_5pt`, `drop_10pt`: labels flipped at random so accuracy drops 5 or 10 points, the
  scores as before (concept drift: only labels can tell);
- `score_shift_labels`: half the scores move to [0.6, 1] (more positives; still calibrated,
  performance holds), labels an hour late;
- `score_shift_no_labels`: the same shift, no label ever (judged on drift alone);
- `feature_drift`: feature x0 moves from N(5, 1) to N(5.75, 1), x1 and the scores stay;
- `harder_inputs_labels_{1h,1d,3d}`: 60 % of the scores move to [0.35, 0.65] (inputs the model
  is unsure of; calibrated: accuracy 0.645, 10.5 points down), labels 1 h, 1 day, 3 days late;
  the scores' calibration lets the estimate (CBPE) see the drop before the labels do;
- `past_max_age`: stationary, but trained 60 days before its first prediction (default maximum
  age 30 days): STALE on age from the first verdict ("change" = the first prediction).

Every scenario other than `past_max_age` declares a 90-day maximum age, so age never trips.
Labels come `delay` + an exponential jitter (mean 10 min) after their prediction.

**Path.** In-process: the join's state is built with the join's own aggregate terms
(`tables.aggregates.absorb` of each minute's deltas, the keys of `tables.keys`, minute buckets
kept 1 h and hour buckets 7 d as with RUNWAY_WINDOWS=1h,24h,7d), the reference refreshed and
stored each hour as the worker does, and the production scorer (`staleness.scorer.score_model`)
judges each model at every whole hour of event time, from the state as it then is (predictions
before the hour, labels observed before it). The log-loss and Brier sums, which no verdict reads,
are left out of the buckets.

**Figures** per scenario and traffic level: `verdicts` (hourly), `false_alarms` (verdicts before
the change, or anywhere in `stationary`, that are not FRESH and whose performance, estimated
performance or drift score reaches the warning level), `detect_delay_h` (event time from the
change to the first STALE), `warn_delay_h` (to the first non-FRESH), `after_labels_h` (first
STALE less the labels' nominal delay: how long after the first labels of changed traffic),
`first_signal` (the signal that first reached the warning level after the change) and
`estimate_before_labels` (the estimate reached the warning level before the changed traffic's
labels could arrive).

**Peer.** Evidently's default drift preset (`DataDriftPreset()`, evidently 0.7, in its own
virtualenv `.venv-evidently`) on the same predictions: the first day is its reference, each later
day of event time its current batch (its usual use: a daily batch job), columns score (and x0,
x1 in `feature_drift`). Its dataset-level verdict (drift when at least half the columns drift,
by its default per-column tests) counts as an alarm. Run at the traffic levels up to
`EVIDENTLY_MAX_PER_DAY` (the rows go to it as CSV files).
"""

from __future__ import annotations

import asyncio
import csv
import json
import random
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click
import faust
from faust.cli import option

from config.settings import Settings
from config.windows import HOUR_MS, MINUTE_MS
from staleness.config import DAY_MS, StalenessConfig
from staleness.inputs import VersionFacts
from staleness.reference import reference_key, refresh_reference
from staleness.scorer import score_model
from tables import aggregates, keys

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
CHANGE_DAY = 3
LEVELS = (1_000, 20_000, 1_000_000)
EVIDENTLY_VERSION = "0.7.23"
EVIDENTLY_MAX_PER_DAY = 20_000
ROOT = Path(__file__).resolve().parent.parent
EVIDENTLY_VENV = ROOT / ".venv-evidently"
MODEL, VERSION = "bench-detection", "v1"
RETENTION = {"m": HOUR_MS, "h": 7 * DAY_MS}
JITTER_MS = 10 * MINUTE_MS
ALARM_SIGNALS = ("performance", "estimated_performance", "drift")


@dataclass(frozen=True)
class Scenario:
    name: str
    days: int = 28
    change_day: int | None = CHANGE_DAY  # None: nothing changes
    kind: str = "stationary"  # stationary, flip, upshift, harder, feature
    flip: float = 0.0  # share of labels flipped after the change
    label_delay_ms: int | None = HOUR_MS  # None: never labelled
    trained_days_before: int | None = None
    max_age_days: int = 90

    def facts(self) -> VersionFacts:
        trained = None
        if self.trained_days_before is not None:
            trained = T0 - self.trained_days_before * DAY_MS
        max_age = None if self.trained_days_before is not None else self.max_age_days * DAY_MS
        return VersionFacts(trained_at_ms=trained, max_age_ms=max_age)

    @property
    def change_ms(self) -> int | None:
        if self.kind == "age":
            return T0
        return None if self.change_day is None else T0 + self.change_day * DAY_MS


# Accuracy of uniform calibrated scores is E[max(p, 1 - p)] = 0.75; flipping a share r of labels
# gives 0.75 (1 - r) + 0.25 r = 0.75 - 0.5 r: r = 0.1 costs 5 points, r = 0.2 ten.
SCENARIOS: tuple[Scenario, ...] = (
    Scenario("stationary", change_day=None),
    Scenario("drop_5pt", kind="flip", flip=0.1),
    Scenario("drop_10pt", kind="flip", flip=0.2),
    Scenario("score_shift_labels", kind="upshift"),
    Scenario("score_shift_no_labels", kind="upshift", label_delay_ms=None),
    Scenario("feature_drift", kind="feature"),
    Scenario("harder_inputs_labels_1h", kind="harder"),
    Scenario("harder_inputs_labels_1d", kind="harder", label_delay_ms=DAY_MS),
    Scenario("harder_inputs_labels_3d", kind="harder", label_delay_ms=3 * DAY_MS),
    Scenario("past_max_age", days=3, change_day=None, kind="age", trained_days_before=60),
)
SHORT_DAYS = CHANGE_DAY + 4  # change scenarios: the change, then 4 days (3-day-late labels + 1)


def draw(s: Scenario, rng: random.Random, changed: bool) -> tuple[float, int]:
    """One prediction's score and its label (calibrated: positive with probability score)."""
    u = rng.random()
    if changed and s.kind == "upshift" and rng.random() < 0.5:
        u = 0.6 + 0.4 * u
    elif changed and s.kind == "harder" and rng.random() < 0.6:
        u = 0.35 + 0.3 * u
    y = 1 if rng.random() < u else 0
    if changed and s.flip and rng.random() < s.flip:
        y = 1 - y
    return u, y


def _stationary(rand: Callable[[], float]) -> tuple[float, int]:
    """`draw` before any change: a uniform calibrated score and its label."""
    u = rand()
    return u, 1 if rand() < u else 0


def features(s: Scenario, rng: random.Random, changed: bool) -> dict[str, float] | None:
    if s.kind != "feature":
        return None
    return {"x0": rng.gauss(5.75 if changed else 5.0, 1.0), "x1": rng.gauss(5.0, 1.0)}


@dataclass
class Hourly:
    """One verdict of the timeline."""

    at_ms: int
    state: str
    score: float
    signals: dict[str, float]  # signal -> its score (performance, estimated_performance, ...)
    reason: str


@dataclass
class Outcome:
    scenario: str
    traffic_per_day: int
    path: str
    days: int
    verdicts: int
    false_alarms: int
    detect_delay_h: float | None
    warn_delay_h: float | None
    after_labels_h: float | None
    first_signal: str | None
    estimate_before_labels: bool | None
    first_stale_reason: str | None
    evidently: dict[str, Any] | None = None
    seconds: float = 0.0


def alarming(v: Hourly, cfg: StalenessConfig) -> bool:
    """A non-FRESH verdict whose performance, estimated performance or drift is at warning."""
    return v.state != "FRESH" and any(
        v.signals.get(sig, 0.0) >= cfg.warning_score for sig in ALARM_SIGNALS
    )


def summarize(
    s: Scenario, level: int, timeline: Sequence[Hourly], cfg: StalenessConfig, path: str
) -> Outcome:
    """The scenario's figures from its hourly verdicts (pure)."""
    change = s.change_ms
    before = [v for v in timeline if change is None or s.kind == "age" or v.at_ms <= change]
    after = [v for v in timeline if change is not None and v.at_ms > change]
    if s.kind == "age":
        after = list(timeline)
    false_alarms = sum(1 for v in before if alarming(v, cfg))
    first_stale = next((v for v in after if v.state == "STALE"), None)
    first_warn = next((v for v in after if v.state != "FRESH"), None)
    first_signal = None
    estimate_first: bool | None = None
    for v in after:
        hit = [
            sig for sig in (*ALARM_SIGNALS, "age") if v.signals.get(sig, 0.0) >= cfg.warning_score
        ]
        if hit:  # every signal at warning then, the strongest first
            first_signal = "+".join(sorted(hit, key=lambda sig: -v.signals[sig]))
            break
    labels_at = None
    if change is not None and s.label_delay_ms is not None and s.kind != "age":
        labels_at = change + s.label_delay_ms
    if labels_at is not None and s.kind == "harder":
        estimate_first = any(
            v.signals.get("estimated_performance", 0.0) >= cfg.warning_score
            for v in after
            if v.at_ms <= labels_at
        )

    def hours(v: Hourly | None, since: int | None) -> float | None:
        return None if v is None or since is None else (v.at_ms - since) / HOUR_MS

    return Outcome(
        scenario=s.name,
        traffic_per_day=level,
        path=path,
        days=s.days,
        verdicts=len(timeline),
        false_alarms=false_alarms,
        detect_delay_h=hours(first_stale, change),
        warn_delay_h=hours(first_warn, change),
        after_labels_h=hours(first_stale, labels_at),
        first_signal=first_signal,
        estimate_before_labels=estimate_first,
        first_stale_reason=first_stale.reason if first_stale else None,
    )


class InProcess:
    """A model's join state built hour by hour, judged at every whole hour of event time."""

    def __init__(self, s: Scenario, level: int, cfg: StalenessConfig, seed: int = 15) -> None:
        self.s, self.level, self.cfg = s, level, cfg
        self.rng = random.Random(f"{seed}-{s.name}-{level}")
        self.state: dict[bytes, Any] = {}
        # observed hour -> labels by (minute, bin, y) and their delays by (minute, delay bin)
        self.pending: dict[int, tuple[Counter[tuple[int, int, int]], Counter[tuple[int, str]]]]
        self.pending = {}
        self.timeline: list[Hourly] = []
        self.keep_rows = False
        self._delay_bins: dict[int, str] = {}  # label delay in whole minutes -> its bin

    def read(self, key: bytes) -> Any:
        return self.state.get(key)

    def run(self, rows: Callable[[int, list[tuple[int, float, dict[str, float] | None]]], None]
            | None = None) -> list[Hourly]:  # fmt: skip
        """The whole scenario; `rows(hour_start, [(ts, score, features)])` sees each hour's
        predictions (the peer's input)."""
        end = T0 + self.s.days * DAY_MS
        self.keep_rows = rows is not None
        for hour in range(T0, end, HOUR_MS):
            made = self._predict(hour)
            if rows is not None:
                rows(hour, made)
            self._label(hour)
            self._step(hour + HOUR_MS)
        return self.timeline

    def _bucket(self, gran: str, start: int) -> dict[str, Any]:
        return self.state.setdefault(keys.bucket(MODEL, VERSION, gran, start), {})

    def _predict(self, hour: int) -> list[tuple[int, float, dict[str, float] | None]]:
        """This hour's predictions into their minute and hour buckets; their labels queued."""
        s, rng, level = self.s, self.rng, self.level
        first = -(-(hour - T0) * level // DAY_MS)
        last = -(-(hour + HOUR_MS - T0) * level // DAY_MS)
        change = s.change_ms if s.kind != "age" else None
        bins = aggregates.SCORE_BINS
        scores: Counter[tuple[int, int]] = Counter()  # (minute, bin) -> predictions
        feature_deltas: dict[int, dict[str, Any]] = {}
        made: list[tuple[int, float, dict[str, float] | None]] = []
        keep = self.keep_rows
        delay = s.label_delay_ms
        expo, rand = rng.expovariate, rng.random
        pending = self.pending
        dbins = self._delay_bins
        change_at = change if change is not None else 1 << 62
        for i in range(first, last):  # the hot loop: 28 M turns at 1 M/day, kept flat
            ts = T0 + i * DAY_MS // level
            changed = ts >= change_at
            score, y = draw(s, rng, changed) if changed else _stationary(rand)
            feats = features(s, rng, changed)
            if keep:
                made.append((ts, score, feats))
            minute = ts - ts % MINUTE_MS
            bin_ = int(score * bins) if score < 1.0 else bins - 1
            scores[minute, bin_] += 1
            if feats is not None:
                fd = feature_deltas.setdefault(minute, {})
                fd.setdefault(aggregates.FEATURE_SEQUENCE, []).append(feats)
            if delay is not None:
                d = delay + int(expo(1 / JITTER_MS))
                observed = (ts + d) // HOUR_MS * HOUR_MS
                queued = pending.get(observed)
                if queued is None:
                    queued = pending[observed] = (Counter(), Counter())
                queued[0][minute, bin_, y] += 1
                dm = d // MINUTE_MS
                dbin = dbins.get(dm)
                if dbin is None:
                    dbin = dbins[dm] = aggregates.delay_bin(dm * MINUTE_MS)
                queued[1][minute, dbin] += 1
        if made:
            last_ts = made[-1][0]
        elif last > first:
            last_ts = T0 + (last - 1) * DAY_MS // level
        else:
            last_ts = None
        deltas: dict[int, dict[str, Any]] = defaultdict(lambda: {"n": 0, "sh": {}})
        for (minute, bin_), c in scores.items():
            delta = deltas[minute]
            delta["n"] += c
            delta["sh"][str(bin_)] = c
        for minute, fd in feature_deltas.items():
            deltas[minute].update(fd)
        per_hour: dict[str, Any] = {}
        for minute, delta in deltas.items():
            aggregates.absorb(self._bucket("m", minute), delta)
            aggregates.absorb(per_hour, delta)
        aggregates.absorb(self._bucket("h", hour), per_hour)
        info = self.state.setdefault(
            keys.model(MODEL),
            {"task": "binary", "clock": hour, "versions": [VERSION], "lp": None, "lo": None},
        )
        if last_ts is not None:
            info["clock"] = max(info["clock"], last_ts)
            info["lp"] = last_ts
        return made

    def _label(self, hour: int) -> None:
        """Labels observed in this hour, into the buckets of their predictions' times."""
        arrived = self.pending.pop(hour, None)
        if not arrived:
            return
        by_label, by_delay = arrived
        half = aggregates.SCORE_BINS // 2
        deltas: dict[tuple[str, int], dict[str, Any]] = {}

        def targets(minute: int) -> list[dict[str, Any]]:
            out = []
            for gran, start in (("h", minute // HOUR_MS * HOUR_MS), ("m", minute)):
                size = MINUTE_MS if gran == "m" else HOUR_MS
                if start + size + RETENTION[gran] <= hour:
                    continue  # expired: no window would count it
                delta = deltas.get((gran, start))
                if delta is None:
                    delta = deltas[gran, start] = {
                        "lab": 0, "pos": 0, "cor": 0, "shp": {}, "shn": {}, "dh": {}
                    }  # fmt: skip
                out.append(delta)
            return out

        for (minute, bin_, y), c in by_label.items():
            for delta in targets(minute):
                delta["lab"] += c
                delta["pos"] += c * y
                delta["cor"] += c * int((bin_ >= half) == (y == 1))
                hist = delta["shp" if y else "shn"]
                hist[str(bin_)] = hist.get(str(bin_), 0) + c
        for (minute, dbin), c in by_delay.items():
            for delta in targets(minute):
                delta["dh"][dbin] = delta["dh"].get(dbin, 0) + c
        for (gran, start), delta in deltas.items():
            aggregates.absorb(self._bucket(gran, start), delta)
        self.state[keys.model(MODEL)]["lo"] = hour

    def _step(self, t: int) -> None:
        self._expire(t)
        info = self.state[keys.model(MODEL)]
        info["clock"] = max(info["clock"], t - 1)
        record = refresh_reference(self.read, MODEL, VERSION, t, self.cfg)
        if record is not None:
            self.state[reference_key(MODEL, VERSION)] = record
        judged = score_model(self.read, MODEL, self.cfg, now_ms=t, facts=self.s.facts())
        assert judged is not None
        _, v = judged
        signals = {
            k.removeprefix("score_"): float(x)
            for k, x in v.metrics.items()
            if k.startswith("score_") and isinstance(x, int | float)
        }
        self.timeline.append(Hourly(t, v.state, v.score, signals, v.reason))

    def _expire(self, t: int) -> None:
        for key in [k for k in self.state if k.startswith(keys.BUCKET)]:
            _, _, gran, start = keys.split_bucket(key)
            size = MINUTE_MS if gran == "m" else HOUR_MS
            if start + size + RETENTION[gran] <= t:
                del self.state[key]


def scenario_days(s: Scenario, after_days: int | None = None) -> Scenario:
    """Change scenarios stop `SHORT_DAYS` in (or `after_days` after the change): what follows
    the change is all they show."""
    if s.change_day is None or s.kind == "age":
        return s
    days = SHORT_DAYS if after_days is None else s.change_day + after_days
    return Scenario(**{**asdict(s), "days": min(s.days, days)})


def run_in_process(
    s: Scenario,
    level: int,
    cfg: StalenessConfig | None = None,
    rows_dir: Path | None = None,
) -> Outcome:
    import time

    cfg = cfg or StalenessConfig()
    started = time.monotonic()
    writer = _RowsWriter(rows_dir, s) if rows_dir is not None else None
    timeline = InProcess(s, level, cfg).run(writer.add if writer else None)
    if writer is not None:
        writer.close()
    out = summarize(s, level, timeline, cfg, "in_process")
    out.seconds = round(time.monotonic() - started, 1)
    return out


class _RowsWriter:
    """Each day's predictions as one CSV file (score, and x0, x1 when the scenario has them)."""

    def __init__(self, directory: Path, s: Scenario) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.columns = ["score", "x0", "x1"] if s.kind == "feature" else ["score"]
        self.day = -1
        self.handle: Any = None
        self.writer: Any = None

    def add(self, hour: int, made: list[tuple[int, float, dict[str, float] | None]]) -> None:
        day = (hour - T0) // DAY_MS
        if day != self.day:
            self.close()
            self.day = day
            self.handle = (self.dir / f"day{day:03d}.csv").open("w", newline="")
            self.writer = csv.writer(self.handle)
            self.writer.writerow(self.columns)
        for _, score, feats in made:
            row = [score] if feats is None else [score, feats["x0"], feats["x1"]]
            self.writer.writerow(row)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


EVIDENTLY_SCRIPT = """
import json, sys, glob, os
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
days = sorted(glob.glob(os.path.join(sys.argv[1], "day*.csv")))
ref = pd.read_csv(days[0])
out = []
for path in days[1:]:
    cur = pd.read_csv(path)
    snap = Report([DataDriftPreset()]).run(cur, ref).dict()
    drifted = snap["metrics"][0]["value"]
    methods = [m["config"].get("method") for m in snap["metrics"][1:]]
    out.append({"day": int(os.path.basename(path)[3:6]), "share": drifted["share"],
                "count": drifted["count"], "methods": methods})
print(json.dumps(out))
"""


def evidently_python(emit: Callable[[str], None] = print) -> Path:
    """The peer's interpreter (made on first use, pinned; pandas < 3 for evidently 0.7)."""
    python = EVIDENTLY_VENV / "bin" / "python"
    marker = EVIDENTLY_VENV / f".installed-evidently-{EVIDENTLY_VERSION}"
    if marker.exists() and python.exists():
        return python
    emit(f"peer: creating {EVIDENTLY_VENV} with evidently=={EVIDENTLY_VERSION} (first use) ...")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(EVIDENTLY_VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         f"evidently=={EVIDENTLY_VERSION}", "pandas<3"],
        check=True,
    )  # fmt: skip
    marker.write_text(f"evidently=={EVIDENTLY_VERSION}\n")
    return python


def evidently_days(python: Path, rows_dir: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [str(python), "-c", EVIDENTLY_SCRIPT, str(rows_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def evidently_summary(s: Scenario, days: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Alarms (dataset drift: half the columns or more) before the change, and the delay to
    the first after it, at the end of the first drifting day's batch (pure)."""
    change = s.change_ms
    false_alarms = column_false_alarms = 0
    delay = column_delay = None
    methods: set[str] = set()
    for day in days:
        end = T0 + (day["day"] + 1) * DAY_MS
        methods.update(m for m in day["methods"] if m)
        alarm, column_alarm = day["share"] >= 0.5, day["count"] >= 1
        if change is None or s.kind == "age" or end <= change:
            false_alarms += int(alarm)
            column_false_alarms += int(column_alarm)
            continue
        if alarm and delay is None:
            delay = (end - change) / HOUR_MS
        if column_alarm and column_delay is None:
            column_delay = (end - change) / HOUR_MS
    return {
        "checks": len(days),
        "false_alarms": false_alarms,
        "detect_delay_h": delay,
        "column_false_alarms": column_false_alarms,
        "column_detect_delay_h": column_delay,
        "methods": sorted(methods),
    }


def targets(outcomes: Sequence[Outcome]) -> dict[str, bool | None]:
    """The issue's bounds, checked on the figures (None: not measured)."""
    by = {(o.scenario, o.traffic_per_day): o for o in outcomes if o.path == "in_process"}
    by.update({(o.scenario, o.traffic_per_day): o for o in outcomes if o.path == "worker"})

    def get(name: str, level: int = 20_000) -> Outcome | None:
        return by.get((name, level))

    stationary = [o for o in outcomes if o.scenario == "stationary"]
    drop = get("drop_10pt")
    shift = get("score_shift_no_labels")
    harder = get("harder_inputs_labels_1d")
    return {
        "stationary_no_false_alarms": all(o.false_alarms == 0 for o in stationary)
        if stationary
        else None,
        "drop_10pt_stale_within_6h": None
        if drop is None
        else drop.detect_delay_h is not None and drop.detect_delay_h <= 6,
        "drop_10pt_stale_within_2h_of_labels": None
        if drop is None
        else drop.after_labels_h is not None and drop.after_labels_h <= 2,
        "no_label_shift_on_drift_within_6h": None
        if shift is None
        else shift.detect_delay_h is not None
        and shift.detect_delay_h <= 6
        and shift.first_signal == "drift",  # drift alone: no label, no estimate
        "estimate_flags_before_labels": None
        if harder is None
        else bool(harder.estimate_before_labels),
    }


def run(
    levels: Sequence[int] = LEVELS,
    names: Sequence[str] | None = None,
    peer: bool = True,
    emit: Callable[[str], None] = print,
    worker_levels: Sequence[int] = (),
    settings: Settings | None = None,
    after_days: int | None = None,
) -> dict[str, Any]:
    """Every chosen scenario in-process at each of `levels`, and through a real worker on the
    local stack at each of `worker_levels` (needs `settings`)."""
    chosen = [s for s in SCENARIOS if names is None or s.name in names]
    python = evidently_python(emit) if peer else None
    outcomes: list[Outcome] = []
    for level in worker_levels:
        from tools.bench_detection_worker import run_worker_level

        assert settings is not None
        for out in asyncio.run(run_worker_level(settings, level, chosen, emit)):
            emit(f"  {out.scenario} (worker): {_line(out)}")
            outcomes.append(out)
    for level in levels:
        for s in chosen:
            s = scenario_days(s, after_days)
            emit(f"{s.name} at {level:,}/day ({s.days} days) ...")
            with tempfile.TemporaryDirectory(prefix="runway-bench-detection-") as tmp:
                with_peer = python is not None and level <= EVIDENTLY_MAX_PER_DAY
                out = run_in_process(s, level, rows_dir=Path(tmp) if with_peer else None)
                if with_peer:
                    assert python is not None
                    out.evidently = evidently_summary(s, evidently_days(python, Path(tmp)))
            emit(f"  {_line(out)}")
            outcomes.append(out)
    return {
        "scenarios": [asdict(o) for o in outcomes],
        "targets": targets(outcomes),
        "change_day": CHANGE_DAY,
    }


def _fmt(x: float | bool | None) -> str:
    if x is None:
        return "-"
    return ("yes" if x else "no") if isinstance(x, bool) else f"{x:g}"


def _line(o: Outcome) -> str:
    ev = o.evidently or {}
    return (
        f"verdicts {o.verdicts}, false alarms {o.false_alarms}, STALE after "
        f"{_fmt(o.detect_delay_h)} h (warning {_fmt(o.warn_delay_h)} h, after labels "
        f"{_fmt(o.after_labels_h)} h), first signal {o.first_signal}, estimate before labels "
        f"{_fmt(o.estimate_before_labels)}; evidently: false alarms "
        f"{ev.get('false_alarms', '-')}, drift after {_fmt(ev.get('detect_delay_h'))} h"
        f" [{o.seconds:g} s]"
    )


def markdown(result: dict[str, Any]) -> str:
    """The README's table."""
    lines = [
        "| scenario | predictions/day | path | verdicts | false alarms | first WARNING (h)"
        " | first STALE (h) | STALE after labels (h) | first signal | estimate before labels"
        " | Evidently false alarms | Evidently drift (h) |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|---|---:|---:|",
    ]
    for o in result["scenarios"]:
        ev = o["evidently"] or {}
        lines.append(
            f"| {o['scenario']} | {o['traffic_per_day']:,} | {o['path'].replace('_', '-')}"
            f" | {o['verdicts']} | {o['false_alarms']}"
            f" | {_fmt(o['warn_delay_h'])} | {_fmt(o['detect_delay_h'])}"
            f" | {_fmt(o['after_labels_h'])} | {o['first_signal'] or '-'}"
            f" | {_fmt(o['estimate_before_labels'])}"
            f" | {ev.get('false_alarms', '-')} | {_fmt(ev.get('detect_delay_h'))} |"
        )
    return "\n".join(lines)


def register(app: faust.App, settings: Settings) -> None:
    """Declare `runway bench-detection` on the Faust app's CLI (in-process: no settings used)."""

    @app.command(
        option("--json", "as_json", is_flag=True, default=False, help="Print one JSON object."),
        option(
            "--levels",
            type=str,
            default=",".join(str(x) for x in LEVELS),
            help="Predictions per day per model, comma-separated.",
        ),
        option("--scenarios", type=str, default=None, help="Only these, comma-separated."),
        option("--no-peer", is_flag=True, default=False, help="Skip Evidently."),
        option(
            "--worker-levels",
            type=str,
            default="1000,20000",
            help="Also through a real worker on the local stack at these levels ('' for none).",
        ),
    )
    async def bench_detection(
        self: Any,
        as_json: bool,
        levels: str,
        scenarios: str | None,
        no_peer: bool,
        worker_levels: str,
    ) -> None:
        """Detection delay and false alarms of the staleness scorer on synthetic scenarios."""

        def say(text: str) -> None:
            print(text, file=sys.stderr, flush=True)

        names = [n.strip() for n in scenarios.split(",")] if scenarios else None
        unknown = set(names or ()) - {sc.name for sc in SCENARIOS}
        if unknown:
            raise click.BadParameter(f"unknown scenarios: {', '.join(sorted(unknown))}")
        result = await asyncio.to_thread(
            run,
            [int(x) for x in levels.split(",") if x.strip()],
            names,
            not no_peer,
            say,
            [int(x) for x in worker_levels.split(",") if x.strip()],
            settings,
        )
        if as_json:
            print(json.dumps(result))
        else:
            print(markdown(result))
            print(json.dumps(result["targets"], indent=2))


def main() -> None:  # python -m tools.bench_detection, without the worker's app
    args = sys.argv[1:]
    levels = [int(x) for x in args[0].split(",")] if args else list(LEVELS)
    names = args[1].split(",") if len(args) > 1 else None
    after = next((int(a.split("=")[1]) for a in args if a.startswith("--after=")), None)
    result = run(
        levels,
        names,
        peer="--no-peer" not in args,
        emit=lambda t: print(t, file=sys.stderr),
        after_days=after,
    )
    print(markdown(result), file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
