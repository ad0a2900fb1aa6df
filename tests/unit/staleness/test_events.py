"""Staleness events: the contract's fields, the JSON schema, the emission policy."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pydantic
import pytest

from staleness.events import EmissionPolicy, StalenessEvent, json_schemas, to_event
from staleness.verdict import Verdict

CONTRACT = {
    "schema_version",
    "model_id",
    "model_version",
    "state",
    "score",
    "basis",
    "uncertainty",
    "reason",
    "event_time",
    "emitted_at",
    "metrics",
    "impacted",
}
ROOT = Path(__file__).resolve().parents[3]


def verdict() -> Verdict:
    return Verdict(
        "STALE", 0.8, ["drift", "age"], 0.45, "STALE: PSI 0.25.", 1_000, {"psi": 0.25}, True
    )


def test_event_has_exactly_the_contract_fields() -> None:
    event = to_event(verdict(), "m", "v1", 2_000, ["down-1", "down-2"])
    body = orjson.loads(event.model_dump_json())
    assert set(body) == CONTRACT
    assert body["event_time"] == 1_000 and body["emitted_at"] == 2_000
    assert body["impacted"] == ["down-1", "down-2"] and body["schema_version"] == 1
    assert StalenessEvent.model_validate_json(event.model_dump_json()) == event


@pytest.mark.parametrize(
    "bad", [{"state": "OLD"}, {"score": 1.5}, {"basis": ["vibes"]}, {"uncertainty": -0.1}]
)
def test_invalid_events_are_rejected(bad: dict[str, object]) -> None:
    body = orjson.loads(to_event(verdict(), "m", "v1", 2_000).model_dump_json())
    with pytest.raises(pydantic.ValidationError):
        StalenessEvent.model_validate({**body, **bad})


def test_published_schema_is_the_models() -> None:
    published = json.loads((ROOT / "docs/schemas/staleness.schema.json").read_text())
    assert published == json_schemas()["staleness"]
    assert set(published["properties"]) == CONTRACT


def test_emission_policy() -> None:
    p = EmissionPolicy(heartbeat_interval_ms=60_000)
    assert p.due("m", "v1", "FRESH", 0) == "first"
    assert p.due("m", "v1", "FRESH", 10) == "first"  # not recorded (send failed): still due
    p.record("m", "v1", "FRESH", 10)
    assert p.due("m", "v1", "FRESH", 60_009) is None
    assert p.due("m", "v1", "FRESH", 60_010) == "heartbeat"
    assert p.due("m", "v1", "STALE", 20) == "state_change"
    assert p.due("m", "v2", "FRESH", 20) == "version_change"
    assert p.due("other", "v1", "FRESH", 20) == "first"
    p.record("m", "v1", "STALE", 30)
    assert p.due("m", "v1", "STALE", 40) is None
    p.forget("m")
    assert p.due("m", "v1", "STALE", 40) == "first"
