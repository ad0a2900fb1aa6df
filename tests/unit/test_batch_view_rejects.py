"""The batch view never stops on a `joined` record it cannot write: the record goes to dead
letters (before its offset is committed) and the records around it are written as usual.

The real `BatchViewProcessor` over the fake runtime of `tests.unit.faultkit`, a real rocksdict
seen-ids table and a real Parquet writer on a temporary directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pyarrow.dataset as ds
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.batch_view import BatchViewProcessor
from agents.continuity import Continuity
from agents.ownership import Ownership
from contracts.telemetry import Telemetry
from sinks.batch_view import (
    JoinedRow,
    ParquetWriter,
    _plainly_writable,
    _worded_problem,
    decode_rows,
    open_filesystem,
    row_problem,
)
from tables.checkpoint import CheckpointStore
from tests.unit.faultkit import Disk, FakeGroup, FakeKafka, Faults, Inputs

T0 = 1_700_000_000_000
WEEK = 7 * 24 * 3_600_000


def joined(pid: str, **changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "prediction_id": pid,
        "model_id": "m",
        "model_version": "v1",
        "timestamp": T0,
        "task": "binary",
        "score": 0.25,
        "label": 1,
        "outcome_timestamp": T0 + 5,
        "label_delay_ms": 5,
    }
    event.update(changes)
    return event


def test_row_problem_names_what_a_parquet_row_cannot_hold() -> None:
    assert row_problem(joined("a")) is None
    assert row_problem(joined("a", schema_version=2, features={"x": 1})) is None
    bad = {
        "label": 2**60,  # not exact as a float64
        "score": "0.5",
        "timestamp": -1,
        "label_delay_ms": 2**64,
        "model_id": "a\x00b",
        "prediction_id": None,
    }
    for field, value in bad.items():
        problem = row_problem(joined("a", **{field: value}))
        assert problem is not None and field in problem, field
    assert "schema_version" in (row_problem(joined("a", schema_version=2**40)) or "")
    assert row_problem([1, 2]) == "a joined event is not a JSON object"


_ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 10**14 - 1, 10**14, 2**53, 2**53 + 1, -(2**63), 2**63, 2**31, -1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=70),
    st.sampled_from(["", "__HIVE_DEFAULT_PARTITION__", "a\x00b", "x" * 60, "x" * 61, "\u0085"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
_FIELDS = [*joined("a"), "schema_version", "features"]


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.dictionaries(st.sampled_from(_FIELDS), _ODD_VALUES, max_size=4),
    st.sets(st.sampled_from(_FIELDS), max_size=2),
)
def test_the_fast_path_passes_only_rows_the_full_checks_pass(
    changes: dict[str, Any], dropped: set[str]
) -> None:
    row = {k: v for k, v in joined("a", **changes).items() if k not in dropped}
    if _plainly_writable(row):
        assert _worded_problem(row) is None, row
    assert (row_problem(row) is None) == (_worded_problem(row) is None)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.lists(
        st.tuples(
            st.dictionaries(st.sampled_from(_FIELDS), _ODD_VALUES, max_size=3),
            st.sets(st.sampled_from(_FIELDS), max_size=1),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_decoded_rows_are_only_rows_the_full_checks_pass_and_equal_them(
    variations: list[tuple[dict[str, Any], set[str]]],
) -> None:
    """The batch view's one-pass decoder takes a record only where every row passes
    `row_problem`, and then gives the same row the dict path would keep."""
    events = [
        {k: v for k, v in joined(f"p{i}", **changes).items() if k not in dropped}
        for i, (changes, dropped) in enumerate(variations)
    ]
    try:
        value = orjson.dumps(events)
    except orjson.JSONEncodeError:
        return  # not JSON at all (an integer beyond 64 bits): never on `joined` either
    rows = decode_rows(value)
    if rows is None:
        return
    parsed = orjson.loads(value)
    assert all(row_problem(event) is None for event in parsed), parsed
    assert rows == [JoinedRow.of(event) for event in parsed]


def test_decoded_rows_keep_the_join_s_features_text_and_decline_what_orjson_refuses() -> None:
    event = joined("a", features={"city": "Zürich", "n": 1.5e-7})
    (row,) = decode_rows(orjson.dumps([event])) or []
    assert bytes(row.features) == orjson.dumps(event["features"])
    plain = decode_rows(orjson.dumps([joined("a")]))
    assert plain is not None and bytes(plain[0].features) == b"null"
    for features in (b'"text"', b"[1]", b'{"a":"\\ud800"}', b'{"a":"\xff"}'):
        value = orjson.dumps([joined("a")])[:-2] + b',"features":' + features + b"}]"
        assert decode_rows(value) is None, features
    assert decode_rows(orjson.dumps(joined("a"))) is None  # one object, not an array
    assert decode_rows(orjson.dumps([joined("a", schema_version=None)])) is None


def test_the_fast_path_takes_the_join_s_rows() -> None:
    assert _plainly_writable(joined("a"))
    assert _plainly_writable(joined("a", schema_version=1, features={"x": 1}, label=0.0))
    assert not _plainly_writable(joined("a", label=float("nan")))
    assert not _plainly_writable(joined("a", model_id=["m"]))  # unhashable: no cache lookup


async def test_unwritable_joined_records_become_dead_letters_and_the_rest_is_written(
    tmp_path: Path,
) -> None:
    faults = Faults()
    kafka = FakeKafka(faults, partitions=1)
    inputs = Inputs()
    group = FakeGroup(faults)
    filesystem, root = open_filesystem(str(tmp_path / "view"), None, None, None, "us-east-1")
    view = BatchViewProcessor(
        store=CheckpointStore(
            changelog_topic="seen-changelog",
            db_for=Disk(tmp_path / "state", faults).db_for,
            producer=kafka.producer,
            commit=group.commit,
        ),
        writer=ParquetWriter(filesystem, root),
        topic="joined",
        max_rows=10_000,
        max_age_ms=10**12,
        retention_ms=WEEK,
        telemetry=Telemetry(),
        ownership=Ownership(),
        continuity=Continuity(inputs.read, inputs.earliest),
        wall_clock_ms=lambda: T0,
        producer=kafka.producer,
        dead_letter_topic="dead-letters",
        dead_letter_bytes=10_000,
    )
    await view.on_assigned({0})
    values = [
        orjson.dumps([joined("a"), joined("b")]),
        b"{not json",
        orjson.dumps([joined("c"), joined("d", label=2**60)]),  # one bad row: the record goes
        orjson.dumps(joined("e")),
    ]
    records = [inputs.append("joined", 0, b"m", value) for value in values]
    await view.process("joined", 0, records)
    await view.flush()
    await view.store.settle()  # the commit runs in the background

    letters = [orjson.loads(v) for _, v in kafka.values("dead-letters") if v is not None]
    assert [(d["source_offset"], d["reason"].split(":")[0]) for d in letters] == [
        (1, "failed to apply"),
        (2, "failed to apply"),
    ]
    assert "not JSON" in letters[0]["reason"] and "'label'" in letters[1]["reason"]
    table = ds.dataset(str(tmp_path / "view"), format="parquet", partitioning="hive").to_table()
    assert sorted(table.column("prediction_id").to_pylist()) == ["a", "b", "e"]
    assert group.committed[("joined", 0)] == 4  # every record's offset, after its dead letter
