"""Every channel and page shows a request's whole context, from one rendering: action,
SQL and its analysis, reason, ticket, risk, links, labels, stage N of M with its
deadline and what happens then, votes so far and what is still needed.

The messages are the real outbox rows the use cases wrote, rendered by each channel.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from signoff.adapters.channels import messages as rendering
from signoff.adapters.channels.email import EmailChannel
from signoff.adapters.channels.slack import render as slack_render
from signoff.adapters.channels.teams import TeamsDirectChannel, section
from signoff.bootstrap import App
from signoff.domain.actions import Action
from signoff.domain.requests import Decision
from signoff.services import requests as use_cases
from signoff.services.messages import Message
from signoff.services.ports import FixedClock, Notification

from ..conftest import LiveServer, reload

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
SQL = "UPDATE plans SET tier = 'pro' WHERE id = 7"
CONTEXT = {
    "risk": "high",
    "links": ["https://runbooks.example/plans"],
    "labels": {"service": "billing", "team": "payments"},
}
# What a message about the freshly asked request must show, as text.
EXPECTED = [
    "sql.execute on pg/staged",
    SQL,
    "SQL: write",  # the analysis line
    "dave",
    "move customer 7 to pro",
    "OPS-77",
    "HIGH",
    "https://runbooks.example/plans",
    "service=billing, team=payments",
    "1 of 2: dba, until 2026-11-21 09:30 UTC, then escalates to alice",
    "1 more approval from bob or carol",
    "staged-sql",
]


@pytest.fixture
def world(staged_site: tuple[App, LiveServer, FixedClock]) -> tuple[App, LiveServer, FixedClock]:
    return staged_site


def ask(app: App) -> str:
    svc = app.services
    r = use_cases.submit_request(
        svc,
        svc.directory.user("dave"),
        Action("sql.execute", "pg/staged", {"sql": SQL}),
        "move customer 7 to pro",
        "OPS-77",
        CONTEXT,
    )
    return r.id


def last_message(app: App, rid: str, event: str) -> Message:
    with app.services.uow(write=False) as uow:
        rows = uow.outbox.rows(None, 500)
    for row in rows:  # newest first
        m = Message.from_payload(row["payload"])
        if row["request_id"] == rid and m.event == event:
            return m
    raise AssertionError(f"no {event} row for {rid}")


def vote_links(app: App) -> rendering.VoteLinks:
    return rendering.VoteLinks(
        app.links, app.services.clock.now, app.settings.public_url, timedelta(hours=1)
    )


def text_of_mail(app: App, m: Message, person: str) -> str:
    channel = EmailChannel(
        directory=app.directory,
        vote_links=vote_links(app),
        public_url=app.settings.public_url,
        sender="signoff@example.com",
        host="127.0.0.1",
        port=1,
    )
    [mail] = [x for x in channel.messages(_note(m, person)) if x["To"] == f"{person}@example.com"]
    parts = {p.get_content_type(): p.get_content() for p in mail.walk() if not p.is_multipart()}
    return parts["text/plain"] + "\n" + parts["text/html"]


def _note(m: Message, person: str) -> Notification:
    return Notification(1, "x", m.request.id, m.to_people(m.audience, [person]).payload(), 1)


def teams_text(app: App, m: Message, person: str) -> str:
    """The card's text as Teams shows it (markdown escapes resolved)."""
    channel = TeamsDirectChannel(app.directory, vote_links(app), app.settings.public_url)
    found: list[str] = []
    for block in section(m):
        if block["type"] == "FactSet":
            found += [f"{f['title']}: {f['value']}" for f in block["facts"]]
        else:
            found.append(block["text"])
    found += [a["url"] for a in channel._actions(person, m)]
    return re.sub(r"\\(.)", r"\1", "\n".join(found))


