"""The one grammar of ids (model, version, prediction, registry node) and their escaping. Pure.

Ids come from outside (model servers, label sources, registry callers) and end up inside
composite names: Redis keys (`runway:model:{id}:version:{v}:window:1h`), state keys
(`b<model>\\0<version>\\0...`) and hive partition directories (`date=.../model_id={id}/`). Raw,
a `:` makes model `a:version:v1` write the keys of model `a`'s version `v1`, a `/` or `..` walks
out of the batch view's root, `x/date=1999-01-01` reads back as another partition and a NUL
makes two (model, version) pairs share one state key. So every id passes one grammar on the
way in, and is escaped on the way into a name.

**Grammar** (the decoder's and the registry API's; the union of what both accepted before,
minus what could not be stored safely):

- a string of printable Unicode: no control character (U+0000-U+001F, U+007F-U+009F) and no
  lone surrogate; letters of any script, spaces, punctuation and emoji are fine;
- non-empty, and at most `MAX_ID_BYTES` (240) bytes once escaped and UTF-8 encoded, so that
  `model_id=<escaped id>` fits one 255-byte path component: 240 plain ASCII characters, fewer
  when characters need escaping (3 bytes each) or are not ASCII (2-4 bytes each);
- not `__HIVE_DEFAULT_PARTITION__`: hive readers (pyarrow) read that directory as a null id.

**Escaping** is Hive's `FileUtils.escapePathName`: each character of Hive's set becomes `%`
and two upper-case hex digits. The set: U+0000-U+001F, `"`, `#`, `%`, `'`, `*`, `/`, `:`, `=`,
`?`, `\\`, U+007F, `{`, `[`, `]`, `^` (Hive's POSIX set; its old Windows extras, space `<` `>`
`|`, are not escaped). Everything else is kept, so plain ids (`model-000`, `v2`) keep their
names. Beyond Hive, the C1 controls (U+0080-U+009F) and lone surrogates are percent-encoded
as their UTF-8 bytes, so the escaping is total and injective on every string, grammar or not.
Since `%` itself is escaped, `unescape_id` (percent-decoding of UTF-8, what pyarrow's
`segment_encoding="uri"` and DuckDB's hive partitioning do) gives back the original id. An
escaped id holds no `/`, `:`, `=` or control character, and `%` only as an escape's lead.

Kept raw, ids stay readable where nothing follows them: set members, hash fields, JSON values,
the registry's database rows, and the state keys an id ends (see `tables/keys.py`).
"""

from __future__ import annotations

import functools
import re
from typing import Annotated
from urllib.parse import unquote

from pydantic import AfterValidator, Field

MAX_ID_BYTES = 240
HIVE_NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
RESERVED_IDS = frozenset({HIVE_NULL_PARTITION})

# Hive's FileUtils.charToEscape (POSIX).
HIVE_ESCAPED = frozenset(chr(c) for c in range(0x20)) | frozenset("\"#%'*/:=?\\\x7f{[]^")

# For pydantic's and FastAPI's own checks and the JSON schemas: no control character.
ID_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]+$"

_REFUSED = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_NEEDS_ESCAPE = re.compile(
    "[" + "".join(re.escape(c) for c in sorted(HIVE_ESCAPED)) + "\x80-\x9f\ud800-\udfff]"
)
# No character takes more than 4 bytes escaped (C1 controls take 6, but are refused first):
# an id this short fits whatever it holds, and its escaped length need not be computed.
_ALWAYS_FITS = MAX_ID_BYTES // 4


def _escape_char(match: re.Match[str]) -> str:
    return "".join(f"%{byte:02X}" for byte in match.group().encode("utf-8", "surrogatepass"))


@functools.lru_cache(maxsize=65_536)
def escape_id(value: str) -> str:
    """The id as it appears inside a Redis key, a state key or a hive directory name.

    Cached: the same few model and version ids are escaped for every event.
    """
    return _NEEDS_ESCAPE.sub(_escape_char, value)


def unescape_id(escaped: str) -> str:
    """The inverse of `escape_id`: percent-decoding of UTF-8 (lone surrogates pass, as they
    were escaped, so that the inverse holds for every string)."""
    return unquote(escaped, errors="surrogatepass")


def check_id(value: object) -> str | None:
    """Why `value` is not a valid id, or None when it is one."""
    if not isinstance(value, str):
        return "must be a string"
    if not value:
        return "must not be empty"
    bad = _REFUSED.search(value)
    if bad is not None:
        return f"must not contain control characters (U+{ord(bad.group()):04X})"
    if value in RESERVED_IDS:
        return f"{value} is reserved (hive readers take it for a null partition)"
    if len(value) > _ALWAYS_FITS:
        size = len(escape_id(value).encode("utf-8"))
        if size > MAX_ID_BYTES:
            return f"is {size} bytes once escaped, more than {MAX_ID_BYTES}"
    return None


def plain_id(value: object) -> bool:
    """A valid id checked without pydantic: a short string with no refused character (the
    decoder's fast path; an id this function declines may still be valid, `check_id` says)."""
    return (
        type(value) is str
        and 0 < len(value) <= _ALWAYS_FITS
        and value != HIVE_NULL_PARTITION
        and _REFUSED.search(value) is None
    )


@functools.lru_cache(maxsize=4_096)
def _plain_remembered(value: str) -> bool:
    return plain_id(value)


def plain_repeated_id(value: object) -> bool:
    """`plain_id` of an id that repeats from event to event (a model's, a version's),
    remembered: the check is a fifth of the decoder's fast path, the lookup a fraction of it."""
    return type(value) is str and _plain_remembered(value)


def _validated(value: str) -> str:
    # The field's own constraints (run in pydantic-core, before this) have refused empty
    # strings, control characters and lone surrogates: what is left to check costs nothing
    # for a short id, and the decoder runs this for three ids of every event.
    if len(value) <= _ALWAYS_FITS and value != HIVE_NULL_PARTITION:
        return value
    problem = check_id(value)
    if problem is not None:
        raise ValueError(f"invalid id: {problem}")
    return value


Id = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_ID_BYTES,
        pattern=ID_PATTERN,
        description=(
            f"An id: printable Unicode (no control characters), at most {MAX_ID_BYTES} bytes "
            f"once escaped (Hive's path escaping, UTF-8), not {HIVE_NULL_PARTITION}."
        ),
    ),
    AfterValidator(_validated),
]
"""A pydantic field type for an id: the grammar above, checked as a field is validated."""
