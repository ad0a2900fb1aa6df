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

**Paths.** In-process (`InProcess`): the scenario's events (`hourly_events`, the worker path's
own input: same generator, seed and prediction ids) go through the join's rules
(`tables.join.JoinRules`, records of `RECORD_EVENTS` events, on an in-memory `State`) and the
worker's hour verdicts (`sinks.hourly.HourlyVerdicts`: each model judged by the production
scorer whenever its clock crosses a whole hour of event time, from the state before the event
that crosses it), with an hourly checkpoint (settle, expiry at the partition's stream time, the
drift references stored). Worker (`tools.bench_detection_worker`): the same events through a
real `runway worker` on the local stack. Both read the hour verdicts up to the scenario's end.

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
import heapq
import json
import multiprocessing
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click
import faust
import orjson
from faust.cli import option

from config.settings import Settings
from config.windows import HOUR_MS, MINUTE_MS, parse_windows
from sinks.hourly import HourlyVerdicts, Registry
from staleness.config import DAY_MS, StalenessConfig
from staleness.inputs import VersionFacts
from staleness.scorer import references_to_store
from tables import keys
from tables.join import JoinConfig, JoinEffects, JoinRules

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
CHANGE_DAY = 3
LEVELS = (1_000, 20_000, 1_000_000)
EVIDENTLY_VERSION = "0.7.23"
EVIDENTLY_MAX_PER_DAY = 20_000
ROOT = Path(__file__).resolve().parent.parent
EVIDENTLY_VENV = ROOT / ".venv-evidently"
MODEL, VERSION = "bench-detection", "v1"
RECORD_EVENTS = 100  # events per input record, as the worker path sends them
JOIN_WINDOWS = "1h,24h,7d"  # RUNWAY_WINDOWS' default: how long the join keeps its buckets
LABEL_TTL_MARGIN_MS = 6 * HOUR_MS  # label TTL beyond the delay (jitter: P(> 6 h) = e^-36)
DONE_RETENTION_MS = HOUR_MS
STALENESS = "staleness"
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
LARGE_AFTER_DAYS = 1  # ... at 1,000,000 a day: the change, then 1 day (`days_at`)


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


class MemoryState:
    """The join's `State` (`tables.join.State`) in memory: one dict, plus what its scans need.

    The expiry index is also a heap of its keys (which sort by deadline), so the sweep reads
    what is due without sorting the state; the other keys a scan may ask for (model records,
    buckets, references: a few hundred) are kept in a set and sorted when scanned. Pairs are
    never scanned by the rules. Deleted index keys stay in the heap until a scan meets them.
    """

    def __init__(self) -> None:
        self.data: dict[bytes, Any] = {}
        self._due: list[bytes] = []  # heap of expiry index keys (some deleted since)
        self._small: set[bytes] = set()  # keys other than pairs and index entries

    def get(self, key: bytes) -> Any | None:
        return self.data.get(key)

    def set(self, key: bytes, value: Any) -> None:
        data = self.data
        if key not in data:
            first = key[0]
            if first == _EXPIRY:
                heapq.heappush(self._due, key)
            elif first != _PAIR:
                self._small.add(key)
        data[key] = value

    def put_absent(self, key: bytes, value: Any) -> None:
        if key[0] != _EXPIRY:
            self.set(key, value)
            return
        self.data[key] = value  # a copy left by a delete is met beside this one
        heapq.heappush(self._due, key)

    def delete(self, key: bytes) -> None:
        if self.data.pop(key, None) is not None and key[0] not in _UNSCANNED:
            self._small.discard(key)  # an index key's heap entry goes when a scan meets it

    delete_stored = delete

    def scan(self, start: bytes, stop: bytes) -> list[tuple[bytes, Any]]:
        data = self.data
        if start[0] != _EXPIRY:
            return [(k, data[k]) for k in sorted(self._small) if start <= k < stop]
        live: list[bytes] = []
        heap = self._due
        while heap and heap[0] < stop:
            key = heapq.heappop(heap)
            if key in data and (not live or live[-1] != key):  # duplicates pop side by side
                live.append(key)
        for key in live:  # still there: a key leaves the heap once deleted and met
            heapq.heappush(heap, key)
        return [(k, data[k]) for k in live if k >= start]

    def __len__(self) -> int:
        return len(self.data)


