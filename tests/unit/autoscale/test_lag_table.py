"""`runway lag`'s table: one row per partition and the group's line."""

from __future__ import annotations

from rich.console import Console

from autoscale.cli import lag_table
from autoscale.lag import PartitionOffsets, RateWindow, group_lag

NOW_MS = 1_700_000_600_000


def test_rows_per_partition_and_the_group_line() -> None:
    offsets = [
        PartitionOffsets("predictions", 0, 40, 0, 1040),
        PartitionOffsets("predictions", 1, None, 0, 0),
    ]
    window = RateWindow(30.0)
    window.add(0.0, [PartitionOffsets("predictions", 0, 0, 0, 1000), offsets[1]])
    window.add(4.0, offsets)
    lag = group_lag(
        "ground_truth_join", offsets, {("predictions", 0): NOW_MS - 61_000}, NOW_MS, window
    )
    console = Console(record=True, width=160)
    console.print(lag_table(lag))
    lines = [
        " ".join(line.replace("│", " ").split()) for line in console.export_text().splitlines()
    ]
    # 40 records in 4 s = 10/s; 1,000 behind -> 100 s to drain
    assert "predictions 0 40 1,040 1,000 61.0s 10.0/s 100.0s" in lines
    assert "predictions 1 - 0 0 0.0s 0.0/s 0.0s" in lines
    assert "group 1,000 61.0s 10.0/s 100.0s" in lines
