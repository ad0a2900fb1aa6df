"""Schemathesis hooks of `make fuzz-api`: keep out of the generated requests the ids that the
OpenAPI document cannot describe, so that every failure left is the API's.

Two things JSON Schema and Schemathesis cannot say about an id (`contracts.ids`):

- its limit is in bytes once escaped (MAX_ID_BYTES), and JSON Schema counts characters: a
  200-character id of 4-byte characters fits `maxLength` and is rightly refused (422), which
  Schemathesis reports as a valid request rejected;
- Schemathesis percent-decodes a value before it puts it in a path ("idempotent quoting"), and
  reuses path values it encoded as body values: an id holding `%C3%A9` is registered as those
  six characters, then looked up as `é` and reported as a created resource not found.

Only such ids are filtered; every other generated request, valid or not, goes through.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

import schemathesis

from contracts.ids import ID_PATTERN, MAX_ID_BYTES, check_id

ID_FIELDS = ("model_id", "version", "upstream", "downstream")
_SCHEMA_VALID = re.compile(ID_PATTERN)
_ESCAPE_LOOKALIKE = re.compile("%[0-9A-Fa-f]{2}")


def describable(value: object) -> bool:
    """False for an id the document calls valid and the API refuses, or that Schemathesis
    would decode on its way into a path."""
    if not isinstance(value, str):
        return True
    if _ESCAPE_LOOKALIKE.search(value):
        return False
    schema_valid = 1 <= len(value) <= MAX_ID_BYTES and _SCHEMA_VALID.match(value) is not None
    return not (schema_valid and check_id(value) is not None)


@schemathesis.hook
def filter_body(context: Any, body: Any) -> bool:
    if not isinstance(body, dict):
        return True
    return all(describable(body.get(name)) for name in ID_FIELDS)


@schemathesis.hook
def filter_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> bool:
    return not path_parameters or all(
        describable(unquote(v) if isinstance(v, str) else v) for v in path_parameters.values()
    )
