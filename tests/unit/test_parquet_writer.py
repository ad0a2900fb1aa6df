"""ParquetWriter on the local filesystem: hive layout, file names, exact read-back, overwrites."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
from pyarrow import fs

from sinks.batch_view import ParquetWriter, open_filesystem, utc_date

NOV14_LATE = 1_700_006_399_999  # 2023-11-14T23:59:59.999Z
NOV15 = 1_700_006_400_000  # 2023-11-15T00:00:00.000Z


def joined(pid: str, model: str, ts: int, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "schema_version": 1,
        "prediction_id": pid,
        "model_id": model,
        "model_version": "v1",
        "timestamp": ts,
        "task": "binary",
        "score": 0.75,
        "features": {"age": 41, "city": "Oslo"},
        "label": 1,
        "outcome_timestamp": ts + 5_000,
        "label_delay_ms": 5_000,
    }
    row.update(changes)
    return row


def read_back(root: Path) -> list[dict[str, Any]]:
    partitioning = ds.partitioning(
        pa.schema([("date", pa.string()), ("model_id", pa.string())]), flavor="hive"
    )
    rows = ds.dataset(str(root), format="parquet", partitioning=partitioning).to_table().to_pylist()
    for row in rows:
        row["features"] = None if row["features"] is None else json.loads(row["features"])
    return sorted(rows, key=lambda r: r["prediction_id"])


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.parquet"))


def expected(row: dict[str, Any], date: str) -> dict[str, Any]:
    """A joined row as the dataset shows it: typed columns plus the hive keys."""
    return {
        "schema_version": row.get("schema_version", 1),
        "prediction_id": row["prediction_id"],
        "model_version": row["model_version"],
        "timestamp": row["timestamp"],
        "task": row["task"],
        "score": float(row["score"]),
        "features": row.get("features"),
        "label": float(row["label"]),
        "outcome_timestamp": row["outcome_timestamp"],
        "label_delay_ms": row["label_delay_ms"],
        "date": date,
        "model_id": row["model_id"],
    }


def test_utc_date_of_the_prediction_timestamp() -> None:
    assert utc_date(NOV14_LATE) == "2023-11-14"
    assert utc_date(NOV15) == "2023-11-15"
    assert utc_date(0) == "1970-01-01"


def test_rows_land_in_date_and_model_directories_and_read_back_exactly(tmp_path: Path) -> None:
    rows = [
        joined("a", "m1", NOV14_LATE),
        joined("b", "m1", NOV15, score=0.1, label=0, features=None),
        joined("c", "m2", NOV15 + 1, task="regression", score=-3.5, label=2.25, region="eu"),
        joined("d", "m1", NOV15 + 2),
    ]
    del rows[3]["schema_version"]  # absent: version 1
    writer = ParquetWriter(fs.LocalFileSystem(), str(tmp_path))
    assert writer.write(3, 42, 42 + 9, rows) == 3
    name = "part-00003-00000000000000000042.parquet"
    assert files(tmp_path) == [
        f"date=2023-11-14/model_id=m1/{name}",
        f"date=2023-11-15/model_id=m1/{name}",
        f"date=2023-11-15/model_id=m2/{name}",
    ]
    dates = ["2023-11-14", "2023-11-15", "2023-11-15", "2023-11-15"]
    assert read_back(tmp_path) == [expected(r, d) for r, d in zip(rows, dates, strict=True)]


def test_same_partition_and_first_offset_overwrites(tmp_path: Path) -> None:
    writer = ParquetWriter(fs.LocalFileSystem(), str(tmp_path))
    first = [joined("a", "m1", NOV15), joined("b", "m1", NOV15 + 1)]
    writer.write(0, 100, 100 + 9, first)
    writer.write(0, 100, 100 + 9, first)  # a replay of the same rows
    assert files(tmp_path) == [
        "date=2023-11-15/model_id=m1/part-00000-00000000000000000100.parquet"
    ]
    assert [r["prediction_id"] for r in read_back(tmp_path)] == ["a", "b"]
    # a replay whose cut falls later: the same object, now with three rows
    writer.write(0, 100, 100 + 9, [*first, joined("c", "m1", NOV15 + 2)])
    assert len(files(tmp_path)) == 1
    assert [r["prediction_id"] for r in read_back(tmp_path)] == ["a", "b", "c"]


def test_a_new_first_offset_or_partition_is_a_new_file(tmp_path: Path) -> None:
    writer = ParquetWriter(fs.LocalFileSystem(), str(tmp_path))
    writer.write(0, 100, 100 + 9, [joined("a", "m1", NOV15)])
    writer.write(0, 101, 101 + 9, [joined("b", "m1", NOV15)])
    writer.write(12, 100, 100 + 9, [joined("c", "m1", NOV15)])
    assert files(tmp_path) == [
        "date=2023-11-15/model_id=m1/part-00000-00000000000000000100.parquet",
        "date=2023-11-15/model_id=m1/part-00000-00000000000000000101.parquet",
        "date=2023-11-15/model_id=m1/part-00012-00000000000000000100.parquet",
    ]
    assert [r["prediction_id"] for r in read_back(tmp_path)] == ["a", "b", "c"]


def test_open_filesystem_for_a_local_directory_creates_it(tmp_path: Path) -> None:
    target = tmp_path / "views" / "batch"
    filesystem, root = open_filesystem(str(target))
    assert isinstance(filesystem, fs.LocalFileSystem)
    assert root == str(target)
    assert target.is_dir()
    ParquetWriter(filesystem, root).write(1, 0, 0, [joined("a", "m9", NOV15)])
    assert files(target) == ["date=2023-11-15/model_id=m9/part-00001-00000000000000000000.parquet"]


def test_a_flush_records_its_offset_range_outside_the_dataset(tmp_path: Path) -> None:
    writer = ParquetWriter(fs.LocalFileSystem(), str(tmp_path))
    assert writer.read_intent(2) is None
    writer.write(2, 500, 517, [joined("a", "m1", NOV15)])
    assert writer.read_intent(2) == (500, 517)
    assert writer.read_intent(3) is None
    dataset = ds.dataset(str(tmp_path), format="parquet", partitioning="hive")
    assert [row["prediction_id"] for row in dataset.to_table().to_pylist()] == ["a"]


HOSTILE_IDS = [
    "../x",
    "../../../../outside",
    "..",
    "a/date=1999-01-01",
    "a:version:v1",
    "%41",
    "A",
    "a=b",
    "NULL",
    "modèle 模型 🚀",
    "q?#*'\"[]{}^\\",
]


def test_hostile_model_ids_stay_under_the_root_and_read_back_as_themselves(
    tmp_path: Path,
) -> None:
    root = tmp_path / "view"
    rows = [joined(f"p{i}", model, NOV15 + i) for i, model in enumerate(HOSTILE_IDS)]
    assert ParquetWriter(fs.LocalFileSystem(), str(root)).write(0, 7, 7, rows) == len(HOSTILE_IDS)

    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all(p.resolve().is_relative_to(root.resolve()) for p in written)
    model_dirs = sorted(p.name for p in (root / "date=2023-11-15").iterdir())
    assert len(model_dirs) == len(HOSTILE_IDS)  # one directory per model, none shared
    assert "model_id=..%2Fx" in model_dirs and "model_id=a%3Aversion%3Av1" in model_dirs
    assert "model_id=%2541" in model_dirs and "model_id=A" in model_dirs

    expected_pairs = sorted((f"p{i}", model) for i, model in enumerate(HOSTILE_IDS))
    assert sorted((r["prediction_id"], r["model_id"]) for r in read_back(root)) == expected_pairs
    dataset = ds.dataset(str(root), format="parquet", partitioning="hive")
    default = dataset.to_table(columns=["prediction_id", "model_id"]).to_pylist()
    assert sorted((r["prediction_id"], r["model_id"]) for r in default) == expected_pairs

    found = duckdb.sql(
        f"SELECT prediction_id, model_id FROM read_parquet('{root}/**/*.parquet', "
        "hive_partitioning=true)"
    ).fetchall()
    assert sorted(found) == expected_pairs


def test_utc_date_is_the_utc_calendar_day_at_every_edge() -> None:
    import datetime as dt

    from sinks.batch_view import utc_date

    day = 86_400_000
    for ts in [0, day - 1, day, 1_764_460_799_999, 1_764_460_800_000, 10**14 - 1]:
        expected = dt.datetime.fromtimestamp(ts // 1000, tz=dt.UTC).date().isoformat()
        assert utc_date(ts) == expected, ts
