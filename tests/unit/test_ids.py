"""The id grammar and escaping (`contracts/ids.py`) and the names built from ids: state keys,
speed-view Redis keys, registry cache keys. Expected escapes are written out by hand from
Hive's `FileUtils.escapePathName` set, not computed by the code under test."""

from __future__ import annotations

import string
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from config.windows import parse_windows
from contracts.codec import Limits, decode_record
from contracts.ids import (
    MAX_ID_BYTES,
    Id,
    check_id,
    escape_id,
    plain_id,
    plain_repeated_id,
    unescape_id,
)
from contracts.schemas import Outcome, Prediction
from registry.cache import RegistryCache
from sinks.speed_view import model_view
from tables import keys

WINDOWS = parse_windows("1h,24h")
CLOCK = 1_700_000_000_000

# Hive's FileUtils.charToEscape, copied out as the escapes it produces.
HIVE = {chr(c): f"%{c:02X}" for c in range(0x20)} | {
    '"': "%22",
    "#": "%23",
    "%": "%25",
    "'": "%27",
    "*": "%2A",
    "/": "%2F",
    ":": "%3A",
    "=": "%3D",
    "?": "%3F",
    "\\": "%5C",
    "\x7f": "%7F",
    "{": "%7B",
    "[": "%5B",
    "]": "%5D",
    "^": "%5E",
}

any_text = st.text(max_size=40)  # any code point but lone surrogates, controls included
valid_ids = st.text(
    alphabet=st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=40
).filter(lambda s: check_id(s) is None)


# -- the escaping ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("model-000", "model-000"),
        ("v20240101T000000", "v20240101T000000"),
        ("../x", "..%2Fx"),
        ("a/date=1999-01-01", "a%2Fdate%3D1999-01-01"),
        ("a:version:v1", "a%3Aversion%3Av1"),
        ("%41", "%2541"),
        ("a=b", "a%3Db"),
        ("modèle 模型 🚀", "modèle 模型 🚀"),
        ("a b+c,d;e<f>g|h~!@$&()", "a b+c,d;e<f>g|h~!@$&()"),  # not in Hive's set: kept
        ("a\x00b\nc\x7f", "a%00b%0Ac%7F"),
        ("\x01all", "%01all"),
        ("\x85", "%C2%85"),  # a C1 control: its UTF-8 bytes
    ],
)
def test_escape_examples(raw: str, escaped: str) -> None:
    assert escape_id(raw) == escaped
    assert unescape_id(escaped) == raw


def test_escapes_exactly_hives_set_among_ascii() -> None:
    for code in range(0x80):
        char = chr(code)
        assert escape_id(char) == HIVE.get(char, char), repr(char)


@settings(max_examples=500)
@given(any_text)
def test_unescape_inverts_escape(raw: str) -> None:
    assert unescape_id(escape_id(raw)) == raw


@settings(max_examples=500)
@given(any_text, any_text)
def test_distinct_ids_escape_distinctly(a: str, b: str) -> None:
    if a != b:
        assert escape_id(a) != escape_id(b)


@settings(max_examples=500)
@given(any_text)
def test_an_escaped_id_is_one_safe_path_component(raw: str) -> None:
    escaped = escape_id(raw)
    assert "/" not in escaped and "\\" not in escaped
    assert all(ch not in HIVE or ch == "%" for ch in escaped)
    assert not any(0x80 <= ord(ch) <= 0x9F for ch in escaped)
    # every % leads an escape of two upper-case hex digits
    parts = escaped.split("%")
    assert all(len(p) >= 2 and set(p[:2]) <= set("0123456789ABCDEF") for p in parts[1:])
    component = f"model_id={escaped}"
    assert component not in (".", "..")


