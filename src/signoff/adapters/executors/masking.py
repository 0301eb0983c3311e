"""Masking: sensitive columns and patterns hidden before a result is stored or shown."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MASK = "****"


def map_text(value: Any, fn: Callable[[str], str], keys: bool = False) -> Any:
    """A JSON-able value with ``fn`` applied to every string in it (and to object keys
    when ``keys``)."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list):
        return [map_text(v, fn, keys) for v in value]
    if isinstance(value, dict):
        return {(fn(str(k)) if keys else k): map_text(v, fn, keys) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Mask:
    columns: frozenset[str] = field(default_factory=frozenset)  # lower-case names
    patterns: tuple[re.Pattern[str], ...] = ()

    def text(self, value: str) -> str:
        for pattern in self.patterns:
            value = pattern.sub(MASK, value)
        return value

    def value(self, value: Any) -> Any:
        """A JSON-able value with every string masked by the patterns."""
        return map_text(value, self.text)

    def computed_hidden(self, sql: str, count: int) -> list[bool]:
        """For each of ``count`` result columns, whether a value computed there may come
        from a masked column: the matching item of a single SELECT's list names one
        (``upper(email)``, ``md5(card) || md5(email)``); when the list cannot be matched
        to the result (``*``, several statements, SQL that does not parse), every
        computed column of a statement that names a masked column anywhere."""
        if not self.columns:
            return [False] * count
        try:
            import sqlglot
            from sqlglot import exp

            trees = [t for t in sqlglot.parse(sql, read="postgres") if t is not None]
        except Exception:
            words = {w.lower() for w in re.findall(r"[A-Za-z_][A-Za-z0-9_$]*", sql)}
            return [bool(words & self.columns)] * count

        def names(node: Any) -> set[str]:
            return {str(i.name).lower() for i in node.find_all(exp.Identifier)}

        anywhere = bool(set().union(*(names(t) for t in trees)) & self.columns)
        if len(trees) == 1 and isinstance(trees[0], exp.Select):
            items = trees[0].expressions
            if len(items) == count and not any(i.find(exp.Star) for i in items):
                return [bool(names(i.unalias()) & self.columns) for i in items]
        return [anywhere] * count

    def rows(
        self, columns: list[str], rows: list[list[Any]], hidden: list[bool] | None = None
    ) -> list[list[Any]]:
        """Rows with masked columns hidden: by their name, or as ``hidden`` says (the
        executor knows more: a column's source, an expression over a masked one)."""
        if hidden is None:
            hidden = [c.lower() in self.columns for c in columns]
        if not any(hidden) and not self.patterns:
            return rows
        plain = (int, float, bool, type(None))
        return [
            [
                MASK
                if hide and v is not None
                else v
                if type(v) in plain or not self.patterns
                else self.value(v)
                for v, hide in zip(r, hidden, strict=True)
            ]
            for r in rows
        ]