def slack_text(app: App, rid: str) -> str:
    """The text of the Slack message's blocks, as Slack shows it (entities decoded)."""
    import html as h

    _, blocks = slack_render(reload(app.services, rid), "https://x/requests/1")
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                found.append(node["text"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(blocks)
    return h.unescape(" ".join(found).replace("*", ""))


def page_text(html: str) -> str:
    """The page as a person reads it: tags dropped, entities decoded."""
    import html as h

    return h.unescape(re.sub(r"<[^>]+>", " ", html))


def missing(text: str, expected: list[str]) -> list[str]:
    flat = " ".join(text.split())
    return [e for e in expected if " ".join(e.split()) not in flat]


def test_every_channel_and_page_shows_the_whole_context(world) -> None:
    app, _, _ = world
    rid = ask(app)
    asked = last_message(app, rid, "request.submitted")
    assert missing(text_of_mail(app, asked, "bob"), EXPECTED) == []
    assert missing(teams_text(app, asked, "bob"), EXPECTED) == []
    assert missing(slack_text(app, rid), EXPECTED) == []
    links = vote_links(app)("bob", asked)
    assert links is not None
    with httpx.Client(timeout=10) as web:
        confirm = web.get(links["approve"])
        assert confirm.status_code == 200
        assert missing(page_text(confirm.text), EXPECTED) == []
        details = web.get(vote_links(app).view("bob", asked))
        assert details.status_code == 200
        assert missing(page_text(details.text), EXPECTED) == []
        # bob approves on the page: the answer names the next stage, not a bare count
        voted = web.post(links["approve"], data={"comment": "checked the runbook"})
    assert voted.status_code == 200
    after = page_text(voted.text)
    assert (
        missing(
            after,
            [
                "Stage 2 of 2 (security) is now asked: 1 more approval from erin.",
                "2 of 2: security",
                "bob approved (stage 1): checked the runbook",
            ],
        )
        == []
    ), after

    advanced = last_message(app, rid, "stage.advanced")
    erin_mail = text_of_mail(app, advanced, "erin")
    assert "Approval needed (stage 2 of 2: security)" in erin_mail
    assert (
        missing(erin_mail, ["bob approved (stage 1): checked the runbook", "HIGH", "OPS-77"]) == []
    )


def test_a_denial_says_who_and_why_everywhere(world) -> None:
    app, server, _ = world
    rid = ask(app)
    svc = app.services
    use_cases.cast_vote(svc, svc.directory.user("carol"), rid, Decision.DENY, "not during the sale")
    denied = last_message(app, rid, "request.denied")
    mail = text_of_mail(app, denied, "dave")
    assert "Denied by carol: not during the sale." in mail
    with server.client("dave") as c:
        body = c.get(f"/v1/requests/{rid}").json()
    assert body["outcome"] == "denied by carol: not during the sale"


def test_the_details_page_is_for_the_person_it_was_signed_for(world) -> None:
    app, server, _ = world
    rid = ask(app)
    asked = last_message(app, rid, "request.submitted")
    links = vote_links(app)
    with httpx.Client(timeout=10) as web:
        bare = web.get(f"{server.url}/requests/{rid}", follow_redirects=True)
        assert bare.status_code == 401 and "text/html" in bare.headers["content-type"]
        assert str(bare.url).endswith(f"/signin?next=/requests/{rid}")
        assert f"signoff signin-link --user YOUR_NAME --next /requests/{rid}" in page_text(
            bare.text
        )
        # frank is asked nothing and is not a viewer: his link shows him nothing
        franks = web.get(links.view("frank", asked))
        assert franks.status_code == 404 and SQL not in franks.text
        # a view link is not a vote
        token = links.view("bob", asked).split("?t=", 1)[1]
        assert web.post(f"{server.url}/links/{token}").status_code == 403
        assert reload(app.services, rid).votes == []
        # a view link for another request shows nothing of it
        other = ask_other(app)
        wrong = web.get(f"{server.url}/requests/{other}?t={token}")
        assert wrong.status_code == 403 and SQL not in wrong.text
        ok = web.get(links.view("bob", asked))
    assert ok.status_code == 200
    assert ok.headers["content-security-policy"].startswith("default-src 'none'")
    assert ok.headers["x-frame-options"] == "DENY"
    assert ok.headers["referrer-policy"] == "no-referrer"
    text = page_text(ok.text)
    assert f"signoff approve {rid}" in text  # bob can vote: the page says how


def ask_other(app: App) -> str:
    svc = app.services
    return use_cases.submit_request(
        svc,
        svc.directory.user("dave"),
        Action("sql.execute", "pg/staged", {"sql": "SELECT 2"}),
        "r",
        "OPS-1",
        {},
    ).id


def test_after_an_escalation_every_view_names_who_joined(world) -> None:
    from signoff.services.scheduler import sweep

    app, server, clock = world
    rid = ask(app)
    clock.advance(minutes=31)
    assert sweep(app.services) >= 1
    escalated = last_message(app, rid, "stage.escalated")
    told = escalated.to_people("requester", ["dave"])
    assert "Nobody answered in time; alice can now approve it too." in text_of_mail(
        app, told, "dave"
    )
    with server.client("dave") as c:
        stage = c.get(f"/v1/requests/{rid}").json()["stages"][0]
    assert stage["approvers"] == ["alice", "bob", "carol"] and stage["escalated"] is True
    assert stage["escalate_to"] == ["alice"]
    asked = text_of_mail(app, escalated.to_people("approvers", ["alice"]), "alice")
    assert "1 of 2: dba (escalated)" in asked
    assert "1 more approval from alice or bob or carol" in asked
