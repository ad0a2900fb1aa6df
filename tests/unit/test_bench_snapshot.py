"""`runway bench-recovery`'s snapshot phase reads the worker's snapshot restores from its log."""

from __future__ import annotations

from datetime import datetime

from tools.bench_snapshot import parse_downloads

LOG = """\
[2026-11-30 08:00:00,000] [7] [INFO] state restore: join[0] restored from the snapshot of \
2026-11-30T07:59:00Z (5 files, 7788 bytes, changelog offset None) in 0.14 s (0.1 MB/s)
[2026-11-30 09:00:00,000] [7] [INFO] state restore: join[2] restored from the snapshot of \
2026-11-30T08:59:00Z (6 files, 48092 bytes, changelog offset 1072) in 0.10 s (0.5 MB/s)
[2026-11-30 09:00:01,500] [7] [INFO] state restore: join[3] has no snapshot young enough
[2026-11-30 09:00:02,000] [7] [INFO] state restore: batch_view[3] restored from the snapshot \
of 2026-11-30T08:59:00Z (6 files, 34876 bytes, changelog offset 1650) in 1.25 s (0.0 MB/s)
"""


def at(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").timestamp()


def test_the_restores_after_a_start_are_summed() -> None:
    found = parse_downloads(LOG.splitlines(), at("2026-11-30 09:00:00"))
    assert found.partitions == 2
    assert found.bytes == 48092 + 34876
    assert abs(found.seconds - 1.35) < 1e-9
    assert found.first_at == at("2026-11-30 09:00:00")
    assert found.last_at == at("2026-11-30 09:00:02")


def test_every_restore_counts_from_the_start() -> None:
    found = parse_downloads(LOG.splitlines(), at("2026-11-30 07:00:00"))
    assert (found.partitions, found.bytes) == (3, 7788 + 48092 + 34876)


def test_nothing_restored() -> None:
    assert parse_downloads([], 0.0).partitions == 0
