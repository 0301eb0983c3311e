"""Actions and their digest: what was approved is what runs.

The digest is SHA-256 over the canonical JSON of ``{"type", "target", "params"}``:
keys sorted, no insignificant white space, UTF-8, non-ASCII kept as is. Two actions
have the same digest exactly when they are the same action.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from signoff.domain.errors import InvalidInput

MAX_TYPE_LENGTH = 200
MAX_TARGET_LENGTH = 500


def canonical_json(value: Any) -> bytes:
    """The one byte encoding used for every digest Signoff computes."""
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"value cannot be encoded canonically: {exc}") from exc


def canonical_json_floatless(value: Any) -> bytes:
    """``canonical_json`` of a value its maker knows holds no float (a query's rows of
    integer, text, date... columns), several times faster: orjson writes exactly these
    bytes for strings (every code point), integers, booleans, null, lists and sorted
    string keys (tests/unit/test_canonical_json.py holds it to that); only its floats
    differ (``1e-05`` is ``0.00001`` there). Whatever orjson refuses (an integer beyond
    64 bits, a key that is not a string, a lone surrogate) is encoded as before."""
    import orjson

    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        return canonical_json(value)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Action:
    """What someone wants done: a type, a target and parameters."""

    type: str
    target: str
    params: dict[str, Any]

    def __post_init__(self) -> None:
        if not self.type or len(self.type) > MAX_TYPE_LENGTH:
            raise InvalidInput(f"action type must be 1 to {MAX_TYPE_LENGTH} characters")
        if not self.target or len(self.target) > MAX_TARGET_LENGTH:
            raise InvalidInput(f"action target must be 1 to {MAX_TARGET_LENGTH} characters")

    def canonical(self) -> bytes:
        return canonical_json({"type": self.type, "target": self.target, "params": self.params})

    @property
    def digest(self) -> str:
        return sha256_hex(self.canonical())

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "target": self.target, "params": self.params}
