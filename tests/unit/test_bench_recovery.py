"""`runway bench-recovery` reads Faust's recovery from a worker's log: the window, the two
lines that time it, and the changelog offsets its tables name."""

from __future__ import annotations

from datetime import datetime

from tools.bench_recovery import log_time, owned_partitions, parse_restore

LOG = """\
[2026-11-30 08:00:00,000] [7] [INFO]: [^---Recovery]: Highwater for active changelog partitions:
+Highwater - Active-----+-----------+-----------+
| topic                 | partition | highwater |
+-----------------------+-----------+-----------+
| app-join-changelog    | 0         | 99        |
+-----------------------+-----------+-----------+
[2026-11-30 08:00:00,100] [7] [INFO]: [^---Recovery]: active offsets at start of reading:
+Reading Starts At - Active-------+-----------+
| topic                 | partition | offset  |
+-----------------------+-----------+---------+
| app-join-changelog    | 0         | 89      |
+-----------------------+-----------+---------+
[2026-11-30 08:00:01,000] [7] [INFO]: join: owns partitions [0] after recovery
[2026-11-30 09:00:00,000] [7] [INFO]: [^---Recovery]: Highwater for active changelog partitions:
+Highwater - Active-----+-----------+-----------+
| topic                 | partition | highwater |
+-----------------------+-----------+-----------+
| app-join-changelog    | 1         | 1499      |
| 〃                    | 2         | 9         |
| 〃                    | 3         | 4         |
| app-batch_view-changelog | 1      | 499       |
+-----------------------+-----------+-----------+
[2026-11-30 09:00:00,250] [7] [INFO]: [^---Recovery]: active offsets at start of reading:
+Reading Starts At - Active-------+-----------+
| topic                 | partition | offset  |
+-----------------------+-----------+---------+
| app-join-changelog    | 1         | -1      |
| 〃                    | 2         | 9       |
| 〃                    | 3         | 2       |
| app-batch_view-changelog | 1      | -1      |
+-----------------------+-----------+---------+
[2026-11-30 09:00:00,500] [7] [INFO]: [^---Recovery]: Restoring state from changelog topics...
[2026-11-30 09:00:04,750] [7] [INFO]: [^---Recovery]: Done reading from changelog topics
[2026-11-30 09:00:04,800] [7] [INFO]: join: owns partitions [1, 2, 3] after recovery
"""


def at(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def test_a_stamp_is_read_as_local_time_with_milliseconds() -> None:
    assert log_time("[2026-11-30 09:00:04,750] [7] [INFO]: x") == at("2026-11-30 09:00:04,750")
    assert log_time("| app-join-changelog | 1 | -1 |") is None


def test_only_the_window_counts_and_each_range_is_first_to_end() -> None:
    restore = parse_restore(LOG.splitlines(), since=at("2026-11-30 08:30:00,000"))
    # highwater h logged as h - 1 and "starts at" as the last offset held: [start + 1, h)
    assert restore.ranges == {
        ("app-join-changelog", 1): (0, 1500),
        ("app-join-changelog", 3): (3, 5),  # partition 2 is current: nothing to read
        ("app-batch_view-changelog", 1): (0, 500),
    }
    assert restore.offsets == 1500 + 2 + 500
    assert restore.seconds == 4.25


def test_a_window_without_a_restore_took_no_time() -> None:
    lines = LOG.splitlines()[:12]  # the first recovery, which logged no "Restoring" line
    restore = parse_restore(lines, since=at("2026-11-30 07:00:00,000"))
    assert restore.ranges == {("app-join-changelog", 0): (90, 100)}
    assert restore.seconds == 0.0


def test_the_join_names_what_it_owns_after_its_latest_recovery() -> None:
    assert owned_partitions(LOG.splitlines()) == [1, 2, 3]
    assert owned_partitions(["nothing here"]) is None
    assert owned_partitions(["[t] [1] [INFO]: join: owns partitions [] after recovery"]) == []
