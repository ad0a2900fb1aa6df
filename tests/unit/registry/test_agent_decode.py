import orjson

from registry.agent import decode_staleness

GOOD = {
    "schema_version": 1, "model_id": "m", "model_version": "v1", "state": "STALE", "score": 0.9,
    "basis": ["drift"], "uncertainty": 0.4, "reason": "r", "event_time": 1, "emitted_at": 2,
    "metrics": {"psi": 0.3}, "impacted": [], "future_field": True,
}  # fmt: skip


def test_one_event_and_unknown_fields_tolerated() -> None:
    good, bad = decode_staleness(orjson.dumps(GOOD))
    assert bad == [] and len(good) == 1
    assert good[0].event["model_id"] == "m" and "future_field" not in good[0].event
    assert (good[0].index, good[0].raw) == (None, orjson.dumps(GOOD))  # the record is the event


def test_each_event_of_a_batch_is_judged_alone() -> None:
    batch = [GOOD, {**GOOD, "state": "ROTTEN"}, {**GOOD, "emitted_at": 3}]
    good, bad = decode_staleness(orjson.dumps(batch))
    assert [g.event["emitted_at"] for g in good] == [2, 2 + 1]
    assert [(g.index, orjson.loads(g.raw)) for g in good] == [(0, batch[0]), (2, batch[2])]
    assert [(b.index, b.reason.split(":")[1].strip()) for b in bad] == [(1, "state")]


def test_not_json() -> None:
    good, bad = decode_staleness(b"{nope")
    assert good == [] and bad[0].index is None and bad[0].value == b"{nope"
    assert bad[0].reason.startswith("not JSON")
