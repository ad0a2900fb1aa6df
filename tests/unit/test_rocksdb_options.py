"""The state tables' RocksDB options are the ones the settings name (Faust reads them from each
table, not from the app: given to the app, they went unapplied, and every partition DB ran with
64 MiB x 3 memtables and a 2 GiB block cache)."""

from __future__ import annotations

from pathlib import Path

from config.settings import Settings
from streams.app import create_app
from streams.worker import _state_table


def test_each_state_table_opens_its_dbs_with_the_settings_options(tmp_path: Path) -> None:
    settings = Settings(
        datadir=tmp_path,
        rocksdb_write_buffer_bytes=3 * 1_048_576,
        rocksdb_block_cache_bytes=5 * 1_048_576,
    )
    app = create_app(settings)
    for name in ("join", "batch_view"):
        options = _state_table(app, name, settings).data.rocksdb_options
        assert options.write_buffer_size == 3 * 1_048_576
        assert options.block_cache_size == 5 * 1_048_576
        assert options.max_write_buffer_number == 2
        assert options.bloom_filter_size == 10
