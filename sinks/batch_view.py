"""The batch view: joined pairs as Parquet, hive-partitioned by date and model_id.

    {RUNWAY_BATCH_VIEW_URI}/date=YYYY-MM-DD/model_id={model}/part-{partition:05d}-{offset:020d}.parquet

`date` is the UTC date of the prediction's `timestamp`; `date` and `model_id` live in the path
(hive style), the other columns of the joined record in the file, with `features` as JSON text.
A file is named by the `joined` partition and the *first* offset its rows came from, so a replay
from that offset overwrites the same objects. Before its files, a flush records its offset range
in `_flushes/part-{partition:05d}.json` (ignored by dataset readers): a replay of an interrupted
flush cuts at the same offset, so it rewrites exactly the same files. Local files are
written to a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import uuid
from collections.abc import Iterable
from typing import Annotated, Any
from urllib.parse import urlparse

import msgspec
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs

from contracts.ids import check_id, escape_id, plain_id, plain_repeated_id
from contracts.schemas import MAX_EPOCH_MS

SCHEMA = pa.schema(
    [
        ("schema_version", pa.int32()),
        ("prediction_id", pa.string()),
        ("model_version", pa.string()),
        ("timestamp", pa.int64()),
        ("task", pa.string()),
        ("score", pa.float64()),
        ("features", pa.string()),
        ("label", pa.float64()),
        ("outcome_timestamp", pa.int64()),
        ("label_delay_ms", pa.int64()),
    ]
)


DAY_MS = 86_400_000
_INT64 = 2**63
_EXACT = 2**53
_NULL = msgspec.Raw(b"null")
_INT_TS = Annotated[int, msgspec.Meta(ge=0, lt=MAX_EPOCH_MS)]


class JoinedRow(msgspec.Struct):
    """One joined event as the batch view keeps it until its flush.

    msgspec decodes a `joined` record into these and checks their types in one pass, where
    orjson's dicts and per-field checks in Python cost several times as much; `features` stays
    the JSON text it came as (the join writes it compact, as orjson would again), never
    decoded. Fields beyond the Parquet columns are dropped here, as the files drop them."""

    prediction_id: str
    model_id: str
    model_version: str
    timestamp: _INT_TS
    task: str
    score: int | float
    label: int | float
    outcome_timestamp: _INT_TS
    label_delay_ms: Annotated[int, msgspec.Meta(ge=-_INT64, le=_INT64 - 1)]
    schema_version: Annotated[int, msgspec.Meta(ge=1, lt=2**31)] = 1
    features: msgspec.Raw = _NULL

    @classmethod
    def of(cls, row: dict[str, Any]) -> JoinedRow:
        """A row that `row_problem` accepted, as the fast path would have decoded it."""
        version, features = row.get("schema_version"), row.get("features")
        return cls(
            prediction_id=row["prediction_id"],
            model_id=row["model_id"],
            model_version=row["model_version"],
            timestamp=row["timestamp"],
            task=row["task"],
            score=row["score"],
            label=row["label"],
            outcome_timestamp=row["outcome_timestamp"],
            label_delay_ms=row["label_delay_ms"],
            schema_version=1 if version is None else version,
            features=_NULL if features is None else msgspec.Raw(orjson.dumps(features)),
        )


_RECORD = msgspec.json.Decoder(list[JoinedRow])


def _plain_features(raw: msgspec.Raw) -> bool:
    """An object or null whose text is valid UTF-8 and holds no escape: msgspec passes a raw
    value through unchecked, and orjson refuses what it would refuse (a lone surrogate)."""
    text = bytes(raw)
    if not (text[:1] == b"{" or text == b"null") or b"\\u" in text:
        return False
    if text.isascii():
        return True
    try:
        text.decode()
    except UnicodeDecodeError:
        return False
    return True


def decode_rows(value: bytes) -> list[JoinedRow] | None:
    """The rows of a `joined` record (a JSON array of events) when every one of them is
    plainly writable; None otherwise, and `row_problem` over the record's dicts decides and
    words why (or accepts what this declines: a single object, a null `schema_version`).

    Accepts only what `row_problem` accepts: msgspec holds the types and ranges (no bool for
    a number, no float for an integer, integers as written), and the rest is checked here."""
    try:
        rows = _RECORD.decode(value)
    except msgspec.MsgspecError:
        return None
    for row in rows:
        score, label = row.score, row.label
        if not (
            (score.__class__ is float or -_EXACT <= score <= _EXACT)
            and (label.__class__ is float or -_EXACT <= label <= _EXACT)
            and _plain_features(row.features)
            and plain_id(row.prediction_id)
            and plain_repeated_id(row.model_id)
            and plain_repeated_id(row.model_version)
        ):
            return None
    return rows


def utc_date(timestamp_ms: int) -> str:
    return _day(timestamp_ms // DAY_MS)


@functools.lru_cache(maxsize=4096)
def _day(days: int) -> str:
    # Cached by day: every row of a flush asks, and they share a handful of days.
    return (dt.date(1970, 1, 1) + dt.timedelta(days=days)).isoformat()


def open_filesystem(
    uri: str,
    endpoint_url: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    region: str = "us-east-1",
) -> tuple[fs.FileSystem, str]:
    """(filesystem, root path) for a local directory or an s3://bucket/prefix URI."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        options: dict[str, Any] = {"region": region}
        if endpoint_url:
            endpoint = urlparse(endpoint_url)
            options.update(endpoint_override=endpoint.netloc, scheme=endpoint.scheme or "http")
        if access_key:
            options.update(access_key=access_key, secret_key=secret_key)
        return fs.S3FileSystem(**options), f"{parsed.netloc}{parsed.path}".rstrip("/")
    root = os.path.abspath(uri)
    os.makedirs(root, exist_ok=True)
    return fs.LocalFileSystem(), root


