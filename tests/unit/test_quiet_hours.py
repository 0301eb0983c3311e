"""Quiet hours and digest windows: pure time arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signoff.domain.quiet_hours import QuietHours
from signoff.services.notify import digest_slot


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_a_window_over_midnight_in_a_time_zone() -> None:
    q = QuietHours.parse("22:00-07:00 Europe/Paris")  # UTC+1 in November
    assert q.until(at(2026, 11, 21, 20, 59)) is None  # 21:59 in Paris
    assert q.until(at(2026, 11, 21, 21, 0)) == at(2026, 11, 22, 6, 0)
    assert q.until(at(2026, 11, 22, 3, 0)) == at(2026, 11, 22, 6, 0)
    assert q.until(at(2026, 11, 22, 6, 0)) is None  # it ends at 07:00 sharp


def test_a_window_within_a_day_and_across_a_clock_change() -> None:
    q = QuietHours.parse("12:00-13:30")
    assert q.until(at(2026, 1, 1, 12, 15)) == at(2026, 1, 1, 13, 30)
    assert q.until(at(2026, 1, 1, 13, 30)) is None
    # New York moves its clocks forward on 2026-03-08: 07:00 local is 11:00 UTC after it
    ny = QuietHours.parse("20:00-07:00 America/New_York")
    assert ny.until(at(2026, 3, 8, 3, 0)) == at(2026, 3, 8, 11, 0)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("late", "expected HH:MM-HH:MM"),
        ("25:00-07:00", "hours are 0-23"),
        ("07:00-07:00", "the window is empty"),
        ("22:00-07:00 Mars/Olympus", "unknown time zone"),
    ],
)
def test_bad_quiet_hours_say_why(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        QuietHours.parse(text)


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
    st.integers(min_value=1, max_value=24 * 60),
)
def test_quiet_hours_end_after_now_and_outside_the_window(naive: datetime, minutes: int) -> None:
    q = QuietHours.parse("22:00-07:00 Europe/Paris")
    now = naive.replace(tzinfo=UTC)
    end = q.until(now)
    if end is not None:
        assert now < end <= now + timedelta(hours=10)
        assert q.until(end) is None


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
    st.integers(min_value=1, max_value=24 * 60),
)
def test_digest_windows_are_shared_and_close_within_a_period(naive: datetime, minutes: int) -> None:
    now = naive.replace(tzinfo=UTC)
    every = timedelta(minutes=minutes)
    slot = digest_slot(now, every)
    assert now <= slot < now + every
    # anything asked later in the same window leaves at the same moment
    assert digest_slot(slot - (slot - now) / 2, every) == slot
