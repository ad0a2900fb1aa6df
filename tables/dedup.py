"""Which joined pairs the batch view has already written, by model and prediction_id. Pure.

A replay of the join can put a pair on `joined` twice; the batch view keeps each pair once.
A pair is remembered for a retention period of event time from its prediction's timestamp,
which every copy of the pair carries alike (the join's first prediction wins), in ONE key: an
expiry-index key whose deadline is that timestamp plus the retention and whose target is the
pair's seen key. A sighting is one lookup of that key, forgetting is a scan of the index up to
the stream time, and each pair costs one changelog record, not two (a seen key and its index
entry).

State written before this layout (a seen key holding its deadline, plus an index entry whose
value is `LEGACY_INDEX`) is still honoured: a partition that holds any is flagged by the caller
(`holds_legacy`), its lookups also try the old key, and its old entries expire as before.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from tables import keys
from tables.join import State


class Claims(Protocol):
    """What the sightings need of a state: `PartitionTransaction`'s get and claim."""

    def get(self, key: bytes) -> Any | None: ...
    def claim(self, key: bytes, value: Any) -> bool: ...


SIGHTING = 2  # the value of a one-key sighting
LEGACY_INDEX = 1  # the value of an old layout's index entry (its target: a seen key)


def first_sighting(
    state: Claims,
    model_id: str,
    prediction_id: str,
    predicted_at: int,
    retention_ms: int,
    legacy: bool = False,
) -> bool:
    pair = (model_id, prediction_id, predicted_at)
    return first_sightings(state, [pair], retention_ms, legacy)[0]


def first_sightings(
    state: Claims,
    pairs: Iterable[tuple[str, str, int]],
    retention_ms: int,
    legacy: bool = False,
) -> list[bool]:
    """Whether each (model_id, prediction_id, predicted_at) is seen for the first time, in
    order (a pair listed twice: the second is not), remembering each: one call per `joined`
    record."""
    claim, expiry, seen_key = state.claim, keys.expiry, keys.seen
    firsts = []
    for model_id, prediction_id, predicted_at in pairs:
        seen = seen_key(model_id, prediction_id)
        if legacy and state.get(seen) is not None:
            firsts.append(False)  # an old layout's sighting
            continue
        firsts.append(claim(expiry(predicted_at + retention_ms, seen), SIGHTING))
    return firsts


def forget_expired(state: State, upto_ms: int) -> int:
    due = list(state.scan(keys.EXPIRY, keys.expiry_bound(upto_ms)))
    for index_key, value in due:
        state.delete_stored(index_key)
        if value == LEGACY_INDEX:
            deadline, target = keys.split_expiry(index_key)
            if state.get(target) == deadline:
                state.delete(target)
    return len(due)


def holds_legacy(state: State) -> bool:
    """Whether the partition holds seen keys of the old layout (one seek)."""
    return next(iter(state.scan(keys.SEEN, keys.SEEN_END)), None) is not None
