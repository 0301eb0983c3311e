"""Requests: ask, list, read, vote, cancel, follow live, and have Signoff execute."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from signoff.bootstrap import App
from signoff.domain.actions import Action
from signoff.domain.audit import AuditEvent
from signoff.domain.errors import InvalidInput
from signoff.domain.identity import User
from signoff.domain.limits import MAX_INT, shown
from signoff.domain.requests import FINAL, Decision, Status
from signoff.domain.requests import Request as SignoffRequest
from signoff.entrypoints.api.callers import ERRORS, CurrentUser, RequestRef
from signoff.entrypoints.api.schemas import (
    ActionIn,
    CommentIn,
    ExecutionOut,
    GrantOut,
    RequestCreate,
    RequestOut,
    RequestPage,
    StageOut,
    TimelineEntry,
    VoteCreate,
    VoteOut,
)
from signoff.services import execution, views
from signoff.services import requests as use_cases


def to_action(a: ActionIn) -> Action:
    return Action(a.type, a.target, dict(a.params))


def request_out(
    app: App, r: SignoffRequest, viewer: User | None, timeline: list[AuditEvent] | None = None
) -> RequestOut:
    grant = None
    if r.grant is not None:
        g = r.grant
        show_token = (
            viewer is not None
            and r.may_hold_grant(viewer.name, viewer.admin)
            and r.status is Status.APPROVED
        )
        grant = GrantOut(
            id=g.id,
            expires_at=g.expires_at,
            uses_total=g.uses_total,
            uses_left=g.uses_left,
            revoked=g.revoked_at is not None,
            token=app.services.signer.issue(r) if show_token else None,
        )
    entries = None
    if timeline is not None:
        entries = [
            TimelineEntry(
                seq=e.seq, at=e.at, actor=e.actor, type=e.type, payload=shown(e.payload_data())
            )
            for e in timeline
        ]
    return RequestOut(
        id=r.id,
        status=r.status.value,
        requester=r.requester,
        action=shown(r.action.as_dict()),
        action_digest=r.action_digest,
        reason=r.reason,
        ticket=r.ticket,
        context=shown(r.context),
        policy=r.policy_name,
        policy_set_digest=r.policy_set_digest,
        stages=[
            StageOut(
                name=s.name,
                approvers=sorted(r.eligible(i)),
                escalate_to=sorted(s.escalate_to - s.approvers),
                escalated=r.escalated(i),
                quorum=s.quorum,
                timeout_seconds=s.timeout.total_seconds() if s.timeout else None,
                approvals=sorted(r.approvals_in(i)),
            )
            for i, s in enumerate(r.stages)
        ],
        current_stage=r.current_stage,
        still_needed=r.still_needed(),
        awaiting=sorted(r.awaiting()),
        votes=[
            VoteOut(
                voter=v.voter, decision=v.decision.value, comment=v.comment, stage=v.stage, at=v.at
            )
            for v in r.votes
        ],
        grant=grant,
        created_at=r.created_at,
        decided_at=r.decided_at,
        deadline_at=r.deadline_at,
        outcome=r.outcome,
        version=r.version,
        fold_count=r.fold_count,
        timeline=entries,
    )


def router(app: App) -> APIRouter:
    api = APIRouter()
    svc = app.services

    @api.post(
        "/v1/requests",
        status_code=201,
        response_model=RequestOut,
        tags=["requests"],
        responses=ERRORS,
    )
    def create_request(body: RequestCreate, user: CurrentUser) -> JSONResponse:
        context = body.context.model_dump(exclude_none=True)
        r, folded = use_cases.submit_or_fold(
            svc, user, to_action(body.action), body.reason, body.ticket, context, redeem=body.redeem
        )
        out = request_out(app, r, user)
        if body.redeem:
            # a new request approved by policy: any use gone from its grant went just now
            g = r.grant
            out.redeemed = not folded and g is not None and g.uses_left < g.uses_total
        # Built from a validated model already: skip FastAPI's second validation pass.
        # 200, not 201, when an identical pending request absorbed this one.
        status = 200 if folded else 201
        return JSONResponse(out.model_dump(mode="json"), status_code=status)

    @api.get("/v1/requests", response_model=RequestPage, tags=["requests"], responses=ERRORS)
    def list_requests(
        user: CurrentUser,
        status: Annotated[str | None, Query(max_length=20)] = None,
        requester: Annotated[str | None, Query(max_length=100)] = None,
        awaiting: Annotated[
            str | None, Query(max_length=100, description="a user name, or 'me'")
        ] = None,
        cursor: Annotated[str | None, Query(max_length=1000)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> RequestPage:
        page = views.list_requests(
            svc,
            user,
            status=status,
            requester=requester,
            awaiting=awaiting,
            cursor=cursor,
            limit=limit,
        )
        return RequestPage(
            items=[request_out(app, r, user) for r in page.items], next_cursor=page.next_cursor
        )

    @api.get(
        "/v1/requests/{request_id}", response_model=RequestOut, tags=["requests"], responses=ERRORS
    )
    def get_request(request_id: RequestRef, user: CurrentUser) -> RequestOut:
        found = views.request_history(svc, user, request_id)
        return request_out(app, found.request, user, timeline=found.events)

    @api.post(
        "/v1/requests/{request_id}/votes",
        response_model=RequestOut,
        tags=["requests"],
        responses=ERRORS,
    )
    def vote(
        request_id: RequestRef,
        body: VoteCreate,
        user: CurrentUser,
        user_agent: Annotated[str, Header(include_in_schema=False)] = "",
    ) -> RequestOut:
        channel = "cli" if user_agent.startswith("signoff-cli/") else "api"
        r = use_cases.cast_vote(
            svc, user, request_id, Decision(body.decision), body.comment, channel=channel
        )
        return request_out(app, r, user)

    @api.post(
        "/v1/requests/{request_id}/cancel",
        response_model=RequestOut,
        tags=["requests"],
        responses=ERRORS,
    )
    def cancel(
        request_id: RequestRef, user: CurrentUser, body: CommentIn | None = None
    ) -> RequestOut:
        r = use_cases.cancel_request(svc, user, request_id, body.comment if body else "")
        return request_out(app, r, user)

    @api.post(
        "/v1/requests/{request_id}/execute",
        response_model=ExecutionOut,
        tags=["execution"],
        responses=ERRORS,
    )
    def execute(request_id: RequestRef, user: CurrentUser) -> Response:
        """Signoff performs the approved action on its target (one use of the grant) and
        answers with the captured, masked result."""
        done = execution.execute_request(svc, app.executors, user, request_id)
        head = ExecutionOut(
            id=done.execution_id,
            request_id=done.request.id,
            actor=done.actor,
            started_at=done.started_at,
            finished_at=done.finished_at,
            ok=done.ok,
            summary=done.summary,
            output=None,
            output_digest=done.output_digest,
            request_status=done.request.status.value,
        ).model_dump_json(exclude={"output"})
        # The output goes out as the bytes already digested and stored (rows encoded
        # once, not validated and encoded again by FastAPI): spliced in as the last key.
        body = b"".join((head[:-1].encode(), b',"output":', done.output_json, b"}"))
        return Response(body, media_type="application/json")

    @api.get(
        "/v1/requests/{request_id}/executions",
        response_model=list[ExecutionOut],
        tags=["execution"],
        responses=ERRORS,
    )
    def executions(request_id: RequestRef, user: CurrentUser) -> list[ExecutionOut]:
        return [ExecutionOut(**r) for r in views.executions_of(svc, user, request_id)]

    @api.get("/v1/requests/{request_id}/events", tags=["requests"], responses=ERRORS)
    async def events(
        request_id: RequestRef,
        user: CurrentUser,
        last_event_id: Annotated[str | None, Header()] = None,
        after: Annotated[
            int | None,
            Query(ge=0, le=MAX_INT, description="start after this audit sequence number"),
        ] = None,
    ) -> EventSourceResponse:
        await run_in_threadpool(views.request_for, svc, user, request_id)  # 404 first
        start = after or 0
        if last_event_id:
            if not (last_event_id.isascii() and last_event_id.isdigit()) or (
                int(last_event_id) > MAX_INT
            ):
                raise InvalidInput(
                    "Last-Event-ID must be an audit sequence number (0 to 2^63-1)",
                    field="Last-Event-ID",
                )
            start = int(last_event_id)
        return EventSourceResponse(
            _stream(app, request_id, start, user),
            ping=int(max(1, app.settings.sse_keepalive_seconds)),
        )

    return api


async def _stream(
    app: App, request_id: str, start: int, viewer: User
) -> AsyncIterator[ServerSentEvent]:
    """Each audit event of the request after ``start``, as it is committed."""
    wake = app.bus.subscribe(request_id)
    last = start
    try:
        while True:
            wake.clear()
            batch, snapshot = await run_in_threadpool(_read_since, app, request_id, last, viewer)
            for ev in batch:
                last = ev["seq"]
                yield ServerSentEvent(
                    data=json.dumps({**ev, "request": snapshot}),
                    event=ev["type"],
                    id=str(ev["seq"]),
                )
            if snapshot["status"] in {s.value for s in FINAL}:
                return
            await wake.wait()
    finally:
        app.bus.unsubscribe(request_id, wake)


def _read_since(
    app: App, request_id: str, after: int, viewer: User
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    found = views.request_history(app.services, viewer, request_id, after)
    batch = [shown(e.as_dict()) for e in found.events]
    out = request_out(app, found.request, viewer)
    snapshot = {
        "status": out.status,
        "current_stage": out.current_stage,
        "still_needed": out.still_needed,
        "awaiting": out.awaiting,
        "votes": [v.model_dump(mode="json") for v in out.votes],
        "grant": out.grant.model_dump(mode="json") if out.grant else None,
        "at": datetime.now(UTC).isoformat(),
    }
    return batch, snapshot
