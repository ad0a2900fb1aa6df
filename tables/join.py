"""The join's rules: a left interval join of outcomes to predictions on prediction_id. Pure.

Everything works on a `PartitionTransaction` (or anything with get/set/delete/scan), so the rules
are tested directly with a dict-backed store. A pair moves through these states, stored under
`keys.pair(model_id, prediction_id)`:

    P  prediction waiting for its label until `dl` (its timestamp + the model's label TTL)
    E  early outcome waiting for its prediction until `dl` (its timestamp + early-outcome TTL)
    J  joined; kept until `dl` so that duplicates are recognised and counted, not re-joined
    X  expired unlabeled; an outcome arriving now is "late"

Each state change happens exactly once per pair, and the metric buckets change with it in the
same transaction, so metrics never count a replayed or duplicated event twice. Every state with a
deadline has an entry in the expiry index at that deadline; a sweep reads the index up to the
stream time and so costs work in proportion to what expires.

Pairs' index entries are written in chunks: the entries a fetch made, one index key per second
of deadline holding them all (`keys.chunk`), rather than one key each. An entry is never deleted
when its pair moves on (joined, expired): the sweep meets it at its deadline, finds the pair
holding another deadline (or gone) and skips it. Per pair that is one changelog record instead
of four or five index writes and deletes over its life, for one read when a stale entry is due.
(Buckets keep one index key each: they are few, and their entries are rescheduled.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from config.windows import GRANULARITIES, Window, bucket_retention
from tables import aggregates, keys
from tables.deltas import Deltas, ModelTouch


class State(Protocol):
    def get(self, key: bytes) -> Any | None: ...
    def set(self, key: bytes, value: Any) -> None: ...
    def put_absent(self, key: bytes, value: Any) -> None: ...
    def delete_stored(self, key: bytes) -> None: ...
    def delete(self, key: bytes) -> None: ...
    def scan(self, start: bytes, stop: bytes) -> Iterable[tuple[bytes, Any]]: ...


@dataclass(frozen=True)
class JoinConfig:
    label_ttl_for: Callable[[str], int]
    early_outcome_ttl_ms: int
    done_retention_ms: int
    windows: list[Window]


@dataclass
class JoinEffects:
    """What one call changed beyond the state: output pairs and models whose view moved."""

    joined: list[dict[str, Any]] = field(default_factory=list)
    models: set[str] = field(default_factory=set)
    expired: int = 0
    # Outcomes refused when they met their prediction: (reason, outcome, its input offset, or
    # None for the record being applied). The processor turns each into a dead letter.
    rejected: list[tuple[str, dict[str, Any], int | None]] = field(default_factory=list)
    # Models forgotten as idle, with the versions they had (their views are deleted too).
    forgotten: dict[str, list[str]] = field(default_factory=dict)
    # Bucket and model-record changes not yet in the state (`JoinRules.settle` writes them).
    deltas: Deltas = field(default_factory=Deltas)
    touched: dict[str, ModelTouch] = field(default_factory=dict)
    # Pair index entries not yet in the state, per second of deadline: [pair key, deadline]
    # (the key as latin-1 text, a JSON string that gives back its bytes). `settle` writes them.
    index: dict[int, list[list[Any]]] = field(default_factory=dict)


CHUNK_MS = 1_000  # the deadlines one index chunk spans: a sweep rewrites a chunk it cuts
# Entries per chunk at most: a chunk is one changelog record, which must stay far below a
# record batch's bound (~40 bytes an entry, 600 for the longest ids).
CHUNK_ENTRIES = 256


def index_entries(items: Iterable[tuple[bytes, Any]]) -> Iterator[tuple[int, bytes]]:
    """(deadline, target) of every index entry among `items` (a scan of the index), chunks
    unpacked: for checks and tools that look at the index whatever its layout."""
    for key, value in items:
        deadline, target = keys.split_expiry(key)
        if target.startswith(keys.CHUNK):
            for text, entry_deadline in value:
                yield entry_deadline, text.encode("latin-1")
        else:
            yield deadline, target


# Outcomes of one pair kept whole while its task is unknown and none of them could label a
# binary prediction: a bound, so a hostile stream of bad labels cannot grow one record.
MAX_HELD_OUTCOMES = 16


def _candidates(record: dict[str, Any]) -> list[tuple[dict[str, Any], int | None]]:
    """An early-outcome record's outcomes in arrival order, each with its input offset."""
    first = (record["out"], record.get("src"))
    return [first] + [(out, offset) for out, offset in record.get("more", ())]


