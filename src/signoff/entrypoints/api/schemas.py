"""Request and response bodies of the HTTP API (v1)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from signoff.domain.limits import check_json, check_text
from signoff.domain.requests import MAX_TEXT


def _no_nul(value: Any, path: str) -> None:
    if isinstance(value, str):
        check_text(value, path)
    elif isinstance(value, dict):
        for k, v in value.items():
            _no_nul(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _no_nul(v, f"{path}[{i}]")


class _In(BaseModel):
    """Every request body: unknown fields refused, and no text with a NUL character."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _refuse_nul(self) -> _In:
        for name, value in self.__dict__.items():
            if not isinstance(value, BaseModel):  # nested models check themselves
                _no_nul(value, name)
        return self


def _params(value: dict[str, Any]) -> dict[str, Any]:
    return check_json(value, "params")  # type: ignore[no-any-return]


class ActionIn(_In):
    type: Annotated[str, Field(min_length=1, max_length=200, examples=["sql.execute"])]
    target: Annotated[str, Field(min_length=1, max_length=500, examples=["postgres/prod-main"])]
    params: Annotated[dict[str, Any], AfterValidator(_params)] = Field(default_factory=dict)


class ContextIn(_In):
    links: list[Annotated[str, Field(max_length=2000)]] = Field(default_factory=list)
    diff: Annotated[str, Field(max_length=200_000)] | None = None
    labels: dict[str, Annotated[str, Field(max_length=200)]] = Field(default_factory=dict)
    risk: Literal["low", "medium", "high", "critical"] | None = None


class RequestCreate(_In):
    action: ActionIn
    reason: Annotated[str, Field(max_length=MAX_TEXT)] = ""
    ticket: Annotated[str, Field(max_length=200)] | None = None
    context: ContextIn = Field(default_factory=ContextIn)
    redeem: bool = Field(
        False,
        description="When a policy allows the action at once, also spend one use of its "
        "grant now, in the same transaction (for a caller about to perform the action "
        "itself, like the MCP proxy): one round trip instead of a request and a redeem. "
        "The answer's `redeemed` says whether a use was taken.",
    )


class VoteCreate(_In):
    decision: Literal["approve", "deny"]
    comment: Annotated[str, Field(max_length=MAX_TEXT)] = ""


class CommentIn(_In):
    comment: Annotated[str, Field(max_length=MAX_TEXT)] = ""


class RedeemIn(_In):
    token: Annotated[str, Field(min_length=1, max_length=8000)]
    action: ActionIn


class EvaluateIn(_In):
    action: ActionIn
    as_user: Annotated[str | None, Field(alias="as", max_length=100)] = None
    ticket: str | None = None
    context: ContextIn = Field(default_factory=ContextIn)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class VoteOut(BaseModel):
    voter: str
    decision: str
    comment: str
    stage: int
    at: datetime


class StageOut(BaseModel):
    name: str
    approvers: list[str] = Field(
        description="Who may approve in this stage now: its approvers, and once the stage "
        "has escalated, the people its escalation added."
    )
    escalate_to: list[str] = Field(
        default_factory=list,
        description="Who joins the approvers when the stage reaches its deadline unanswered.",
    )
    escalated: bool = False
    quorum: int
    timeout_seconds: float | None
    approvals: list[str]


class GrantOut(BaseModel):
    id: str
    expires_at: datetime
    uses_total: int
    uses_left: int
    revoked: bool
    token: str | None = Field(
        None, description="The signed grant token; shown to the requester and admins only."
    )


class TimelineEntry(BaseModel):
    seq: int
    at: str
    actor: str
    type: str
    payload: dict[str, Any]


class RequestOut(BaseModel):
    id: str
    status: str
    requester: str
    action: dict[str, Any]
    action_digest: str
    reason: str
    ticket: str | None
    context: dict[str, Any]
    policy: str
    policy_set_digest: str
    stages: list[StageOut]
    current_stage: int
    still_needed: int
    awaiting: list[str]
    votes: list[VoteOut]
    grant: GrantOut | None
    created_at: datetime
    decided_at: datetime | None
    deadline_at: datetime | None
    outcome: str | None = Field(
        None,
        description="Why the request is in its state, in one line: who decided and their "
        "comment, the policy that denied it and why, what timed out. Null while pending.",
    )
    version: int
    redeemed: bool | None = Field(
        None,
        description="Set on a submission that asked to `redeem`: whether one use of the "
        "grant was spent for it.",
    )
    fold_count: int = Field(
        0,
        description="How many more times the requester asked for this same action "
        "while it was pending (folded here instead of asking approvers again).",
    )
    timeline: list[TimelineEntry] | None = None


class RequestPage(BaseModel):
    items: list[RequestOut]
    next_cursor: str | None


class RedeemOut(BaseModel):
    ok: bool
    request_id: str
    grant_id: str
    uses_left: int
    status: str


class ExecutionOut(BaseModel):
    id: str
    request_id: str
    actor: str
    started_at: datetime
    finished_at: datetime | None
    ok: bool | None = Field(description="None: it started and no outcome was recorded")
    summary: str | None
    output: dict[str, Any] | None = Field(
        description="rows (columns, rows, truncated), rowcount/status, exit/stdout/stderr, "
        "or status/body; masked"
    )
    output_digest: str | None = Field(description="SHA-256 of the canonical JSON output")
    request_status: str | None = None


class TokenOut(BaseModel):
    user: str
    token: str


class ReplayIn(BaseModel):
    """A candidate policy set, as its files' names and texts, and the window to replay."""

    model_config = ConfigDict(extra="forbid")
    files: dict[
        Annotated[str, StringConstraints(max_length=100)],
        Annotated[str, StringConstraints(max_length=2_000_000)],
    ] = Field(max_length=500)
    since: str = Field("30d", max_length=40)
    until: str | None = Field(None, max_length=40)
