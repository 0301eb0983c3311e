"""Bounds on what people send, checked where it enters (the API, the CLI, the pages),
and a total rendering of what is stored, so no stored value can break a later read.

Free-form JSON (an action's params) is bounded in depth, size, key and string length
and number range; no text anywhere may hold a NUL character (PostgreSQL refuses it,
SQLite would store it: refusing it everywhere keeps both the same).
"""

from __future__ import annotations

import math
from typing import Any

from signoff.domain.errors import InvalidInput

MAX_DEPTH = 32  # levels of nested objects and arrays in free-form JSON
MAX_NODES = 10_000  # values, keys included, in one free-form JSON document
MAX_KEY = 200  # characters of an object key
MAX_STRING = 1_000_000  # characters of one string value
MAX_INT = 2**63 - 1  # integers beyond 64 bits are refused (databases and JSON peers)
SHOWN_DEPTH = 64  # what a read renders of a stored value, deeper parts elided


def check_text(value: str, field: str) -> str:
    if "\x00" in value:
        raise InvalidInput(f"{field} contains a NUL character, which is not allowed", field=field)
    return value


def check_json(value: Any, field: str) -> Any:
    """Refuse free-form JSON beyond the bounds above, naming the limit and where."""
    nodes = 0

    def walk(v: Any, path: str, depth: int) -> None:
        nonlocal nodes
        nodes += 1
        if nodes > MAX_NODES:
            raise InvalidInput(f"{field} has more than {MAX_NODES} values", field=field)
        if depth > MAX_DEPTH:
            raise InvalidInput(f"{path} is nested deeper than {MAX_DEPTH} levels", field=field)
        if isinstance(v, dict):
            for k, item in v.items():
                key = str(k)
                if len(key) > MAX_KEY:
                    raise InvalidInput(
                        f"{path} has a key longer than {MAX_KEY} characters", field=field
                    )
                check_text(key, f"{path} key")
                nodes += 1
                walk(item, f"{path}.{key}", depth + 1)
        elif isinstance(v, list | tuple):
            for i, item in enumerate(v):
                walk(item, f"{path}[{i}]", depth + 1)
        elif isinstance(v, str):
            if len(v) > MAX_STRING:
                raise InvalidInput(f"{path} is longer than {MAX_STRING} characters", field=field)
            check_text(v, path)
        elif isinstance(v, bool) or v is None:
            pass
        elif isinstance(v, int):
            if not -MAX_INT - 1 <= v <= MAX_INT:
                raise InvalidInput(f"{path} is an integer beyond 64 bits", field=field)
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise InvalidInput(f"{path} is not a finite number", field=field)
        else:
            raise InvalidInput(f"{path} is not a JSON value", field=field)

    walk(value, field, 0)
    return value


def shown(value: Any, depth: int = SHOWN_DEPTH) -> Any:
    """A stored JSON value as reads render it: parts nested deeper than ``depth`` are
    replaced by a note, so a value stored before the bounds existed still renders."""
    if depth <= 0 and isinstance(value, dict | list):
        return "… (nested too deep to show)"
    if isinstance(value, dict):
        return {str(k): shown(v, depth - 1) for k, v in value.items()}
    if isinstance(value, list):
        return [shown(v, depth - 1) for v in value]
    return value