def _settled(record: dict[str, Any]) -> bool:
    """An outcome held can label a prediction of either task: later ones are duplicates."""
    return any(out["label"] in (0, 1) for out, _ in _candidates(record))


def label_problem(task: str, label: float) -> str | None:
    """Why an outcome's label cannot label a prediction of `task` (None: it can)."""
    if task == "binary" and label not in (0, 1):
        return f"label {label!r} of a binary model's outcome is not 0 or 1"
    return None


class JoinRules:
    def __init__(self, config: JoinConfig) -> None:
        self.config = config
        self._retention = bucket_retention(config.windows)

    # -- inputs ----------------------------------------------------------------------------------
    def on_prediction(
        self, state: State, pred: dict[str, Any], fx: JoinEffects, *, settle: bool = True
    ) -> None:
        """`settle`: write the buckets and the model record now (a caller applying a record
        of events settles once, after its last one)."""
        self._on_prediction(state, pred, fx)
        if settle:
            self.settle(state, fx)

    def _on_prediction(self, state: State, pred: dict[str, Any], fx: JoinEffects) -> None:
        pid_key = keys.pair(pred["model_id"], pred["prediction_id"])
        record = state.get(pid_key)
        model_id, version, ts = pred["model_id"], pred["model_version"], pred["timestamp"]
        fx.models.add(model_id)
        self._touch_model(fx, model_id, ts, "lp", version, pred["task"])
        if record is None:
            self._count_prediction(fx, pred)
            self._put_pending(state, pid_key, pred, fx)
        elif record["s"] == "E":
            self._count_prediction(fx, pred)
            duplicates = record.get("d", 0)
            joined = False
            for out, offset in _candidates(record):
                if joined:
                    duplicates += 1  # after the one that joined: as if it came after
                    continue
                problem = label_problem(pred["task"], out["label"])
                if problem is None:
                    self._join(state, pid_key, pred, out, fx)
                    joined = True
                else:  # refused as it would have been after the prediction
                    fx.rejected.append((problem, out, offset))
            if not joined:
                self._put_pending(state, pid_key, pred, fx)
            if duplicates:
                self._count(fx, model_id, version, ts, "do", duplicates)
        else:
            self._count_duplicate(fx, record, "dp", ts)

    def _count_prediction(self, fx: JoinEffects, pred: dict[str, Any]) -> None:
        """A prediction counts once, in the buckets of its timestamp (its score and features)."""
        self._bump(
            fx,
            pred["model_id"],
            pred["model_version"],
            pred["timestamp"],
            aggregates.add_prediction_delta,
            pred["task"],
            pred["score"],
            pred.get("features"),
        )

    def on_outcome(
        self,
        state: State,
        out: dict[str, Any],
        stream_time: int,
        fx: JoinEffects,
        offset: int | None = None,
        *,
        settle: bool = True,
    ) -> None:
        """`offset`: the outcome's input offset, kept with an early outcome so that it can
        still be dead-lettered when its prediction shows its label does not fit the task.
        `settle`: as for `on_prediction`."""
        self._on_outcome(state, out, stream_time, fx, offset)
        if settle:
            self.settle(state, fx)

    def _on_outcome(
        self,
        state: State,
        out: dict[str, Any],
        stream_time: int,
        fx: JoinEffects,
        offset: int | None,
    ) -> None:
        pid_key = keys.pair(out["model_id"], out["prediction_id"])
        record = state.get(pid_key)
        if record is not None and record["s"] == "P":
            problem = label_problem(record["pred"]["task"], out["label"])
            if problem is not None:
                fx.rejected.append((problem, out, None))
                return  # changes nothing: the prediction keeps waiting for a valid label
        fx.models.add(out["model_id"])
        self._touch_model(fx, out["model_id"], out["timestamp"], "lo")
        if record is None:
            deadline = out["timestamp"] + self.config.early_outcome_ttl_ms
            early = {"s": "E", "out": out, "dl": deadline}
            if offset is not None:
                early["src"] = offset
            self._put(state, pid_key, early, fx)
            return
        kind = record["s"]
        if kind == "P" and record["dl"] <= stream_time:
            self._expire_pending(state, pid_key, record, fx)
            record = state.get(pid_key) or record
            kind = "X"
        if kind == "P":
            self._join(state, pid_key, record["pred"], out, fx)
        elif kind == "E":
            # Held until the pair resolves, so the duplicate lands in the same buckets (version
            # included) whichever side the consumer happened to read first. While no outcome
            # held could label a binary prediction (0 or 1), a later one is kept whole: if the
            # task turns out binary, it is the one that joins, as it would have been had the
            # prediction come first (the earlier ones are refused then).
            if _settled(record) or len(record.get("more", ())) >= MAX_HELD_OUTCOMES:
                record["d"] = record.get("d", 0) + 1
            else:
                record.setdefault("more", []).append([out, offset])
            state.set(pid_key, record)
        elif kind == "J":
            self._count_duplicate(fx, record, "do", out["timestamp"])
        else:
            self._count(fx, record["m"], record["v"], record["t"], "late")

    # -- expiry ----------------------------------------------------------------------------------
    def expire(self, state: State, upto_ms: int, fx: JoinEffects) -> None:
        """Apply every deadline <= upto_ms (the partition's stream time), including those that
        applying one sets (an expired prediction's record, kept for late labels, may already
        be due as well when the stream time jumped)."""
        while due := list(state.scan(keys.EXPIRY, keys.expiry_bound(upto_ms))):
            self._expire_due(state, due, upto_ms, fx)
            # A bucket deleted above and counted into after (or the reverse) ends the same:
            # one settled anew has its index entry due again, and the next pass deletes it.
            self.settle(state, fx)

    def _expire_due(
        self, state: State, due: list[tuple[bytes, Any]], upto_ms: int, fx: JoinEffects
    ) -> None:
        for index_key, value in due:
            deadline, target = keys.split_expiry(index_key)
            state.delete(index_key)
            if target.startswith(keys.CHUNK):
                self._expire_chunk(state, value, upto_ms, fx)
                continue
            fx.expired += 1
            if target.startswith(keys.PAIR):
                self._expire_pair(state, target, deadline, fx)
            elif target.startswith(keys.BUCKET):
                self._expire_bucket(state, target, upto_ms)

    def _expire_chunk(
        self, state: State, entries: list[list[Any]], upto_ms: int, fx: JoinEffects
    ) -> None:
        """A chunk's due entries applied; the rest (a sweep that cut the chunk's second) kept
        in a chunk of their own, at the earliest of their deadlines."""
        later = []
        for text, deadline in entries:
            if deadline <= upto_ms:
                fx.expired += 1
                self._expire_pair(state, text.encode("latin-1"), deadline, fx)
            else:
                later.append([text, deadline])
        if later:
            _write_chunk(state, later)

    def _expire_pair(self, state: State, key: bytes, deadline: int, fx: JoinEffects) -> None:
        record = state.get(key)
        if record is None or record["dl"] != deadline:
            return  # stale index entry: the pair moved on
        if record["s"] == "P":
            fx.models.add(record["pred"]["model_id"])
            self._expire_pending(state, key, record, fx)
        elif record["s"] == "E":
            out = record["out"]
            fx.models.add(out["model_id"])
            self._count(fx, out["model_id"], None, out["timestamp"], "orph")
            duplicates = record.get("d", 0) + len(record.get("more", ()))
            if duplicates:
                self._count(fx, out["model_id"], None, out["timestamp"], "do", duplicates)
            state.delete(key)
        else:
            state.delete(key)

    def _expire_bucket(self, state: State, key: bytes, upto_ms: int) -> None:
        model_id, _, gran, start = keys.split_bucket(key)
        info = state.get(keys.model(model_id))
        clock = info["clock"] if info else upto_ms
        # The bucket's own deadline in the model's time, not the index entry's (which a
        # reschedule moved to stream time): comparing with that one would reschedule forever.
        deadline = start + GRANULARITIES[gran] + self._retention.get(gran, 0)
        if clock < deadline:
            # The model's own clock lags the partition's: its windows still need the bucket.
            state.set(keys.expiry(upto_ms + (deadline - clock), key), 1)
            return
        state.delete(key)

    def _expire_pending(
        self,
        state: State,
        key: bytes,
        record: dict[str, Any],
        fx: JoinEffects,
    ) -> None:
        pred = record["pred"]
        self._count(fx, pred["model_id"], pred["model_version"], pred["timestamp"], "exp")
        done = {
            "s": "X",
            "t": pred["timestamp"],
            "m": pred["model_id"],
            "v": pred["model_version"],
            "dl": record["dl"] + self.config.done_retention_ms,
        }
        self._put(state, key, done, fx)

    # -- idle models -----------------------------------------------------------------------------
    def idle_after_ms(self, model_id: str) -> int:
        """How long a model's clock may stand still before the model is forgotten: its longest
        window (no window holds anything of it after that) plus its label TTL (no label can
        still arrive for it)."""
        longest = max((w.length_ms for w in self.config.windows), default=0)
        return longest + self.config.label_ttl_for(model_id)

    def forget_idle(self, state: State, stream_time: int, fx: JoinEffects) -> None:
        """Forget every model whose clock stood still for `idle_after_ms` of stream time.

        Without this, the model records of models that stopped (renamed, retired, one-off
        test ids) stay forever, and so do their buckets: each bucket's expiry is rescheduled
        while its model's clock lags. Deleted: the model record, every bucket (their index
        entries become stale and are dropped when due), the drift references. Pairs expire by
        their own deadlines, which all lie within the same horizon.
        """
        for key, info in list(state.scan(keys.MODEL, keys.MODEL_END)):
            model_id = key[len(keys.MODEL) :].decode()
            if stream_time - info["clock"] <= self.idle_after_ms(model_id):
                continue
            state.delete(key)
            for doomed, _ in list(state.scan(*keys.model_buckets(model_id))):
                state.delete(doomed)
                # its index entry where it was first put (one a lagging clock rescheduled
                # stays until due, then goes without effect)
                _, _, gran, start = keys.split_bucket(doomed)
                deadline = start + GRANULARITIES[gran] + self._retention.get(gran, 0)
                state.delete(keys.expiry(deadline, doomed))
            for doomed, _ in list(state.scan(*keys.model_references(model_id))):
                state.delete(doomed)
            fx.forgotten[model_id] = list(info.get("versions") or [])

    # -- healing ---------------------------------------------------------------------------------
    def pull_back(self, state: State, ceiling_ms: int) -> list[str]:
        """Bring model clocks stamped beyond `ceiling_ms` back to it; returns those models.

        State written before future-dated events were refused at the door may hold a clock
        years ahead, which slides the model's windows past every real event. Its last times
        come back with it and its buckets beyond the ceiling (only that event's) are deleted
        with their index entries; pairs are left as they are (they expire by their own
        deadlines). Idempotent, and cheap when nothing is ahead: one read of each model record.
        """
        healed = []
        for key, info in list(state.scan(keys.MODEL, keys.MODEL_END)):
            if info["clock"] <= ceiling_ms:
                continue
            model_id = key[len(keys.MODEL) :].decode()
            info["clock"] = ceiling_ms
            for last in ("lp", "lo"):
                if info.get(last) is not None and info[last] > ceiling_ms:
                    info[last] = ceiling_ms
            state.set(key, info)
            start, stop = keys.model_buckets(model_id)
            for bucket_key, _ in list(state.scan(start, stop)):
                _, _, gran, bucket_start = keys.split_bucket(bucket_key)
                if bucket_start > ceiling_ms:
                    state.delete(bucket_key)
                    retention = self._retention.get(gran, 0)
                    deadline = bucket_start + GRANULARITIES[gran] + retention
                    state.delete(keys.expiry(deadline, bucket_key))
            healed.append(model_id)
        return healed

    # -- helpers ---------------------------------------------------------------------------------
    def _join(
        self, state: State, key: bytes, pred: dict[str, Any], out: dict[str, Any], fx: JoinEffects
    ) -> None:
        model_id, version, ts = pred["model_id"], pred["model_version"], pred["timestamp"]
        delay = out["timestamp"] - ts
        self._bump(
            fx,
            model_id,
            version,
            ts,
            aggregates.add_label_delta,
            pred["task"],
            pred["score"],
            out["label"],
            delay,
        )
        deadline = ts + self.config.label_ttl_for(model_id) + self.config.done_retention_ms
        self._put(state, key, {"s": "J", "t": ts, "m": model_id, "v": version, "dl": deadline}, fx)
        fx.joined.append(
            {
                **pred,
                "label": out["label"],
                "outcome_timestamp": out["timestamp"],
                "label_delay_ms": delay,
            }
        )

    def _put_pending(self, state: State, key: bytes, pred: dict[str, Any], fx: JoinEffects) -> None:
        deadline = pred["timestamp"] + self.config.label_ttl_for(pred["model_id"])
        self._put(state, key, {"s": "P", "pred": pred, "dl": deadline}, fx)

    def _put(self, state: State, key: bytes, record: dict[str, Any], fx: JoinEffects) -> None:
        state.set(key, record)
        deadline = record["dl"]
        second = deadline // CHUNK_MS
        entries = fx.index.get(second)
        if entries is None:
            entries = fx.index[second] = []
        entries.append([key.decode("latin-1"), deadline])

    def _count_duplicate(
        self, fx: JoinEffects, record: dict[str, Any], field_: str, fallback_ts: int
    ) -> None:
        if record["s"] == "P":
            pred = record["pred"]
            self._count(fx, pred["model_id"], pred["model_version"], pred["timestamp"], field_)
        elif record["s"] in ("J", "X"):
            self._count(fx, record["m"], record["v"], record["t"], field_)
        else:
            self._count(fx, record["out"]["model_id"], None, fallback_ts, field_)

    def _count(
        self,
        fx: JoinEffects,
        model_id: str,
        version: str | None,
        ts: int,
        field_: str,
        amount: int = 1,
    ) -> None:
        delta = fx.deltas.at(model_id, version, ts)
        delta[field_] = delta.get(field_, 0) + amount

    def _bump(
        self,
        fx: JoinEffects,
        model_id: str,
        version: str | None,
        ts: int,
        update: Callable[..., None],
        *args: Any,
    ) -> None:
        """Add one event's contribution to its minute's delta (`settle` writes the buckets)."""
        update(fx.deltas.at(model_id, version, ts), *args)

    def settle(self, state: State, fx: JoinEffects, *, index: bool = True) -> None:
        """Write what `fx` holds for the buckets and model records into the state.

        Each event's contribution is added once to a delta per (model, version, minute); here
        each delta goes into its buckets (every granularity, its version's and all versions'),
        so a record of 100 events of one model and minute reads and writes each bucket once
        rather than 100 times. Exact: bucket counters and histograms are sums, and feature
        histograms (whose bounds depend on order) take their events in arrival order.
        The pairs' index entries go in too, one chunk per second of deadline, unless `index`
        is false: then the caller takes them from `fx.index` and writes them later
        (`write_index`), gathered over more events into fuller chunks.
        """
        if index:
            self.write_index(state, fx.index)
            fx.index.clear()
        for (model_id, version, minute), delta in fx.deltas.items():
            versions = (keys.ALL_VERSIONS,) if version is None else (keys.ALL_VERSIONS, version)
            for gran, retention in self._retention.items():
                size = GRANULARITIES[gran]
                start = minute // size * size
                for ver in versions:
                    key = keys.bucket(model_id, ver, gran, start)
                    agg = state.get(key)
                    if agg is None:
                        agg = {}
                        state.set(keys.expiry(start + size + retention, key), 1)
                    aggregates.absorb(agg, delta)
                    state.set(key, agg)
        fx.deltas.clear()
        for model_id, touch in fx.touched.items():
            key = keys.model(model_id)
            info = state.get(key)
            if info is None:
                info = {
                    "task": touch.task,
                    "clock": touch.clock,
                    "versions": [],
                    "lp": None,
                    "lo": None,
                }
            for version in touch.versions:
                if version not in info["versions"]:
                    info["versions"].append(version)
            if touch.task is not None:
                info["task"] = touch.task
            info["clock"] = max(info["clock"], touch.clock)
            for last_field in ("lp", "lo"):
                last = getattr(touch, last_field)
                if last is not None:
                    info[last_field] = (
                        last if info[last_field] is None else max(info[last_field], last)
                    )
            state.set(key, info)
        fx.touched.clear()

    def write_index(self, state: State, index: dict[int, list[list[Any]]]) -> None:
        """Pair index entries (as `JoinEffects.index` holds them) into the state, in chunks."""
        for entries in index.values():
            for start in range(0, len(entries), CHUNK_ENTRIES):
                _write_chunk(state, entries[start : start + CHUNK_ENTRIES])

    def _touch_model(
        self,
        fx: JoinEffects,
        model_id: str,
        ts: int,
        last_field: str,
        version: str | None = None,
        task: str | None = None,
    ) -> None:
        """Advance the model's clock (the latest event time seen for it) and its last times."""
        touch = fx.touched.get(model_id)
        if touch is None:
            touch = fx.touched[model_id] = ModelTouch(ts)
        elif ts > touch.clock:
            touch.clock = ts
        if version is not None and version not in touch.versions:
            touch.versions.append(version)
        if task is not None:
            touch.task = task
        last = getattr(touch, last_field)
        if last is None or ts > last:
            setattr(touch, last_field, ts)


def _write_chunk(state: State, entries: list[list[Any]]) -> None:
    text, deadline = min(entries, key=lambda entry: (entry[1], entry[0]))
    key = keys.chunk(deadline, text.encode("latin-1"))
    # Named after its earliest entry; a chunk of that name exists only if the same pair was
    # indexed at the same deadline before (two states of one pair whose deadlines coincide to
    # the millisecond): then the two are one chunk. One read per chunk, not per pair.
    held = state.get(key)
    state.set(key, entries if held is None else held + entries)
