"""The state phase's measure: only pair and expiry-index keys count, compacted, every partition.

Real rocksdict DBs laid out as a worker's data directory. The counts are those written; the
bytes must not move when other prefixes are added beside the same pairs.
"""

from __future__ import annotations

from pathlib import Path

from rocksdict import Options, Rdict

from tables import keys
from tables.checkpoint import FAUST_OFFSET_KEY
from tools.bench_state import pair_state


def _options() -> Options:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    return options


def _worker_dir(root: Path, others: bool) -> Path:
    """Two partition DBs of 300 pairs each, with their index keys; `others` adds buckets (and
    their index keys), model records, references, the marker and Faust's offset key."""
    tables = root / "app-data" / "v1" / "tables"
    tables.mkdir(parents=True)
    for partition in (0, 1):
        db = Rdict(str(tables / f"join-{partition}.db"), _options())
        for i in range(300):
            pair = keys.pair(f"model-{partition}", f"run-{i}")
            db[pair] = b"P" + bytes(40) + i.to_bytes(4, "big")
            db[keys.expiry(1_700_000_000_000 + i, pair)] = b""
        if others:
            for minute in range(500):
                bucket = keys.bucket(f"model-{partition}", "v1", "m", minute * 60_000)
                db[bucket] = bytes(200)
                db[keys.expiry(1_700_000_000_000 + minute, bucket)] = b""  # the bucket's entry
            db[keys.model(f"model-{partition}")] = bytes(100)
            db[keys.reference(f"model-{partition}", "v1")] = bytes(1000)
            db[keys.MARKER] = b"{}"
            db[FAUST_OFFSET_KEY] = b"42"
        db.close()
    # Another table's DB beside it (the batch view's): never counted.
    seen = Rdict(str(tables / "batch_view-0.db"), _options())
    seen[keys.seen("model-0", "run-0")] = b""
    seen.close()
    return root


def test_only_pairs_and_their_index_keys_are_counted(tmp_path: Path) -> None:
    plain = pair_state(_worker_dir(tmp_path / "a", False), _options, tmp_path)
    mixed = pair_state(_worker_dir(tmp_path / "b", True), _options, tmp_path)
    assert (mixed.pair_keys, mixed.index_keys, mixed.partitions) == (600, 600, 2)
    assert mixed.sst_bytes == plain.sst_bytes
    # Per partition: pair keys 300 x 9 bytes ("p", "model-N", NUL) + 1,990 of "run-<i>";
    # values 300 x 45; index keys ("x" + 8-byte deadline + the pair key) 300 x 9 + 4,690.
    assert mixed.raw_bytes == plain.raw_bytes == 2 * (4_690 + 13_500 + 7_390)
    assert plain.sst_bytes > 0
    assert list(tmp_path.glob("join-*.db")) == []  # the compacted copies are removed
