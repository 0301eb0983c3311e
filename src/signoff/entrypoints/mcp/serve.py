"""``signoff mcp serve``: Signoff's own tools, for an agent that plans a risky step and
asks first.

- ``request_approval(type, target, params, reason, ticket)``: submit; the answer says
  whether it is allowed, denied or waiting for whom, and carries the grant once there
  is one (the agent is the requester: the grant's token is its to redeem).
- ``get_request(request_id)``: where a request stands.
- ``wait_for_decision(request_id, timeout_seconds)``: wait live (progress notifications
  meanwhile); still pending at the end says so, it never pretends a decision.
- ``list_my_requests(status, limit)``: the agent's own requests, newest first.

Failures (a policy's refusal to accept the request, an unknown id) are tool errors
with the server's words, so the model can read and correct them.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from signoff import __version__
from signoff.domain.durations import brief
from signoff.domain.errors import SignoffError
from signoff.sdk._errors import TimedOut
from signoff.sdk.aio import AsyncClient
from signoff.sdk.models import Request

INSTRUCTIONS = (
    "Signoff approves sensitive actions just in time. Before an action that changes "
    "production, reads a secret or is otherwise risky, call request_approval with its "
    "type, target and params, then wait_for_decision. Act only when the status is "
    "'approved', with exactly the params you asked for: the grant is bound to them. "
    "A denied, cancelled or timed-out request means: do not act."
)
LIMIT = 100
StatusName = Literal[
    "pending",
    "approved",
    "denied",
    "cancelled",
    "timed_out",
    "executed",
    "failed",
    "expired",
    "revoked",
]


def shown(r: Request, base_url: str) -> dict[str, Any]:
    """A request as the agent reads it."""
    grant = None
    if r.grant is not None:
        grant = {
            "id": r.grant.id,
            "expires_at": r.grant.expires_at.isoformat(),
            "uses_left": r.grant.uses_left,
            "revoked": r.grant.revoked,
            "token": r.grant.token,
        }
    out: dict[str, Any] = {
        "id": r.id,
        "status": r.status.value,
        "action": r.action.as_dict(),
        "action_digest": r.action_digest,
        "outcome": r.outcome,
        "grant": grant,
        "url": f"{base_url}/requests/{r.id}",
        "created_at": r.created_at.isoformat(),
        "deadline_at": r.deadline_at.isoformat() if r.deadline_at else None,
    }
    if r.pending:
        out["still_needed"] = r.still_needed
        out["awaiting"] = list(r.awaiting)
    return out


def build(signoff: AsyncClient, max_wait: float = 3600.0) -> MCPServer:
    server = MCPServer("signoff", version=__version__, instructions=INSTRUCTIONS)
    base = signoff.url

    @server.tool()
    async def request_approval(
        type: str,
        target: str,
        params: dict[str, Any] | None = None,
        reason: str = "",
        ticket: str | None = None,
    ) -> dict[str, Any]:
        """Ask for approval of one action before taking it: its type (e.g. deploy,
        sql.execute), target (e.g. prod/api, pg/prod) and params (what exactly will
        run). Policies may allow it at once, deny it, or ask people; the answer says
        which. Give a reason: approvers read it."""
        try:
            r = await signoff.request(type, target, params or {}, reason=reason, ticket=ticket)
        except SignoffError as exc:
            raise ToolError(f"Signoff did not take the request: {exc}") from None
        return shown(r, base)

    @server.tool()
    async def get_request(request_id: str) -> dict[str, Any]:
        """Where a request stands: its status, who is still to decide, the outcome and
        the grant once approved."""
        try:
            return shown(await signoff.get(request_id), base)
        except SignoffError as exc:
            raise ToolError(str(exc)) from None

    @server.tool()
    async def wait_for_decision(
        request_id: str, ctx: Context, timeout_seconds: float = 300.0
    ) -> dict[str, Any]:
        """Wait until a request is decided (approved, denied, cancelled or timed out),
        at most timeout_seconds; reports progress while waiting. A request still
        pending at the end comes back with status 'pending': wait again or give up,
        never act on it."""
        timeout = max(0.0, min(float(timeout_seconds), max_wait))
        try:
            current = await signoff.get(request_id)
            started = time.monotonic()

            async def progress(r: Request) -> None:
                who = ", ".join(r.awaiting) or "the approvers"
                waited = min(time.monotonic() - started, timeout)
                await ctx.report_progress(
                    waited, timeout, f"request {r.id} is {r.status.value}; waiting for {who}"
                )

            if current.pending:
                await progress(current)
                try:
                    current = await signoff.wait(current, timeout=timeout, on_update=progress)
                except TimedOut:
                    current = await signoff.get(request_id)
        except SignoffError as exc:
            raise ToolError(str(exc)) from None
        out = shown(current, base)
        if current.pending:
            out["note"] = f"still pending after {brief(timeout)}: do not act on it yet"
        return out

    @server.tool()
    async def list_my_requests(status: StatusName | None = None, limit: int = 20) -> dict[str, Any]:
        """Your own requests, newest first; optionally only those in one status."""
        try:
            me = await signoff.me()
            page = await signoff.list(
                requester=me.name, status=status, limit=max(1, min(limit, LIMIT))
            )
        except SignoffError as exc:
            raise ToolError(str(exc)) from None
        return {"requests": [shown(r, base) for r in page.items]}

    return server
