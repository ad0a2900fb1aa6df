"""`runway bench --peer quix` end to end on a small backlog: the Quix Streams peer's join is exact.

A 5,000-event backlog (records of 100, early outcomes and duplicates) is preloaded with the
bench's own `preload`; the peer runs through the bench's harness (`measure_peer`) in its own
virtualenv (made on first use, about 30 s). Its output topic must hold exactly one joined
record per outcome the generator sent (its `Truth`), with that outcome's label and time and its
prediction's fields; the harness's figures must be there and positive.
"""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from config.settings import Settings
from tests.integration.harness import read_topic
from tools.bench import preload
from tools.bench_peer import (
    delete_peer_topics,
    measure_peer,
    peer_figures,
    peer_output,
    peer_python,
)
from tools.traffic import TrafficSpec, Truth, generate

pytestmark = pytest.mark.integration


async def test_the_peer_joins_every_outcome_exactly_once(
    settings: Settings, tmp_path: Path
) -> None:
    spec = TrafficSpec(
        models=6,
        rate=None,
        events=5_000,
        batch_size=100,
        start_ms=1_700_000_000_000,
        label_delay_ms=2_000.0,
        unlabeled_share=0.1,
        early_share=0.05,
        duplicate_share=0.02,
        malformed_share=0.0,
        run_id="peer",
    )
    truth = Truth()
    for _ in generate(spec, random.Random(1), truth):  # what `preload` sends (same seed)
        pass
    assert truth.early and truth.duplicates
    python = peer_python()
    backlog = await preload(settings, spec)
    try:
        run = await measure_peer(python, backlog, tmp_path / "state", tmp_path / "peer.log", 120)
        records = await read_topic(settings, peer_output(settings))
    finally:
        await delete_peer_topics(settings)

    joined = [orjson.loads(value) for _, value in records]
    predictions = {p.prediction_id: p for p in truth.predictions}
    expected = sorted(
        (o.prediction_id, o.model_id, o.label, o.timestamp, predictions[o.prediction_id].timestamp)
        for o in truth.outcomes
    )
    got = sorted(
        (j["prediction_id"], j["model_id"], j["label"], j["outcome_timestamp"], j["timestamp"])
        for j in joined
    )
    assert got == expected
    assert all(key == j["model_id"].encode() for (key, _), j in zip(records, joined, strict=True))
    assert run["joined_records"] == len(truth.outcomes)

    figures = peer_figures(run, run, 1_000.0, 500.0, backlog.events)
    for key in ("peer_events_per_s", "peer_single_record_events_per_s", "peer_ratio",
                "peer_single_ratio", "peer_peak_rss_bytes", "peer_cpu_s"):  # fmt: skip
        assert figures[key] > 0, key
