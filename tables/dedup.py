"""Which joined pairs the batch view has already written, by model and prediction_id. Pure.

A replay of the join can put a pair on `joined` twice; the batch view keeps each pair once.
An id is remembered for a retention period of event time (its outcome's timestamp onwards),
with one expiry-index entry each, so forgetting costs work in proportion to what is forgotten.
"""

from __future__ import annotations

from tables import keys
from tables.join import State


def first_sighting(
    state: State, model_id: str, prediction_id: str, event_time: int, retention_ms: int
) -> bool:
    key = keys.seen(model_id, prediction_id)
    if state.get(key) is not None:
        return False
    deadline = event_time + retention_ms
    state.set(key, deadline)
    # absent: the pair was unseen, and its index entry goes and comes with its seen key
    state.put_absent(keys.expiry(deadline, key), 1)
    return True


def forget_expired(state: State, upto_ms: int) -> int:
    due = list(state.scan(keys.EXPIRY, keys.expiry_bound(upto_ms)))
    for index_key, _ in due:
        deadline, target = keys.split_expiry(index_key)
        state.delete(index_key)
        if state.get(target) == deadline:
            state.delete(target)
    return len(due)