class ParquetWriter:
    """Writes one flush (rows of one `joined` partition) as one file per date and model."""

    def __init__(self, filesystem: fs.FileSystem, root: str) -> None:
        self._fs = filesystem
        self._root = root
        self._local = isinstance(filesystem, fs.LocalFileSystem)

    def read_intent(self, partition: int) -> tuple[int, int] | None:
        """The offset range of the partition's last flush, as recorded before its files."""
        try:
            with self._fs.open_input_stream(self._intent_path(partition)) as handle:
                intent = orjson.loads(handle.read())
        except (FileNotFoundError, OSError):
            return None
        return int(intent["first"]), int(intent["last"])

    def write(
        self,
        partition: int,
        first_offset: int,
        last_offset: int,
        rows: Iterable[JoinedRow | dict[str, Any]],
    ) -> int:
        """Record the flush's offset range, then write its files. Returns files written.

        `rows`: as the batch view keeps them, or dicts that `row_problem` accepts."""
        intent = orjson.dumps({"first": first_offset, "last": last_offset})
        self._write_bytes(self._intent_path(partition), intent)
        groups: dict[tuple[str, str], list[JoinedRow]] = {}
        for row in rows:
            kept = row if isinstance(row, JoinedRow) else JoinedRow.of(row)
            groups.setdefault((utc_date(kept.timestamp), kept.model_id), []).append(kept)
        name = f"part-{partition:05d}-{first_offset:020d}.parquet"
        for (date, model_id), group in groups.items():
            directory = f"{self._root}/date={date}/model_id={escape_id(model_id)}"
            self._write_table(directory, name, _table(group))
        return len(groups)

    def _intent_path(self, partition: int) -> str:
        # A leading underscore keeps it out of the dataset (pyarrow and DuckDB skip such names).
        return f"{self._root}/_flushes/part-{partition:05d}.json"

    def _write_bytes(self, path: str, data: bytes) -> None:
        if self._local:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{uuid.uuid4().hex}.tmp"
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
            return
        with self._fs.open_output_stream(path) as handle:
            handle.write(data)

    def _write_table(self, directory: str, name: str, table: pa.Table) -> None:
        if not self._local:
            pq.write_table(table, f"{directory}/{name}", filesystem=self._fs)
            return
        os.makedirs(directory, exist_ok=True)
        tmp = f"{directory}/.{name}.{uuid.uuid4().hex}.tmp"
        pq.write_table(table, tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, f"{directory}/{name}")
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _table(rows: list[JoinedRow]) -> pa.Table:
    # Column by column, one comprehension each: this runs in an executor thread but holds the
    # GIL, and the event loop (the join, the speed view) waits while it does. The features'
    # texts go in as bytes and become strings in Arrow (msgspec checked they are UTF-8).
    features = [None if (text := bytes(row.features)) == b"null" else text for row in rows]
    columns: dict[str, Any] = {
        "schema_version": [row.schema_version for row in rows],
        "prediction_id": [row.prediction_id for row in rows],
        "model_version": [row.model_version for row in rows],
        "timestamp": [row.timestamp for row in rows],
        "task": [row.task for row in rows],
        "score": [row.score for row in rows],
        "features": pa.array(features, pa.binary()).cast(pa.string()),
        "label": [row.label for row in rows],
        "outcome_timestamp": [row.outcome_timestamp for row in rows],
        "label_delay_ms": [row.label_delay_ms for row in rows],
    }
    return pa.table(columns, schema=SCHEMA)


