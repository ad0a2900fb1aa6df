"""Key layout of the join's state table (one RocksDB per partition, one changelog).

p<model>\\0<prediction_id>                 the pair: pending, early outcome, joined or expired
                                          (per model: another model's outcome with the same
                                          prediction id never labels this model's prediction)
x<deadline:8 BE><target key>              expiry index: ordered by deadline, so a sweep
                                          reads only what expires
b<model>\\0<version>\\0<gran><start:8 BE>  metric bucket (gran m = minute, h = hour);
                                          version ALL_VERSIONS aggregates every version
m<model>                                  model record: task, clock, versions, last times
r<model>\\0<version>                       frozen drift reference of a model version
s<model>\\0<prediction_id>                 batch view (its own table): pair already written
\\0ckpt                                    checkpoint marker: input offsets applied, stream time

Every prefix of both state tables is declared here, and only here.

Ids followed by a separator (model and version in bucket and reference keys) are escaped
(`contracts.ids.escape_id`): an escaped id holds no NUL, so two (model, version) pairs never
share a key. ALL_VERSIONS holds U+0001, which the id grammar refuses and the escaping always
encodes: no accepted version equals it, and no escaped version equals its key form. An id that
ends its key (the prediction id of p and s, the model of m) is kept raw: nothing follows it, so
the key is already its own.
"""

from __future__ import annotations

import functools
import struct

from contracts.ids import escape_id, unescape_id

ALL_VERSIONS = "\x01all"
_ALL = ALL_VERSIONS.encode()
MARKER = b"\x00ckpt"
PAIR = b"p"
EXPIRY = b"x"
BUCKET = b"b"
MODEL = b"m"
MODEL_END = b"n"  # the first key after every model record
REFERENCE = b"r"
SEEN = b"s"
SEEN_END = b"t"  # the first key after every seen key

_BE = struct.Struct(">Q")


def pair(model_id: str, prediction_id: str) -> bytes:
    return _pair_prefix(model_id) + prediction_id.encode()


@functools.lru_cache(maxsize=4_096)
def _pair_prefix(model_id: str) -> bytes:
    # Cached: built for every event, of a few models.
    return PAIR + escape_id(model_id).encode() + b"\x00"


_PACK = _BE.pack


def expiry(deadline_ms: int, target: bytes) -> bytes:
    return EXPIRY + _PACK(deadline_ms if deadline_ms > 0 else 0) + target


def expiry_bound(upto_ms: int) -> bytes:
    """The first index key *after* every entry with deadline <= upto_ms."""
    return EXPIRY + _BE.pack(max(upto_ms + 1, 0))


def split_expiry(key: bytes) -> tuple[int, bytes]:
    return _BE.unpack_from(key, 1)[0], key[9:]


# An index entry whose target starts with CHUNK holds many pairs' entries in its value (the
# join's pair index, `tables.join`); CHUNK is no prefix of any key it could otherwise name.
CHUNK = b"\xff"


def chunk(deadline_ms: int, first: bytes) -> bytes:
    """The index key of a chunk of pair entries: at its earliest deadline, named after the
    pair of that entry (each pair is indexed once per deadline, so the name is unique)."""
    return expiry(deadline_ms, CHUNK + first)


def _version(version: str) -> bytes:
    return _ALL if version == ALL_VERSIONS else escape_id(version).encode()


@functools.lru_cache(maxsize=65_536)
def _bucket_prefix(model_id: str, version: str) -> bytes:
    # Cached: every event builds several bucket keys of the same few (model, version) pairs.
    return BUCKET + escape_id(model_id).encode() + b"\x00" + _version(version) + b"\x00"


def bucket(model_id: str, version: str, gran: str, start_ms: int) -> bytes:
    return _bucket_prefix(model_id, version) + gran.encode() + _BE.pack(start_ms)


def model_buckets(model_id: str) -> tuple[bytes, bytes]:
    """The key range holding every bucket of a model (all versions and granularities)."""
    head = BUCKET + escape_id(model_id).encode()
    return head + b"\x00", head + b"\x01"


def model_references(model_id: str) -> tuple[bytes, bytes]:
    """The key range holding every drift reference of a model (all versions)."""
    head = REFERENCE + escape_id(model_id).encode()
    return head + b"\x00", head + b"\x01"


def split_bucket(key: bytes) -> tuple[str, str, str, int]:
    model, version, rest = key[1:].split(b"\x00", 2)
    return (
        unescape_id(model.decode()),
        ALL_VERSIONS if version == _ALL else unescape_id(version.decode()),
        rest[:1].decode(),
        _BE.unpack_from(rest, 1)[0],
    )


def model(model_id: str) -> bytes:
    return MODEL + model_id.encode()


def reference(model_id: str, version: str) -> bytes:
    return REFERENCE + escape_id(model_id).encode() + b"\x00" + _version(version)


def seen(model_id: str, prediction_id: str) -> bytes:
    return _seen_prefix(model_id) + prediction_id.encode()


@functools.lru_cache(maxsize=4_096)
def _seen_prefix(model_id: str) -> bytes:
    # Cached: built for every joined pair, of a few models.
    return SEEN + escape_id(model_id).encode() + b"\x00"
