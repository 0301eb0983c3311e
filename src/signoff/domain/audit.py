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
from hashlib import sha256
from json.encoder import encode_basestring
from typing import Any

from signoff.domain.actions import canonical_json, sha256_hex

GENESIS_HASH = "0" * 64

# An event as stored: (seq, at, actor, type, request_id, payload, prev_hash, hash).
ChainRow = tuple[int, str, str, str, str | None, str, str, str]


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
    """SHA-256 of ``canonical_json([seq, at, actor, type, request_id, payload, prev])``.

    For an int and strings (every stored event) the JSON is written here directly, the
    same bytes ``canonical_json`` makes (``encode_basestring`` is the quoting
    ``json.dumps(..., ensure_ascii=False)`` uses; tests/unit/test_audit_chain.py compares
    them) at a third of the cost; anything else goes through ``canonical_json``."""
    if type(seq) is int:
        try:
            text = (
                f"[{seq},{encode_basestring(at)},{encode_basestring(actor)},"
                f"{encode_basestring(type_)},"
                f"{'null' if request_id is None else encode_basestring(request_id)},"
                f"{encode_basestring(payload)},{encode_basestring(prev)}]"
            )
            return sha256(text.encode()).hexdigest()
        except (TypeError, ValueError):  # not a str; a lone surrogate (not UTF-8)
            pass
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
    return verify_rows(
        (
            (e.seq, e.at, e.actor, e.type, e.request_id, e.payload, e.prev_hash, e.hash)
            for e in events
        ),
        head,
    )


def verify_rows(rows: Iterable[ChainRow], head: tuple[int, str] | None = None) -> ChainReport:
    """``verify_chain`` over stored rows as they come from the database, one at a time:
    memory does not grow with the log, and each event costs its hash and a few
    comparisons (no object made per event)."""
    expected_seq = 1
    prev = GENESIS_HASH
    quote = encode_basestring
    for seq, at, actor, type_, request_id, payload, prev_hash, stored in rows:
        if seq != expected_seq:
            checked = expected_seq - 1
            what = "missing" if seq > expected_seq else "out of order or duplicated"
            return ChainReport(
                False,
                checked,
                expected_seq if seq > expected_seq else seq,
                f"expected event {expected_seq}, found {seq}: events {what}",
            )
        if prev_hash != prev:
            return ChainReport(
                False, expected_seq - 1, seq, f"event {seq} does not link to event {seq - 1}"
            )
        # event_hash, inlined (this loop runs once per stored event): prev_hash equals a
        # hash computed here or the genesis, so it is hex and needs no quoting
        try:
            recomputed = sha256(
                f"[{seq},{quote(at)},{quote(actor)},{quote(type_)},"
                f"{'null' if request_id is None else quote(request_id)},"
                f'{quote(payload)},"{prev_hash}"]'.encode()
            ).hexdigest()
        except (TypeError, ValueError):
            recomputed = event_hash(seq, at, actor, type_, request_id, payload, prev_hash)
        if recomputed != stored or type(seq) is not int:
            recomputed = event_hash(seq, at, actor, type_, request_id, payload, prev_hash)
            if recomputed != stored:
                return ChainReport(
                    False,
                    expected_seq - 1,
                    seq,
                    f"event {seq} was altered: its hash does not match",
                )
        prev = stored
        expected_seq += 1
    checked = expected_seq - 1
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