_PAIR, _EXPIRY = keys.PAIR[0], keys.EXPIRY[0]
_UNSCANNED = (_PAIR, _EXPIRY)


class InProcess:
    """One scenario's events through the join's rules and the hour verdicts, in memory.

    What a worker does with them, without Kafka or RocksDB: `JoinRules` applies each record's
    events to a `MemoryState` (settled once per hour's fetch, as the worker settles once per
    fetch), `sinks.hourly.HourlyVerdicts` judges the model whenever an event's timestamp
    crosses a whole hour of its clock (from the state before that event), and an hourly
    checkpoint runs the worker's steps: settle, idle sweep and expiry at the partition's stream
    time, the drift references stored (`references_to_store`), the hour verdicts taken as the
    events the worker would send. The events are the worker path's (`hourly_events`): the same
    generator, seed and prediction ids, hour by hour, predictions then the labels observed in
    the hour.

    Two join settings differ from the defaults, to bound memory at 1,000,000 a day: the label
    TTL is the scenario's label delay + `LABEL_TTL_MARGIN_MS` (every label arrives in time; no
    verdict reads how many predictions expired, so a longer TTL only keeps more pairs), and
    joined pairs are kept `DONE_RETENTION_MS` (the bench sends no duplicates).
    """

    def __init__(self, s: Scenario, level: int, cfg: StalenessConfig, seed: int = 15) -> None:
        self.s, self.level, self.cfg, self.seed = s, level, cfg, seed
        ttl = (s.label_delay_ms or 0) + LABEL_TTL_MARGIN_MS
        self.rules = JoinRules(
            JoinConfig(
                label_ttl_for=lambda _model: ttl,
                early_outcome_ttl_ms=ttl,
                done_retention_ms=DONE_RETENTION_MS,
                windows=parse_windows(JOIN_WINDOWS),
            )
        )
        self.state = MemoryState()
        self.fx = JoinEffects()
        document = facts_document(s)

        async def registry(models: list[str]) -> dict[str, Registry]:
            return {m: (document, []) for m in models}

        self.hours = HourlyVerdicts(
            cfg=cfg, topic=STALENESS, settle=self.rules.settle, registry=registry,
            clock_ms=lambda: 0,
        )  # fmt: skip
        self.sides = {"predictions": 0, "outcomes": 0}
        self.timeline: list[Hourly] = []
        self.verdicts: list[dict[str, Any]] = []  # the hour verdicts as the worker sends them
        self.events = 0
        self.peak_keys = 0

    async def run(
        self, rows: Callable[[int, list[tuple[int, float, dict[str, float] | None]]], None]
        | None = None,
    ) -> list[Hourly]:  # fmt: skip
        """The whole scenario; `rows(hour_start, [(ts, score, features)])` sees each hour's
        predictions (the peer's input). The hour verdicts up to the scenario's end."""
        end = T0 + self.s.days * DAY_MS
        for hour, preds, labels in hourly_events(self.s, self.level, self.seed):
            if hour > end:  # the events of hour `end` (labels) cross it: its verdict is in
                break
            if rows is not None and preds:  # (the hour `end` has labels only)
                rows(hour, [(p["timestamp"], p["score"], p.get("features")) for p in preds])
            self._fetch("predictions", preds)
            self._fetch("outcomes", labels)
            await self._checkpoint()
        return [v for v in self.timeline if v.at_ms <= end]

    def _fetch(self, kind: str, events: list[dict[str, Any]]) -> None:
        """A fetch of records of `RECORD_EVENTS` events, applied as `JoinProcessor._apply`
        applies them (the hour mark checked before each event), settled once at its end."""
        if not events:
            return
        state, fx, rules, hours = self.state, self.fx, self.rules, self.hours
        other = self.sides["outcomes" if kind == "predictions" else "predictions"]
        side = self.sides[kind]
        key = events[0]["model_id"].encode()
        stream_time = 0
        for at in range(0, len(events), RECORD_EVENTS):
            mark = hours.marks.get(key, 0)
            for item in events[at : at + RECORD_EVENTS]:
                ts = item["timestamp"]
                if ts >= mark:
                    mark = hours.crossed(0, state, item, fx)
                if ts > side:
                    side = ts
                stream_time = side if side < other else other
                if kind == "predictions":
                    rules.on_prediction(state, item, fx, settle=False)
                else:
                    rules.on_outcome(state, item, stream_time, fx, settle=False)
        self.sides[kind] = side
        self.events += len(events)
        rules.settle(state, fx)
        fx.joined.clear()  # the `joined` hand-off: nothing here reads it

    async def _checkpoint(self) -> None:
        """The worker's checkpoint steps that touch what a verdict reads."""
        state, rules = self.state, self.rules
        rules.settle(state, self.fx)
        self.fx = JoinEffects()
        # The partition's stream time: the least advanced input; an input never heard from
        # (a model never labelled) does not hold expiry back, as the worker's wall-clock
        # fallback for an idle input lets it go on.
        sides = [t for t in self.sides.values() if t]
        stream_time = min(sides, default=0)
        swept = JoinEffects()
        rules.forget_idle(state, stream_time, swept)
        rules.expire(state, stream_time, swept)
        for key, value in references_to_store(state.get, model_id(self.s), self.cfg):
            state.set(key, value)
        self.peak_keys = max(self.peak_keys, len(state))
        for outputs in (await self.hours.outputs()).values():
            for _, _, body in outputs:
                self.verdicts.append(orjson.loads(body))
                self.timeline.append(hourly_of(self.verdicts[-1]))