def _number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, int):
        return abs(value) <= _EXACT  # float64 columns: an integer must be exact
    return value == value and value not in (float("inf"), float("-inf"))


def _integer(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value < high


def _id(value: Any) -> bool:
    return isinstance(value, str) and check_id(value) is None


_CHECKS: dict[str, Any] = {
    "prediction_id": _id,
    "model_id": _id,
    "model_version": _id,
    "timestamp": lambda v: _integer(v, 0, MAX_EPOCH_MS),
    "task": lambda v: isinstance(v, str),
    "score": _number,
    "label": _number,
    "outcome_timestamp": lambda v: _integer(v, 0, MAX_EPOCH_MS),
    "label_delay_ms": lambda v: _integer(v, -_INT64, _INT64),
}


def _plain_number(value: Any) -> bool:
    # `value - value == 0` holds for a finite float only (inf and NaN give NaN)
    kind = value.__class__
    return (kind is float and value - value == 0.0) or (kind is int and -_EXACT <= value <= _EXACT)


def _plainly_writable(row: Any) -> bool:
    """The common row, checked with plain type tests (the batch view's fast path: the checks
    below cost a fifth of its CPU). True only where `row_problem` finds nothing; a row it
    declines may still be writable, and `row_problem` decides and words why not."""
    if row.__class__ is not dict:
        return False
    get = row.get
    timestamp, outcome_ts, delay = get("timestamp"), get("outcome_timestamp"), get("label_delay_ms")
    version, features = get("schema_version"), get("features")
    model, model_version = get("model_id"), get("model_version")
    return (
        timestamp.__class__ is int
        and 0 <= timestamp < MAX_EPOCH_MS
        and outcome_ts.__class__ is int
        and 0 <= outcome_ts < MAX_EPOCH_MS
        and delay.__class__ is int
        and -_INT64 <= delay < _INT64
        and get("task").__class__ is str
        and _plain_number(get("score"))
        and _plain_number(get("label"))
        and (version is None or (version.__class__ is int and 1 <= version < 2**31))
        and (features is None or features.__class__ is dict)
        and plain_id(get("prediction_id"))
        and plain_repeated_id(model)
        and plain_repeated_id(model_version)
    )


def row_problem(row: Any) -> str | None:
    """Why a joined event cannot be a Parquet row (None: it can). Cheap, unlike a schema
    validation: the rows come from the join, which validated their events at the door; this
    catches whatever else a producer may have written to `joined`."""
    return None if _plainly_writable(row) else _worded_problem(row)


def _worded_problem(row: Any) -> str | None:
    if not isinstance(row, dict):
        return "a joined event is not a JSON object"
    for name, ok in _CHECKS.items():
        if not ok(row.get(name)):
            return f"joined event field {name!r} is missing or not valid: {row.get(name)!r:.80}"
    version = row.get("schema_version")
    if version is not None and not _integer(version, 1, 2**31):
        return f"schema_version {version!r:.40} does not fit an int32"
    features = row.get("features")
    if features is not None and not isinstance(features, dict):
        return "features is not an object"
    return None
