"""Quiet hours: a daily window in which a channel sends nothing; messages wait for its end."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_FORM = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})(?:\s+(\S+))?\s*$")


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time
    zone: ZoneInfo

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        """``22:00-07:00`` (UTC) or ``22:00-07:00 Europe/Paris``."""
        m = _FORM.match(text)
        if m is None:
            raise ValueError(
                f"invalid quiet hours {text!r}: expected HH:MM-HH:MM and an optional "
                "time zone, e.g. '22:00-07:00 Europe/Paris'"
            )
        h1, m1, h2, m2 = (int(g) for g in m.groups()[:4])
        if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
            raise ValueError(f"invalid quiet hours {text!r}: hours are 0-23, minutes 0-59")
        if (h1, m1) == (h2, m2):
            raise ValueError(f"invalid quiet hours {text!r}: the window is empty")
        try:
            zone = ZoneInfo(m.group(5) or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"invalid quiet hours {text!r}: unknown time zone") from None
        return cls(time(h1, m1), time(h2, m2), zone)

    def until(self, now: datetime) -> datetime | None:
        """The end of the quiet window ``now`` is in, or None when it is not quiet."""
        local = now.astimezone(self.zone)
        t = local.time().replace(tzinfo=None)
        if self.start < self.end:
            inside = self.start <= t < self.end
        else:  # over midnight
            inside = t >= self.start or t < self.end
        if not inside:
            return None
        day = local.date() if t < self.end else local.date() + timedelta(days=1)
        return datetime.combine(day, self.end, tzinfo=self.zone).astimezone(UTC)
