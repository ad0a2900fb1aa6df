"""README's "Reading the batch view as a table" block, run as written against the local S3.

The batch view's own writer (`sinks.batch_view.ParquetWriter`, what the batch-view agent
flushes with) writes joined pairs of three dates and two models under this test's prefix; the
block, with its `root` pointed there, must read exactly the filtered pairs and the per-model
figures computed here from the rows themselves.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from config.connections import s3_keys
from config.settings import Settings
from sinks.batch_view import ParquetWriter, open_filesystem

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"
DAY = 86_400_000
NOV29 = 1_795_910_400_000  # 2026-11-29 00:00:00 UTC


def readme_block() -> str:
    text = README.read_text()
    section = text.split("**Reading the batch view as a table.**", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found is not None
    return found.group(1)


def pair(i: int, model_id: str, day: int) -> dict[str, Any]:
    ts = NOV29 + day * DAY + i * 60_000
    return {
        "schema_version": 1,
        "prediction_id": f"{model_id}-{day}-{i}",
        "model_id": model_id,
        "model_version": "v1",
        "timestamp": ts,
        "task": "binary",
        "score": i / 10,
        "features": None,
        "label": i % 2,
        "outcome_timestamp": ts + 1_000 * (i + 1),
        "label_delay_ms": 1_000 * (i + 1),
    }


def test_the_readme_block_reads_the_batch_view_from_s3(settings: Settings) -> None:
    root = f"{settings.s3_bucket}/{settings.topic_prefix}batch-view"
    access_key, secret_key = s3_keys(settings)
    filesystem, path = open_filesystem(
        f"s3://{root}", settings.s3_endpoint_url, access_key, secret_key, settings.s3_region
    )
    rows = [
        pair(i, m, day) for m in ("model-000", "model-001") for day in (0, 1, 2) for i in range(5)
    ]
    try:
        writer = ParquetWriter(filesystem, path)
        assert writer.write(0, 0, len(rows) - 1, rows) == 6  # one file per (date, model)

        block = readme_block()
        assert block.count('root = "runway/batch-view"') == 1
        assert 'endpoint_override="127.0.0.1:9000"' in block  # the stack's, as the fixture's
        assert settings.s3_endpoint_url == "http://127.0.0.1:9000"
        namespace: dict[str, Any] = {}
        exec(block.replace('root = "runway/batch-view"', f"root = {root!r}"), namespace)  # noqa: S102

        # model-000 from 2026-11-30 on: days 1 and 2, five pairs each
        wanted = [r for r in rows if r["model_id"] == "model-000" and r["timestamp"] >= NOV29 + DAY]
        got = sorted(namespace["recent"].to_pylist(), key=lambda r: r["prediction_id"])
        assert got == [
            {
                "date": "2026-11-30" if r["timestamp"] < NOV29 + 2 * DAY else "2026-12-01",
                "prediction_id": r["prediction_id"],
                "score": r["score"],
                "label": float(r["label"]),
                "label_delay_ms": r["label_delay_ms"],
            }
            for r in sorted(wanted, key=lambda r: r["prediction_id"])
        ]
        # 15 pairs a model, labels 0 1 0 1 0 each day: 6 positives of 15
        assert namespace["per_model"] == [("model-000", 15, 6 / 15), ("model-001", 15, 6 / 15)]
    finally:
        filesystem.delete_dir(path)  # moto keeps objects in memory: leave none behind
