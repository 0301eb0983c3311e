"""Audit anchoring: signed checkpoints of the chain written outside the database, and
the chain checked against them.

The chain alone shows an edit, but not a rewrite by someone who recomputes every hash
and moves the head, nor a cut tail with the head moved back, nor a wiped log. A
checkpoint (sequence, hash, time) signed with a key the database does not hold, kept
where the database's keepers cannot rewrite it, shows all three."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from signoff.domain.audit import Checkpoint, check_anchors, format_time
from signoff.domain.errors import Conflict
from signoff.domain.identity import User
from signoff.services.dependencies import Services

log = logging.getLogger("signoff.checkpoints")


class CheckpointSink(Protocol):
    name: str

    def write(self, checkpoint: Checkpoint) -> None: ...


# Signs an unsigned checkpoint with the server's current key.
Sign = Callable[[Checkpoint], Checkpoint]
# Whether a checkpoint's signature was made by one of the keys at hand.
SignatureCheck = Callable[[Checkpoint], bool]


def write_checkpoint(
    svc: Services,
    sign: Sign,
    sinks: Sequence[CheckpointSink],
    kid: str,
    by: User | None = None,
) -> Checkpoint | None:
    """Sign the chain's head now and write it to every sink; None while the log is
    empty. A sink that fails is logged and the others still get it; if all fail, the
    error is raised. ``by``: the person asking (admins only); None for the worker."""
    if by is not None:
        by.require_admin("write audit checkpoints")
    if not sinks:
        raise Conflict("no checkpoint sink is configured (SIGNOFF_CHECKPOINTS)")
    with svc.uow(write=False, snapshot=True) as uow:
        seq, head = uow.audit.head()
    if seq == 0:
        return None
    checkpoint = sign(Checkpoint(seq, head, format_time(svc.clock.now()), kid))
    failures = []
    for sink in sinks:
        try:
            sink.write(checkpoint)
        except Exception as exc:
            log.warning("checkpoint %s not written to %s: %s", seq, sink.name, exc)
            failures.append(exc)
    if sinks and len(failures) == len(sinks):
        raise failures[0]
    return checkpoint


def check_checkpoints(
    svc: Services, checkpoints: Sequence[Checkpoint], signed_by_us: SignatureCheck
) -> list[str]:
    """Every way the chain disagrees with the checkpoints: a checkpoint not signed by
    this server's keys, a rewritten event, a cut tail, a wiped log."""
    problems = [
        f"the checkpoint of event {c.seq} ({c.at}) is not signed by this server's keys"
        for c in checkpoints
        if not signed_by_us(c)
    ]
    trusted = [(c.seq, c.hash) for c in checkpoints if signed_by_us(c)]
    with svc.uow(write=False, snapshot=True) as uow:
        head_seq, _ = uow.audit.head()

        def hash_at(seq: int) -> str | None:
            found = list(uow.audit.events(after=seq - 1, limit=1))
            return found[0].hash if found and found[0].seq == seq else None

        problems += check_anchors(trusted, hash_at, head_seq)
    return problems
