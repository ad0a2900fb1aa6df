"""`runway bench`'s state phases: the bytes the join keeps per pending prediction and per
joined pair.

Why: state size sets how long a lost worker takes to restore and how much disk a partition
needs at the seed's loads (predictions wait up to their 7-day label TTL; joined pairs are kept
as long to spot duplicates). The figure must not depend on how values are encoded, so it is
read from RocksDB's own files, as the worker writes them.

Two phases, each with fresh topics, group and data directory, and a worker running the join
alone (the other agents write nothing to the join's table but drift references, which are
excluded anyway):

1. **pending**: predictions only (`unlabeled_share` 1.0, no duplicates, early outcomes or bad
   input), so every prediction waits for its label;
2. **joined**: every prediction and its outcome (no unlabeled, early, duplicate or bad events;
   labels 1 s of event time late; the default 7-day TTLs, so nothing expires).

The worker drains the backlog (the group committed every input record) and is stopped with
SIGTERM. Then, for each partition DB of the join table, the pair keys (`p`) and their entries in
the expiry index (`x` keys whose target is a pair; a bucket's entry counts with the bucket) are
copied into a fresh DB opened with the worker's own rocksdict options (those of the join table's
store in an app wired as `runway worker` wires it: compression, block size, bloom filter), which
is flushed and fully compacted (`compact_range`, bottommost level forced); the sizes of its live
SST files are summed. Buckets, model records, drift references, the checkpoint marker and
Faust's offset key are left out; so is the batch view's table. Copying rather than deleting the
other prefixes in place leaves no tombstones to account for. The sum divided by the predictions
sent (distinct ids, exact) is `state_bytes_per_pending`; divided by the pairs joined,
`state_bytes_per_joined`. The phase fails if the DBs hold another number of pair keys.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rocksdict import (
    AccessType,
    BottommostLevelCompaction,
    CompactOptions,
    Options,
    Rdict,
    WriteBatch,
)

from config.settings import Settings
from stack.topics import ensure_topics
from streams.app import create_app
from streams.producer import make_producer
from streams.worker import build_worker
from tables import keys
from tools.bench_sweep import drain
from tools.traffic import TrafficSpec, generate

KEPT_PREFIXES = (keys.PAIR, keys.EXPIRY)
COPY_BATCH_KEYS = 10_000
MAX_IN_FLIGHT = 2_000
Phase = Callable[[str], Settings]  # a tag -> fresh settings of one phase (topics, group, dirs)


@dataclass(frozen=True)
class PairState:
    """What the kept keys of every partition DB occupy once compacted."""

    sst_bytes: int
    pair_keys: int
    index_keys: int
    partitions: int
    raw_bytes: int  # keys and values as stored, before RocksDB's blocks and compression


@dataclass(frozen=True)
class Sent:
    predictions: int
    outcomes: int
    bytes: int

    @property
    def events(self) -> int:
        return self.predictions + self.outcomes


def worker_db_options(settings: Settings) -> Callable[[], Options]:
    """A factory of the rocksdict `Options` the worker opens its join partitions with.

    Taken from the join table's store of an app wired by the worker's own wiring (nothing is
    started), so whatever the worker's options become, the measure follows them.
    """
    wired = settings.model_copy(update={"agents": "join"})
    app = create_app(wired)
    build_worker(app, wired)
    store: Any = app.tables["join"].data  # type: ignore[attr-defined]
    rocksdb_options = getattr(store, "rocksdb_options", None)
    if rocksdb_options is None:
        raise RuntimeError(f"the join table's store {type(store).__name__} has no rocksdb_options")
    factory: Callable[[], Options] = rocksdb_options.as_options
    return factory


def _kept(db: Rdict) -> Iterator[tuple[bytes, bytes]]:
    """Pair keys, and the expiry-index keys of pairs, one each or in chunks (buckets have index
    keys too: theirs)."""
    for prefix in KEPT_PREFIXES:
        end = bytes([prefix[0] + 1])
        for key, value in db.items(from_key=prefix):
            assert isinstance(key, bytes)  # a raw-mode DB
            if key >= end:
                break
            target = keys.split_expiry(key)[1] if prefix == keys.EXPIRY else b""
            if prefix == keys.EXPIRY and not target.startswith((keys.PAIR, keys.CHUNK)):
                continue
            yield key, value


def pair_state(datadir: Path, options: Callable[[], Options], scratch: Path) -> PairState:
    """Pair and expiry-index keys of every join partition DB under a stopped worker's
    data directory, copied to fresh DBs made with `options`, compacted, SST bytes summed."""
    sst = pairs = index = partitions = raw = 0
    force = CompactOptions()
    force.set_bottommost_level_compaction(BottommostLevelCompaction.force())
    for path in sorted(datadir.glob("**/tables/join-*.db")):
        partitions += 1
        source = Rdict(str(path), Options(raw_mode=True), access_type=AccessType.read_only())
        target_path = str(scratch / path.name)
        target = Rdict(target_path, options())
        try:
            batch, size = WriteBatch(raw_mode=True), 0
            for key, value in _kept(source):
                batch.put(key, value)
                size += 1
                raw += len(key) + len(value)
                if key[:1] == keys.PAIR:
                    pairs += 1
                else:
                    index += 1
                if size >= COPY_BATCH_KEYS:
                    target.write(batch)
                    batch, size = WriteBatch(raw_mode=True), 0
            if size:
                target.write(batch)
            target.flush()
            target.compact_range(None, None, force)
            sst += sum(int(f["size"]) for f in target.live_files())
        finally:
            target.close()
            source.close()
            Rdict.destroy(target_path, options())
    return PairState(sst, pairs, index, partitions, raw)


async def send(settings: Settings, spec: TrafficSpec) -> Sent:
    """Every record of `spec`, unpaced; what was sent, by kind."""
    producer = make_producer(settings)
    await producer.start()
    predictions = outcomes = nbytes = 0
    in_flight: list[Any] = []
    try:
        for record in generate(spec, random.Random(1)):
            in_flight.append(
                await producer.send(settings.topic(record.topic), record.value, key=record.key)
            )
            if record.topic == "predictions":
                predictions += record.events
            else:
                outcomes += record.events
            nbytes += len(record.value)
            if len(in_flight) >= MAX_IN_FLIGHT:
                for future in in_flight:
                    await future
                in_flight.clear()
        await producer.flush()
        for future in in_flight:
            await future
    finally:
        await producer.stop()
    return Sent(predictions, outcomes, nbytes)


def phase_spec(
    predictions: int, joined: bool, models: int, batch_size: int, run_id: str
) -> TrafficSpec:
    return TrafficSpec(
        models=models,
        rate=None,
        events=2 * predictions if joined else predictions,
        batch_size=batch_size,
        start_ms=int(time.time() * 1000) - 3_600_000,
        label_delay="fixed",
        label_delay_ms=1_000.0,
        unlabeled_share=0.0 if joined else 1.0,
        early_share=0.0,
        duplicate_share=0.0,
        malformed_share=0.0,
        run_id=run_id,
    )


async def _measure(settings: Settings, spec: TrafficSpec) -> tuple[Sent, PairState]:
    workdir = Path(settings.datadir).parent
    await ensure_topics(settings)
    sent = await send(settings, spec)
    await drain(settings, workdir / "worker.log")
    with tempfile.TemporaryDirectory(dir=workdir, prefix="compacted-") as scratch:
        state = pair_state(Path(settings.datadir), worker_db_options(settings), Path(scratch))
    return sent, state


async def state_phase(
    fresh: Phase,
    cleanup: Callable[[Settings], Any],
    *,
    predictions: int,
    models: int,
    batch_size: int,
    emit: Callable[[str], None],
) -> dict[str, Any]:
    """Both phases; the JSON keys `state_*` (see the module docstring)."""
    result: dict[str, Any] = {}
    # Tags of 4 characters: prediction ids as long as the main backlog's (bench-main-<8 hex>-i).
    for tag, joined, name in (("pend", False, "pending"), ("join", True, "joined")):
        settings = fresh(tag).model_copy(update={"agents": "join"})
        spec = phase_spec(predictions, joined, models, batch_size, settings.app_id)
        emit(f"state, {name}: {spec.total_events:,} events ...")
        try:
            sent, state = await _measure(settings, spec)
        finally:
            await cleanup(settings)
        units = sent.outcomes if joined else sent.predictions
        if state.pair_keys != sent.predictions:
            raise RuntimeError(
                f"state phase {name}: {state.pair_keys:,} pair keys for "
                f"{sent.predictions:,} predictions sent"
            )
        per = state.sst_bytes / max(units, 1)
        emit(
            f"  {state.sst_bytes:,} SST bytes / {units:,} = {per:,.1f} bytes "
            f"({state.pair_keys:,} pair + {state.index_keys:,} index keys, "
            f"{state.partitions} partition DBs; {sent.bytes / sent.events:,.1f} bytes per event)"
        )
        result.update(
            {
                f"state_bytes_per_{name}": round(per, 1),
                f"state_{name}_{'pairs' if joined else 'predictions'}": units,
                f"state_{name}_sst_bytes": state.sst_bytes,
                f"state_{name}_raw_bytes": state.raw_bytes,
                f"state_{name}_pair_keys": state.pair_keys,
                f"state_{name}_index_keys": state.index_keys,
                f"state_{name}_event_bytes": round(sent.bytes / sent.events, 1),
            }
        )
    return result
