"""GitHub deployments: a workflow run waits on an environment whose deployment protection
rule is Signoff's GitHub App; the rule's delivery becomes a request, and the request's
decision goes back to the run.

``gate_deployment`` turns one delivery (``DeploymentAsk``, parsed and verified by the
webhook endpoint) into a request ``deploy`` on ``github/OWNER/REPO/ENVIRONMENT`` with
params ``ref`` and ``sha``, made for the person whose GitHub login sent it (``github:`` in
the users file), else for the service identity, with the delivery's facts as requester
claims. The delivery is stored in the request's transaction; a delivery received before
(the same id, or the same run and environment) does nothing.

When the request is decided (approved, denied, timed out, cancelled), ``record_changes``
writes an outbox row for the ``github`` delivery in the deciding transaction, and the
dispatcher calls GitHub with its retries and dead letters (``adapters/github.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from signoff.domain.actions import Action
from signoff.domain.errors import NotFound
from signoff.domain.identity import User
from signoff.domain.requests import Request, Status
from signoff.services import views
from signoff.services.dependencies import Services
from signoff.services.ports import GitHubDelivery, UnitOfWork
from signoff.services.requests import submit_or_fold

ACTION_TYPE = "deploy"


@dataclass(frozen=True)
class Commit:
    sha: str
    message: str  # its first line


@dataclass(frozen=True)
class DeploymentAsk:
    """What a ``deployment_protection_rule`` delivery asks, as Signoff needs it."""

    delivery_id: str
    repository: str  # OWNER/REPO
    html_url: str  # the repository's page: https://github.com/OWNER/REPO
    environment: str
    run_id: int
    installation_id: int
    ref: str
    sha: str
    event: str  # what started the run: push, workflow_dispatch, pull_request, ...
    sender: str  # the GitHub login that triggered it
    base: str | None = None  # a commit or branch to compare with (a pull request's base)
    pull_requests: tuple[str, ...] = ()  # their pages
    commits: tuple[Commit, ...] = ()

    @property
    def target(self) -> str:
        return f"github/{self.repository}/{self.environment}"

    @property
    def run_url(self) -> str:
        return f"{self.html_url}/actions/runs/{self.run_id}"

    @property
    def changes_url(self) -> str:
        """The compare view from the base when one is known, else the commit."""
        if self.base:
            return f"{self.html_url}/compare/{self.base}...{self.sha}"
        return f"{self.html_url}/commit/{self.sha}"

    def claims(self) -> dict[str, Any]:
        """What policies read as ``requester.claims`` for a deployment's request."""
        return {
            "iss": "github",
            "repository": self.repository,
            "environment": self.environment,
            "sender": self.sender,
            "ref": self.ref,
            "sha": self.sha,
            "event": self.event,
            "run_id": self.run_id,
        }


@dataclass(frozen=True)
class Gated:
    """What became of a delivery: its request; ``replay``: it was received before and
    nothing was done; ``folded``: the same deployment was already pending, and this run
    waits on that request too."""

    request: Request
    replay: bool = False
    folded: bool = False


class _Received(Exception):
    """Raised inside the transaction when a concurrent twin stored the delivery first."""


def requester(svc: Services, ask: DeploymentAsk, service: str) -> User:
    """The person of the users file whose ``github:`` login sent it, else the service
    identity; either carries the delivery's facts as claims."""
    person = svc.directory.by_github(ask.sender)
    if person is not None:
        return replace(person, claims=ask.claims())
    return User(name=service, claims=ask.claims())


def action(ask: DeploymentAsk) -> Action:
    return Action(ACTION_TYPE, ask.target, {"ref": ask.ref, "sha": ask.sha})


def context(ask: DeploymentAsk) -> dict[str, Any]:
    """Links to the run, the changes and the pull requests; labels; the commits."""
    out: dict[str, Any] = {
        "links": [ask.run_url, ask.changes_url, *ask.pull_requests],
        "labels": {
            "repository": ask.repository,
            "environment": ask.environment,
            "ref": ask.ref,
            "sender": ask.sender,
            "event": ask.event,
        },
    }
    if ask.commits:
        out["commits"] = [{"sha": c.sha, "message": c.message} for c in ask.commits]
    return out


def reason(ask: DeploymentAsk) -> str:
    short = ask.sha[:7]
    return (
        f"GitHub deployment of {ask.ref} ({short}) to {ask.environment} in {ask.repository}, "
        f"triggered by {ask.sender} ({ask.event})"
    )


def gate_deployment(svc: Services, ask: DeploymentAsk, service: str) -> Gated:
    """The request that decides this run's deployment: made now, or the one a replay of
    this delivery (or another delivery for the same run and environment) made."""
    found = _earlier(svc, ask)
    rerun: Request | None = None
    if found is not None:
        delivery_id, earlier = found
        if earlier is None or delivery_id == ask.delivery_id or earlier.status is Status.PENDING:
            if earlier is None:
                raise NotFound(f"the request of GitHub delivery {delivery_id} is gone")
            return Gated(earlier, replay=True)
        # Another delivery for a run whose request was decided: the run's jobs were
        # re-run, and GitHub waits again. It is asked anew (replaying the old request
        # would leave the run waiting until GitHub gives up, 30 days on).
        rerun = earlier

    def attach(uow: UnitOfWork, request: Request) -> None:
        delivery = GitHubDelivery(
            delivery_id=ask.delivery_id,
            repository=ask.repository,
            environment=ask.environment,
            run_id=ask.run_id,
            installation_id=ask.installation_id,
            request_id=request.id,
            received_at=svc.clock.now(),
        )
        if rerun is not None:
            stored = uow.github.rerun(delivery, rerun.id)
        else:
            stored = uow.github.add(delivery)
        if not stored:
            raise _Received

    try:
        request, folded = submit_or_fold(
            svc,
            requester(svc, ask, service),
            action(ask),
            reason(ask),
            None,
            context(ask),
            attach,
        )
    except _Received:  # a twin delivery won the race: it made (or folded) the request
        again = _earlier(svc, ask)
        if again is None or again[1] is None:
            raise
        return Gated(again[1], replay=True)
    return Gated(request, folded=folded)


def _earlier(svc: Services, ask: DeploymentAsk) -> tuple[str, Request | None] | None:
    """The delivery stored for this delivery's id, or for its run and environment, and
    its request."""
    with svc.uow(write=False) as uow:
        found = uow.github.find(ask.delivery_id, ask.repository, ask.run_id, ask.environment)
    if found is None:
        return None
    return found[0], views.find_request(svc.uow, found[1])
