"""The gateway use case: Signoff performs the approved action itself.

``execute_request`` runs in three steps:

1. **Claim**, in one transaction: the domain checks who may execute and that the grant
   is redeemable for the stored action (its own digest: nothing else can run) and takes
   one use, which is saved like every other change of the request (with the row
   locked, and a compare-and-set on the grant's uses, so of any number of concurrent
   calls, on any replicas, one wins each use), and ``execution.started`` is audited
   with an outbox row.
2. **Run**, outside any transaction (a long statement holds no lock of Signoff's): the
   target's executor performs the action and captures the result, masked.
3. **Record**, in one transaction: the result is stored with the request (size-limited),
   the request moves to ``executed`` (last use) or ``failed``, and the audit log gets the
   summary and the SHA-256 of the full (masked) output. An execution that could not
   start (the target unreachable) gives its use back and leaves the request approved.

A crash between 1 and 3 leaves the use consumed and ``execution.started`` without an
outcome in the audit log: the action may or may not have run, and the log says so
rather than running it twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from signoff.domain.actions import canonical_json, sha256_hex
from signoff.domain.errors import Conflict, Forbidden
from signoff.domain.events import ExecutionRefusal
from signoff.domain.identity import User
from signoff.domain.requests import Request
from signoff.services.dependencies import Services
from signoff.services.ports import ExecutionOutcome, Executor
from signoff.services.recording import publish_changes, save_changes

log = logging.getLogger("signoff.execute")

MAX_STORED_OUTPUT = 1_000_000  # bytes of canonical JSON kept with the request


@dataclass(frozen=True)
class Execution:
    request: Request
    execution_id: str
    actor: str
    started_at: datetime
    finished_at: datetime
    ok: bool
    summary: str
    output: dict[str, Any]
    output_digest: str
    output_json: bytes  # the canonical JSON of ``output``, as stored


def execute_request(
    svc: Services, executors: Mapping[str, Executor], user: User, request_id: str
) -> Execution:
    user.require_enabled("execute a request")
    # 1. claim one use for the stored action
    with svc.uow() as uow:
        now = svc.clock.now()
        request = uow.requests.get(request_id, for_update=True)
        executor = executors.get(request.action.target)
        if executor is None:
            raise Conflict(f"no target named {request.action.target!r} is configured for execution")
        version = request.version
        execution_id = svc.new_id()
        started_at = now
        try:
            events = request.start_execution(user.name, user.admin, now, execution_id)
        except Forbidden as refusal:  # not theirs to run, or the grant does not allow it
            uow.audit.append(
                now,
                request.id,
                ExecutionRefusal(
                    actor=user.name,
                    reason=getattr(refusal, "reason", "forbidden"),
                    status=request.status,
                ),
            )
            uow.commit()
            raise
        executor.check(request.action)
        save_changes(svc, uow, now, request, version, events)
        uow.executions.start(execution_id, request.id, user.name, now)
        uow.commit()
    publish_changes(svc, uow)

    # 2. run it, outside any transaction
    clock = time.monotonic()
    try:
        outcome = executor.run(request.action, request.read_only)
    except Exception as exc:  # an executor bug must still end in a recorded outcome
        log.exception("executor for %s failed", request.action.target)
        outcome = ExecutionOutcome(False, f"executor error: {type(exc).__name__}", {})
    svc.observer.executed(
        request.action.target,
        "ok" if outcome.ok else "failed" if outcome.ran else "not_run",
        time.monotonic() - clock,
    )

    # 3. record the outcome
    # encoded once (by the scrubber, when the target has secrets): digested, stored and
    # answered as these bytes
    encoded = outcome.encoded if outcome.encoded is not None else canonical_json(outcome.output)
    digest = sha256_hex(encoded)
    stored: dict[str, Any] = outcome.output
    stored_json = encoded
    if len(encoded) > MAX_STORED_OUTPUT:
        stored = {"truncated": True, "note": "the output was larger than Signoff keeps"}
        stored_json = canonical_json(stored)
    with svc.uow() as uow:
        now = svc.clock.now()
        request = uow.requests.get(request_id, for_update=True)
        version = request.version
        events = request.finish_execution(
            user.name, now, outcome.ok, outcome.summary, digest, execution_id, outcome.ran
        )
        uow.executions.finish(execution_id, now, outcome.ok, outcome.summary, stored_json, digest)
        save_changes(svc, uow, now, request, version, events)
        uow.commit()
    publish_changes(svc, uow)
    return Execution(
        request,
        execution_id,
        user.name,
        started_at,
        now,
        outcome.ok,
        outcome.summary,
        stored,
        digest,
        stored_json,
    )