def hourly_of(event: dict[str, Any]) -> Hourly:
    """A staleness event (an hour verdict) as a timeline entry: its signals' scores."""
    signals = {
        k.removeprefix("score_"): float(v)
        for k, v in event["metrics"].items()
        if k.startswith("score_") and isinstance(v, int | float)
    }
    return Hourly(event["event_time"], event["state"], event["score"], signals, event["reason"])


def model_id(s: Scenario) -> str:
    return s.name.replace("_", "-")


def hourly_events(
    s: Scenario, level: int, seed: int = 15
) -> Iterator[tuple[int, list[dict[str, Any]], list[dict[str, Any]]]]:
    """(hour, its predictions, the labels observed in it) for the scenario's model, in order:
    both paths' input (the worker path sends them, the in-process path applies them)."""
    rng = random.Random(f"{seed}-{s.name}-{level}-worker")
    model = model_id(s)
    pending: dict[int, list[dict[str, Any]]] = defaultdict(list)
    change = s.change_ms if s.kind != "age" else None
    end = T0 + s.days * DAY_MS
    last_label_hour = end + (s.label_delay_ms or 0) + 6 * HOUR_MS
    for hour in range(T0, last_label_hour, HOUR_MS):
        preds = []
        if hour < end:
            first = -(-(hour - T0) * level // DAY_MS)
            last = -(-(hour + HOUR_MS - T0) * level // DAY_MS)
            for i in range(first, last):
                ts = T0 + i * DAY_MS // level
                changed = change is not None and ts >= change
                score, y = draw(s, rng, changed)
                feats = features(s, rng, changed)
                pid = f"{model}-{i}"
                event: dict[str, Any] = {
                    "prediction_id": pid,
                    "model_id": model,
                    "model_version": VERSION,
                    "timestamp": ts,
                    "task": "binary",
                    "score": score,
                }
                if feats is not None:
                    event["features"] = feats
                preds.append(event)
                if s.label_delay_ms is not None:
                    seen = ts + s.label_delay_ms + int(rng.expovariate(1 / JITTER_MS))
                    pending[seen // HOUR_MS * HOUR_MS].append(
                        {"prediction_id": pid, "model_id": model, "timestamp": seen, "label": y}
                    )
        labels = sorted(pending.pop(hour, []), key=lambda o: o["timestamp"])
        if preds or labels:
            yield hour, preds, labels


def facts_document(s: Scenario) -> dict[str, Any]:
    """The registry cache's model document (`registry.cache`) with the scenario's facts."""
    facts = s.facts()
    return {
        "versions": [
            {
                "version": VERSION,
                "trained_at": facts.trained_at_ms,
                "max_age_ms": facts.max_age_ms,
            }
        ]
    }


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
    speed: Callable[[int, float, int], None] | None = None,
) -> Outcome:
    """`speed(events, cpu_seconds, peak_state_keys)` is told how the join's path went."""
    cfg = cfg or StalenessConfig()
    started, cpu = time.monotonic(), time.process_time()
    writer = _RowsWriter(rows_dir, s) if rows_dir is not None else None
    replay = InProcess(s, level, cfg)
    timeline = asyncio.run(replay.run(writer.add if writer else None))
    if writer is not None:
        writer.close()
    if speed is not None:
        speed(replay.events, time.process_time() - cpu, replay.peak_keys)
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


def days_at(level: int, after_days: int | None) -> int | None:
    """Days after the change that change scenarios run at `level` (None: `SHORT_DAYS` in).

    Above `EVIDENTLY_MAX_PER_DAY` (1,000,000 a day: in process only), `LARGE_AFTER_DAYS`
    unless said otherwise: every change is caught within hours there, and 4 days instead of 7
    keep the whole bench near 40 minutes (the join's rules apply about 45,000 events per
    CPU-second; 7 days of a change scenario are 14 M events).
    """
    if after_days is not None or level <= EVIDENTLY_MAX_PER_DAY:
        return after_days
    return LARGE_AFTER_DAYS


def in_process_levels(
    levels: Sequence[int],
    names: Sequence[str] | None,
    python: Path | None,
    after_days: int | None,
    emit: Callable[[str], None] = print,
) -> list[Outcome]:
    """Every chosen scenario in process at each level (Evidently beside it up to
    `EVIDENTLY_MAX_PER_DAY` when `python` is its interpreter)."""
    chosen = [s for s in SCENARIOS if names is None or s.name in names]
    outcomes = []
    for level in levels:
        for s in chosen:
            s = scenario_days(s, days_at(level, after_days))
            emit(f"{s.name} at {level:,}/day ({s.days} days) ...")
            with tempfile.TemporaryDirectory(prefix="runway-bench-detection-") as tmp:
                with_peer = python is not None and level <= EVIDENTLY_MAX_PER_DAY
                out = run_in_process(
                    s, level, rows_dir=Path(tmp) if with_peer else None, speed=_speed(emit)
                )
                if with_peer:
                    assert python is not None
                    out.evidently = evidently_summary(s, evidently_days(python, Path(tmp)))
            emit(f"  {_line(out)}")
            outcomes.append(out)
    return outcomes


def _speed(emit: Callable[[str], None]) -> Callable[[int, float, int], None]:
    def told(events: int, cpu_s: float, peak_keys: int) -> None:
        rate = events / cpu_s if cpu_s else 0.0
        emit(f"  in process: {events:,} events in {cpu_s:.1f} CPU-s ({rate:,.0f} per "
             f"CPU-second), peak state {peak_keys:,} keys")  # fmt: skip

    return told


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _in_process_child(
    levels: Sequence[int], names: Sequence[str] | None, python: Path | None, after: int | None
) -> list[Outcome]:
    return in_process_levels(levels, names, python, after, _stderr)


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
    local stack at each of `worker_levels` (needs `settings`).

    With both, the in-process levels run in a second process while the worker path runs
    (they share nothing; the worker path mostly waits on its worker): the whole bench takes
    about as long as the longer of the two. Its progress goes to stderr."""
    chosen = [s for s in SCENARIOS if names is None or s.name in names]
    python = evidently_python(emit) if peer else None
    outcomes: list[Outcome] = []
    beside = None
    pool = None
    if worker_levels and levels:
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        beside = pool.submit(_in_process_child, list(levels), names, python, after_days)

        def failed(done: Future[list[Outcome]]) -> None:  # said at once: the worker path
            if not done.cancelled() and done.exception() is not None:  # may run 30 min more
                emit(f"in-process path failed: {done.exception()!r}")

        beside.add_done_callback(failed)
    try:
        for level in worker_levels:
            from tools.bench_detection_worker import run_worker_level

            assert settings is not None
            for out in asyncio.run(run_worker_level(settings, level, chosen, emit)):
                emit(f"  {out.scenario} (worker): {_line(out)}")
                outcomes.append(out)
        if beside is not None:
            outcomes.extend(beside.result())
        else:
            outcomes.extend(in_process_levels(levels, names, python, after_days, emit))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
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
