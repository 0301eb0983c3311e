"""The audit log as a hash chain.

Each event's hash is SHA-256 over the canonical JSON of
``[seq, at, actor, type, request_id, payload, prev_hash]``; ``prev_hash`` is the
previous event's hash (64 zeros for the first). Changing, removing, inserting or
reordering any event breaks the link at that event or the next one, and ``verify``
names the first sequence number where the chain no longer holds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from signoff.domain.actions import canonical_json, sha256_hex

GENESIS_HASH = "0" * 64


def format_time(at: datetime) -> str:
    """One textual form of a time for hashing: UTC, microseconds, ``Z``."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class AuditEvent:
    seq: int
    at: str
    actor: str
    type: str
    request_id: str | None
    payload: str  # canonical JSON text
    prev_hash: str
    hash: str

    def payload_data(self) -> Any:
        return json.loads(self.payload)

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "type": self.type,
            "request_id": self.request_id,
            "payload": self.payload_data(),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def event_hash(
    seq: int, at: str, actor: str, type_: str, request_id: str | None, payload: str, prev: str
) -> str:
    return sha256_hex(canonical_json([seq, at, actor, type_, request_id, payload, prev]))


def chain_next(
    head_seq: int,
    head_hash: str,
    at: datetime,
    actor: str,
    type_: str,
    request_id: str | None,
    payload: dict[str, Any],
) -> AuditEvent:
    """The event that follows the head: O(1), needs only the head's seq and hash."""
    seq = head_seq + 1
    type_ = str(type_)  # an EventType is stored as its plain name
    when = format_time(at)
    body = canonical_json(payload).decode("utf-8")
    digest = event_hash(seq, when, actor, type_, request_id, body, head_hash)
    return AuditEvent(seq, when, actor, type_, request_id, body, head_hash, digest)


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement, kept outside the database, that the chain had ``hash`` at
    ``seq`` at time ``at``; ``kid`` names the signing key."""

    seq: int
    hash: str
    at: str
    kid: str
    signature: str = ""

    def body(self) -> bytes:
        return canonical_json({"seq": self.seq, "hash": self.hash, "at": self.at, "kid": self.kid})

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "hash": self.hash,
            "at": self.at,
            "kid": self.kid,
            "signature": self.signature,
        }


def check_anchors(
    anchors: Iterable[tuple[int, str]], hash_at: Callable[[int], str | None], head_seq: int
) -> list[str]:
    """Compare the chain with checkpoints kept elsewhere, each (seq, hash): a hash that
    differs at the same seq means the chain was rewritten (every hash recomputed); a
    chain shorter than a checkpoint was cut back, or wiped."""
    problems = []
    for seq, expected in sorted(anchors):
        if seq > head_seq:
            what = "was wiped" if head_seq == 0 else f"ends at event {head_seq}"
            problems.append(
                f"a checkpoint vouches for event {seq}, but the log {what}: events were removed"
            )
            continue
        found = hash_at(seq)
        if found is None:
            problems.append(f"event {seq}, vouched for by a checkpoint, is missing")
        elif found != expected:
            problems.append(
                f"event {seq} differs from its checkpoint: the chain was rewritten at or before it"
            )
    return problems


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    broken_at: int | None = None
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "broken_at": self.broken_at,
            "problem": self.problem,
        }


def verify_chain(events: Iterable[AuditEvent], head: tuple[int, str] | None = None) -> ChainReport:
    """Walk events in stored order and report the first broken link.

    ``head`` is the separately stored (last seq, last hash); when given, a chain whose
    tail was cut off is detected too.
    """
    expected_seq = 1
    prev = GENESIS_HASH
    checked = 0
    for ev in events:
        if ev.seq != expected_seq:
            what = "missing" if ev.seq > expected_seq else "out of order or duplicated"
            return ChainReport(
                False,
                checked,
                expected_seq if ev.seq > expected_seq else ev.seq,
                f"expected event {expected_seq}, found {ev.seq}: events {what}",
            )
        if ev.prev_hash != prev:
            return ChainReport(
                False, checked, ev.seq, f"event {ev.seq} does not link to event {ev.seq - 1}"
            )
        recomputed = event_hash(
            ev.seq, ev.at, ev.actor, ev.type, ev.request_id, ev.payload, ev.prev_hash
        )
        if recomputed != ev.hash:
            return ChainReport(
                False, checked, ev.seq, f"event {ev.seq} was altered: its hash does not match"
            )
        prev = ev.hash
        expected_seq += 1
        checked += 1
    if head is not None:
        head_seq, head_hash = head
        if head_seq > checked:
            return ChainReport(
                False,
                checked,
                checked + 1,
                f"the log ends at event {checked} but the head records event {head_seq}: "
                "events were removed from the end",
            )
        if head_seq < checked:
            return ChainReport(
                False,
                checked,
                head_seq + 1,
                f"event {head_seq + 1} follows the recorded head (event {head_seq}): "
                "events were added outside Signoff",
            )
        if head_seq > 0 and head_hash != prev:
            return ChainReport(
                False, checked, head_seq, f"event {head_seq} does not match the recorded head"
            )
    return ChainReport(True, checked)
