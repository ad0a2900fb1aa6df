"""Key layout of the join's state table (one RocksDB per partition, one changelog).

p<prediction_id>                          the pair: pending, early outcome, joined or expired
x<deadline:8 BE><target key>              expiry index: ordered by deadline, so a sweep
                                          reads only what expires
b<model>\\0<version>\\0<gran><start:8 BE>  metric bucket (gran m = minute, h = hour);
                                          version ALL_VERSIONS aggregates every version
m<model>                                  model record: task, clock, versions, last times
r<model>\\0<version>                       frozen drift reference of a model version
s<prediction_id>                          batch view (its own table): pair already written
\\0ckpt                                    checkpoint marker: input offsets applied, stream time

Every prefix of both state tables is declared here, and only here.
"""

from __future__ import annotations

import struct

ALL_VERSIONS = "\x01all"
MARKER = b"\x00ckpt"
PAIR = b"p"
EXPIRY = b"x"
BUCKET = b"b"
MODEL = b"m"
MODEL_END = b"n"  # the first key after every model record
REFERENCE = b"r"
SEEN = b"s"

_BE = struct.Struct(">Q")


def pair(prediction_id: str) -> bytes:
    return PAIR + prediction_id.encode()


def expiry(deadline_ms: int, target: bytes) -> bytes:
    return EXPIRY + _BE.pack(max(deadline_ms, 0)) + target


def expiry_bound(upto_ms: int) -> bytes:
    """The first index key *after* every entry with deadline <= upto_ms."""
    return EXPIRY + _BE.pack(max(upto_ms + 1, 0))


def split_expiry(key: bytes) -> tuple[int, bytes]:
    return _BE.unpack_from(key, 1)[0], key[9:]


def bucket(model_id: str, version: str, gran: str, start_ms: int) -> bytes:
    return b"%s%s\x00%s\x00%s%s" % (
        BUCKET,
        model_id.encode(),
        version.encode(),
        gran.encode(),
        _BE.pack(start_ms),
    )


def split_bucket(key: bytes) -> tuple[str, str, str, int]:
    model, version, rest = key[1:].split(b"\x00", 2)
    return model.decode(), version.decode(), rest[:1].decode(), _BE.unpack_from(rest, 1)[0]


def model(model_id: str) -> bytes:
    return MODEL + model_id.encode()


def reference(model_id: str, version: str) -> bytes:
    return REFERENCE + model_id.encode() + b"\x00" + version.encode()


def seen(prediction_id: str) -> bytes:
    return SEEN + prediction_id.encode()