# -- the grammar ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "m",
        "model-000",
        "a:version:v1",
        "../x",
        "a/date=1999-01-01",
        "%41",
        "a=b",
        "modèle 模型 🚀",
        " spaced ",
        "NULL",
        "x" * MAX_ID_BYTES,
        ":" * (MAX_ID_BYTES // 3),  # 3 bytes each once escaped
        "é" * (MAX_ID_BYTES // 2),  # 2 bytes each in UTF-8
        "🚀" * (MAX_ID_BYTES // 4),
    ],
)
def test_accepted_ids(value: str) -> None:
    assert check_id(value) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "must not be empty"),
        (7, "must be a string"),
        ("a\x00b", "must not contain control characters (U+0000)"),
        ("a\nb", "must not contain control characters (U+000A)"),
        ("\x01all", "must not contain control characters (U+0001)"),
        ("a\x7f", "must not contain control characters (U+007F)"),
        ("a\x85", "must not contain control characters (U+0085)"),
        ("a\ud800", "must not contain control characters (U+D800)"),
        (
            "__HIVE_DEFAULT_PARTITION__",
            "__HIVE_DEFAULT_PARTITION__ is reserved (hive readers take it for a null partition)",
        ),
        ("x" * (MAX_ID_BYTES + 1), "is 241 bytes once escaped, more than 240"),
        (":" * (MAX_ID_BYTES // 3 + 1), "is 243 bytes once escaped, more than 240"),
        ("é" * (MAX_ID_BYTES // 2 + 1), "is 242 bytes once escaped, more than 240"),
        ("🚀" * (MAX_ID_BYTES // 4 + 1), "is 244 bytes once escaped, more than 240"),
    ],
)
def test_refused_ids_and_why(value: Any, reason: str) -> None:
    assert check_id(value) == reason


class _Body(BaseModel):
    id: Id


def test_the_pydantic_type_applies_the_grammar() -> None:
    assert _Body(id="a:version:v1").id == "a:version:v1"
    for bad in ["", "a\tb", "__HIVE_DEFAULT_PARTITION__", ":" * 81, "x" * 241]:
        with pytest.raises(ValidationError):
            _Body(id=bad)


@settings(max_examples=300)
@given(st.text(max_size=90))
def test_pydantic_type_agrees_with_check_id(value: str) -> None:
    try:
        _Body(id=value)
        accepted = True
    except ValidationError:
        accepted = False
    assert accepted == (check_id(value) is None)


LIMITS = Limits(max_events=10, max_bytes=100_000)


def test_the_decoder_refuses_what_the_grammar_refuses() -> None:
    def decode(**changes: Any) -> str | None:
        event = {
            "prediction_id": "p1",
            "model_id": "m",
            "model_version": "v1",
            "timestamp": CLOCK,
            "task": "binary",
            "score": 0.5,
        } | changes
        key = event["model_id"].encode("utf-8", "surrogatepass")
        good, bad = decode_record(Prediction, key, orjson.dumps(event), LIMITS)
        assert len(good) + len(bad) == 1
        return bad[0].reason if bad else None

    assert decode(model_id="a:version:v1") is None
    assert decode(model_id="modèle/../x", model_version="%41") is None
    assert decode(model_version="\x01all") == (
        "invalid prediction: model_version: String should match pattern "
        "'^[^\\x00-\\x1f\\x7f-\\x9f]+$'"
    )
    assert decode(model_id="a\x00b") == (
        "invalid prediction: model_id: String should match pattern '^[^\\x00-\\x1f\\x7f-\\x9f]+$'"
    )
    assert decode(prediction_id="x" * 241) == (
        "invalid prediction: prediction_id: String should have at most 240 characters"
    )
    assert decode(model_id="__HIVE_DEFAULT_PARTITION__") == (
        "invalid prediction: model_id: Value error, invalid id: __HIVE_DEFAULT_PARTITION__ "
        "is reserved (hive readers take it for a null partition)"
    )
    assert decode(model_id=":" * 81) == (
        "invalid prediction: model_id: Value error, invalid id: is 243 bytes once escaped, "
        "more than 240"
    )
    outcome = {"prediction_id": "p\x1f", "model_id": "m", "timestamp": CLOCK, "label": 1}
    good, bad = decode_record(Outcome, b"m", orjson.dumps(outcome), LIMITS)
    assert good == [] and len(bad) == 1 and "prediction_id" in bad[0].reason


# -- state keys -------------------------------------------------------------------------------

pairs = st.tuples(any_text, any_text)


@settings(max_examples=500)
@given(pairs, pairs)
def test_state_keys_of_distinct_pairs_never_collide(a: tuple[str, str], b: tuple[str, str]) -> None:
    if a != b:
        assert keys.bucket(*a, "m", CLOCK) != keys.bucket(*b, "m", CLOCK)
        assert keys.reference(*a) != keys.reference(*b)


@settings(max_examples=500)
@given(any_text, any_text)
def test_a_bucket_key_splits_back_into_its_ids(model: str, version: str) -> None:
    assert keys.split_bucket(keys.bucket(model, version, "h", CLOCK)) == (
        model,
        version,
        "h",
        CLOCK,
    )


@settings(max_examples=300)
@given(any_text, any_text)
def test_no_version_shares_the_all_versions_keys(model: str, version: str) -> None:
    if version != keys.ALL_VERSIONS:
        assert keys.bucket(model, version, "m", CLOCK) != keys.bucket(
            model, keys.ALL_VERSIONS, "m", CLOCK
        )
        assert keys.reference(model, version) != keys.reference(model, keys.ALL_VERSIONS)


def test_the_old_collisions_are_gone() -> None:
    # NUL inside ids: (a\0b, c) and (a, b\0c) had one key
    assert keys.bucket("a\x00b", "c", "m", CLOCK) != keys.bucket("a", "b\x00c", "m", CLOCK)
    assert keys.reference("a\x00b", "c") != keys.reference("a", "b\x00c")
    # the marker keeps its raw key; a version that looks like it escaped does not reach it,
    # and a version equal to the marker is refused by the grammar before it gets here
    marker = keys.bucket("m", keys.ALL_VERSIONS, "m", CLOCK)
    assert marker == b"bm\x00\x01all\x00m" + CLOCK.to_bytes(8)
    assert keys.bucket("m", "%01all", "m", CLOCK) == b"bm\x00%2501all\x00m" + CLOCK.to_bytes(8)
    assert check_id(keys.ALL_VERSIONS) is not None
    # plain ids keep today's keys
    assert keys.bucket("model-000", "v1", "h", 0) == b"bmodel-000\x00v1\x00h" + bytes(8)
    assert keys.reference("model-000", "v1") == b"rmodel-000\x00v1"


# -- speed-view Redis keys --------------------------------------------------------------------


def view_names(model: str, versions: list[str]) -> set[str]:
    def read(key: bytes) -> Any:
        if key == keys.model(model):
            return {"task": "binary", "clock": CLOCK, "versions": versions, "lp": CLOCK, "lo": None}
        return None

    return set(model_view(read, model, WINDOWS, "runway"))


def test_model_a_version_v1_and_model_a_colon_version_colon_v1_share_no_key() -> None:
    plain = view_names("a", ["v1"])
    hostile = view_names("a:version:v1", ["v0"])
    assert plain == {
        "runway:model:a",
        "runway:model:a:window:1h",
        "runway:model:a:window:24h",
        "runway:model:a:version:v1:window:1h",
        "runway:model:a:version:v1:window:24h",
    }
    assert hostile == {
        "runway:model:a%3Aversion%3Av1",
        "runway:model:a%3Aversion%3Av1:window:1h",
        "runway:model:a%3Aversion%3Av1:window:24h",
        "runway:model:a%3Aversion%3Av1:version:v0:window:1h",
        "runway:model:a%3Aversion%3Av1:version:v0:window:24h",
    }


@settings(max_examples=300)
@given(valid_ids, st.lists(valid_ids, min_size=1, max_size=3, unique=True))
def test_every_speed_view_key_parses_back_to_its_ids(model: str, versions: list[str]) -> None:
    names = view_names(model, versions)
    assert len(names) == 1 + len(WINDOWS) * (1 + len(versions))  # nothing shared
    seen_versions = set()
    for name in names:
        parts = name.split(":")
        assert parts[:2] == ["runway", "model"] and unescape_id(parts[2]) == model
        rest = parts[3:]
        if rest[:1] == ["version"]:
            seen_versions.add(unescape_id(rest[1]))
            rest = rest[2:]
        assert rest in ([], ["window", "1h"], ["window", "24h"])
    assert seen_versions == set(versions)


@settings(max_examples=300)
@given(valid_ids, valid_ids, valid_ids)
def test_speed_view_keys_of_distinct_models_never_collide(a: str, b: str, v: str) -> None:
    if a != b:
        assert not view_names(a, [v]) & view_names(b, [v])


def test_registry_cache_keys_escape_their_ids() -> None:
    cache = RegistryCache(None, "runway")  # type: ignore[arg-type]  # key() needs no Redis
    assert cache.key("impact", "model-000") == "runway:impact:model-000"
    assert cache.key("registry:model", "a:b/c") == "runway:registry:model:a%3Ab%2Fc"
    assert cache.key("registry:models") == "runway:registry:models"


def test_plain_ids_use_only_characters_the_escaping_keeps() -> None:
    plain = string.ascii_letters + string.digits + "-_."
    assert escape_id(plain) == plain


@given(st.one_of(st.text(max_size=80), st.integers(), st.none(), st.lists(st.text(), max_size=2)))
def test_a_remembered_plain_id_is_a_plain_id(value: Any) -> None:
    assert plain_repeated_id(value) == plain_id(value)
    assert plain_repeated_id(value) == plain_id(value)  # and again, from memory
