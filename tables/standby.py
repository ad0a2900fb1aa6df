"""A standby replica's changelog records written to its local RocksDB, one WriteBatch a fetch.

Why: Faust applies a standby's changelog record by record through its consumer's message path,
its changelog queue and its recovery loop (an asyncio task per record): about 8,000 records per
CPU-second, several times the join's own CPU per event, so a busy worker could not carry a
standby (docs/capacity.md, "Standby replicas"). RocksDB itself takes a fetch's records in one
WriteBatch for a small fraction of that (it was under 1 % of the standby's profile). The batch
carries Faust's persisted changelog offset, as a checkpoint's local write does
(`tables.checkpoint`), so a standby that is promoted, or restarted, reads the changelog on from
exactly where this left it, and a crash between two batches loses nothing that a replay of the
changelog does not bring back.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rocksdict import WriteBatch

from tables.checkpoint import FAUST_OFFSET_KEY

Record = tuple[int, bytes | None, bytes | None]  # offset, key, value (None: a tombstone)


def apply_changelog(db: Any, records: Iterable[Record], after: int | None) -> int | None:
    """Write the records above offset `after` (all of them for None) to `db` as one batch.

    Returns the last offset written, or None when nothing was newer (and nothing is written:
    a fetch the standby has already seen, as after a seek back). A record without a key cannot
    be a state change (the checkpoint writes none) and is passed over, like an older offset.
    """
    batch = WriteBatch(raw_mode=True)
    last: int | None = None
    for offset, key, value in records:
        if (after is not None and offset <= after) or key is None:
            continue
        if value is None:
            batch.delete(key)
        else:
            batch.put(key, value)
        last = offset
    if last is None:
        return None
    batch.put(FAUST_OFFSET_KEY, str(last).encode())
    db.write(batch)
    return last
