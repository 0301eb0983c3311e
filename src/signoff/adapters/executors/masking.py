"""Masking: sensitive columns and patterns hidden before a result is stored or shown."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

MASK = "****"


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
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        return value

    def rows(self, columns: list[str], rows: list[list[Any]]) -> list[list[Any]]:
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
