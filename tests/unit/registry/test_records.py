import json
import math
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from registry.records import MAX_MS, DependencyIn, Model, ModelIn, Version, VersionIn


def refused(cls: type[BaseModel], body: dict[str, Any]) -> list[tuple[str | int, ...]]:
    """Where validation failed (the `loc`s the API's 422 names)."""
    with pytest.raises(ValidationError) as err:
        cls.model_validate(body)
    return [e["loc"] for e in err.value.errors()]


V = {"version": "v1", "task": "binary"}


@pytest.mark.parametrize(
    "raw", ['{"auc": NaN}', '{"auc": Infinity}', '{"auc": -Infinity}', '{"auc": 1e999}']
)
def test_non_finite_metrics_are_refused(raw: str) -> None:
    metrics = json.loads(raw)  # what FastAPI's JSON parser makes of them
    assert refused(VersionIn, {**V, "baseline_metrics": metrics}) == [("baseline_metrics", "auc")]


@pytest.mark.parametrize("value", [False, True, "0.9", None, [], {}])
def test_a_metric_is_a_json_number(value: object) -> None:
    assert refused(VersionIn, {**V, "baseline_metrics": {"auc": value}}) == [
        ("baseline_metrics", "auc")
    ]


def test_metric_names() -> None:
    for name in ("", "a\x00", "tab\tbed", "x" * 201):
        assert refused(VersionIn, {**V, "baseline_metrics": {name: 1.0}})
    ok = VersionIn.model_validate({**V, "baseline_metrics": {"log loss (é)": 1, "auc": 0.5}})
    assert ok.baseline_metrics == {"log loss (é)": 1.0, "auc": 0.5}


def test_integers_as_json_schema_has_them() -> None:
    v = VersionIn.model_validate({**V, "trained_at": 1064.0, "max_age_ms": 5.0})
    assert (v.trained_at, v.max_age_ms) == (1064, 5)
    for field, value in [
        ("trained_at", True), ("trained_at", "5"), ("trained_at", 1.5), ("trained_at", -1),
        ("deployed_at", MAX_MS + 1), ("max_age_ms", 0), ("max_age_ms", MAX_MS + 1),
    ]:  # fmt: skip
        assert refused(VersionIn, {**V, field: value}) == [(field,)], (field, value)
    assert VersionIn.model_validate({**V, "deployed_at": MAX_MS}).deployed_at == MAX_MS


def test_ids_follow_the_id_grammar() -> None:
    assert ModelIn.model_validate({"model_id": "team/fraud:v2 é"}).model_id == "team/fraud:v2 é"
    for bad in ["", "a\x00b", "a\nb", "\x85", "x" * 241, "😀" * 61, "__HIVE_DEFAULT_PARTITION__"]:
        assert refused(ModelIn, {"model_id": bad}) == [("model_id",)], bad
        assert refused(DependencyIn, {"upstream": bad, "downstream": "b"}) == [("upstream",)]
        assert refused(VersionIn, {**V, "version": bad}) == [("version",)]
    assert ModelIn.model_validate({"model_id": "😀" * 60}).model_id == "😀" * 60  # 240 bytes


def test_free_text_refuses_nul_and_lone_surrogates() -> None:
    assert refused(ModelIn, {"model_id": "a", "description": "x\x00y"}) == [("description",)]
    assert refused(ModelIn, {"model_id": "a", "owner": "\ud800"}) == [("owner",)]
    assert refused(ModelIn, {"model_id": "a", "description": "d" * 10_001}) == [("description",)]
    text = ModelIn.model_validate({"model_id": "a", "description": "two\nlines\t"})
    assert text.description == "two\nlines\t"


def test_unknown_fields_and_wrong_types_are_refused() -> None:
    assert refused(ModelIn, {"model_id": "a", "colour": "red"}) == [("colour",)]
    assert refused(ModelIn, {"model_id": 7}) == [("model_id",)]
    assert refused(DependencyIn, {"upstream": "a", "downstream": "b", "kind": "user"}) == [
        ("kind",)
    ]


def test_rows_written_under_older_rules_still_read() -> None:
    old = Model.model_validate(
        {"model_id": "bad\x01id", "task": None, "owner": None, "description": None,
         "created_at": 1, "updated_at": 2}
    )  # fmt: skip
    assert old.model_id == "bad\x01id"
    version = Version.model_validate(
        {"model_id": "m", "version": "v", "task": "binary", "trained_at": None,
         "deployed_at": None, "baseline_metrics": {"auc": math.nan, "f1": math.inf, "acc": 0.9},
         "max_age_ms": 5, "created_at": 1}
    )  # fmt: skip
    assert version.baseline_metrics == {"acc": 0.9}  # JSON has no NaN; the scorer cannot use it
