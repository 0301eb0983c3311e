"""Durations people write (policies, settings, report windows, history windows): a value
too long to be a date is refused with the same readable ValueError as any other mistake,
never an OverflowError (a traceback from `policy check`, a 500 from the API)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from signoff.domain.durations import parse_duration


def test_ordinary_durations() -> None:
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("36500d") == timedelta(days=36500)


@pytest.mark.parametrize("text", ["36501d", "99999999999d", "1" + "0" * 5000 + "s", "9" * 30 + "w"])
def test_too_long_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match=r"must be at most 100 years"):
        parse_duration(text)


def test_zero_is_still_refused_as_zero() -> None:
    with pytest.raises(ValueError, match="longer than zero"):
        parse_duration("000d")
