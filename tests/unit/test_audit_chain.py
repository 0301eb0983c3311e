"""The audit chain: any single edit, deletion, insertion or swap is found, at its seq."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from signoff.domain.actions import canonical_json, sha256_hex
from signoff.domain.audit import GENESIS_HASH, AuditEvent, chain_next, event_hash, verify_chain

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def build(n: int) -> list[AuditEvent]:
    events: list[AuditEvent] = []
    seq, prev = 0, GENESIS_HASH
    for i in range(n):
        ev = chain_next(
            seq,
            prev,
            T0 + timedelta(seconds=i),
            f"user{i % 3}",
            "vote.cast",
            f"r{i % 4}",
            {"i": i, "comment": "ok"},
        )
        events.append(ev)
        seq, prev = ev.seq, ev.hash
    return events


def head(events: list[AuditEvent]) -> tuple[int, str]:
    return (events[-1].seq, events[-1].hash) if events else (0, GENESIS_HASH)


@given(st.integers(1, 30))
def test_an_untouched_chain_verifies(n: int) -> None:
    events = build(n)
    assert verify_chain(events, head(events)).ok


fields = st.sampled_from(["at", "actor", "type", "request_id", "payload", "prev_hash", "hash"])


@given(st.integers(2, 30), st.data(), fields)
def test_an_edited_field_is_found_at_its_seq(n: int, data, field: str) -> None:
    events = build(n)
    i = data.draw(st.integers(0, n - 1))
    old = getattr(events[i], field)
    new = (old or "") + "x" if field != "payload" else '{"i":-1}'
    events[i] = dataclasses.replace(events[i], **{field: new})
    report = verify_chain(events, head(build(n)))
    assert not report.ok
    assert report.broken_at == i + 1


@given(st.integers(2, 30), st.data())
def test_a_deleted_event_is_found(n: int, data) -> None:
    events = build(n)
    original_head = head(events)
    i = data.draw(st.integers(0, n - 1))
    del events[i]
    report = verify_chain(events, original_head)
    assert not report.ok
    assert report.broken_at == i + 1


@given(st.integers(1, 30), st.data())
def test_an_inserted_event_is_found(n: int, data) -> None:
    events = build(n)
    original_head = head(events)
    i = data.draw(st.integers(0, n))
    forged = chain_next(
        i, events[i - 1].hash if i else GENESIS_HASH, T0, "mallory", "request.approved", "r0", {}
    )
    events.insert(i, forged)
    report = verify_chain(events, original_head)
    assert not report.ok
    assert report.broken_at == i + 1


@given(st.integers(2, 30), st.data())
def test_swapped_events_are_found(n: int, data) -> None:
    events = build(n)
    i = data.draw(st.integers(0, n - 2))
    j = data.draw(st.integers(i + 1, n - 1))
    # a swap of contents keeps the sequence column in place
    a, b = events[i], events[j]
    events[i] = dataclasses.replace(b, seq=a.seq)
    events[j] = dataclasses.replace(a, seq=b.seq)
    report = verify_chain(events, head(build(n)))
    assert not report.ok
    assert report.broken_at == i + 1


def test_a_truncated_tail_is_found_through_the_head() -> None:
    events = build(5)
    report = verify_chain(events[:3], head(events))
    assert not report.ok and report.broken_at == 4


# every text a field can hold: quotes, backslashes, control characters, non-ASCII
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


@given(st.integers(0, 2**63 - 1), texts, texts, texts, st.none() | texts, texts, texts)
def test_the_event_hash_is_sha256_of_the_canonical_json(
    seq: int, at: str, actor: str, type_: str, request_id: str | None, payload: str, prev: str
) -> None:
    fields = [seq, at, actor, type_, request_id, payload, prev]
    assert event_hash(*fields) == sha256_hex(canonical_json(fields))  # type: ignore[arg-type]


def test_an_altered_event_at_position_n_of_many_is_found() -> None:
    events = build(3_000)
    for n in (1, 1_234, 2_999, 3_000):
        altered = list(events)
        altered[n - 1] = dataclasses.replace(altered[n - 1], actor="mallory")
        report = verify_chain(altered, head(events))
        assert (report.ok, report.broken_at, report.checked) == (False, n, n - 1)
