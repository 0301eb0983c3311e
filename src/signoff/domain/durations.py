"""Durations as people write them in policies: ``90s``, ``15m``, ``2h``, ``7d``, ``1h30m``."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)([smhdw])")
_WHOLE = re.compile(r"^(?:\d+[smhdw])+$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Longer than any deadline, grant or window means anything: and short enough that a
# moment plus it is still a date (a timedelta past ~2.7 million years cannot be made).
MAX_DURATION = timedelta(days=36500)


def parse_duration(text: str) -> timedelta:
    """Parse ``1h30m`` and friends; raise ValueError with a readable message otherwise."""
    compact = text.strip().replace(" ", "")
    if not _WHOLE.match(compact):
        raise ValueError(
            f"invalid duration {text!r}: write a number and a unit, e.g. 90s, 15m, 2h, 7d, 1h30m"
        )
    parts = _PART.findall(compact)
    too_long = any(len(n.lstrip("0")) > 15 for n, _ in parts)  # int() of 4300+ digits fails
    seconds = 0 if too_long else sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)
    if seconds <= 0 and not too_long:
        raise ValueError(f"invalid duration {text!r}: must be longer than zero")
    if too_long or seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"invalid duration {text!r}: must be at most 100 years (36500d)")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    return "".join(_units(int(value.total_seconds()))) or "0s"


def _units(seconds: int) -> list[str]:
    """3725 -> ["1h", "2m", "5s"]."""
    out = []
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_SECONDS[unit]
        if seconds >= size:
            out.append(f"{seconds // size}{unit}")
            seconds %= size
    return out


def brief(seconds: float | None) -> str:
    """A measured time as people read it: 2s, 6.5s, 1m2s, 50m, 2h5m, 3d4h ("-": none).
    Two units at most."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    if whole < 60:
        return f"{round(seconds, 1):g}s" if seconds < 10 else f"{whole}s"
    return "".join(_units(whole)[:2])
