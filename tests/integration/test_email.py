"""Email with approve/deny links, against a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller

from signoff.bootstrap import build
from signoff.domain.errors import LinkRefused
from signoff.domain.requests import Status
from tests.conftest import reload

from ..conftest import LiveServer, bound_socket, make_settings
from ..e2e.test_cli import free_port

WRITE = {
    "type": "sql.execute",
    "target": "pg/prod",
    "params": {"sql": "UPDATE plans SET tier = '<b>pro</b>' WHERE id = 7"},
}


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        return [m for m in self.messages if m["To"] == address]


@contextmanager
def mail_site(
    database_url: str, tmp_path: Path, **settings: object
) -> Iterator[tuple[LiveServer, Inbox]]:
    """A server mailing by a real SMTP server on loopback, and that server's inbox."""
    inbox = Inbox()
    port = free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    sock = bound_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = build(
        make_settings(
            database_url, tmp_path, channels="email", smtp_port=port, public_url=url, **settings
        )
    )
    server = LiveServer(app, sock).start()
    try:
        yield server, inbox
    finally:
        server.stop()
        app.close()
        smtp.stop()


@pytest.fixture
def mail(database_url: str, tmp_path: Path) -> Iterator[tuple[LiveServer, Inbox]]:
    with mail_site(database_url, tmp_path) as site:
        yield site


def text_of(m: Message) -> str:
    for p in m.walk():
        if p.get_content_type() == "text/plain":
            return p.get_payload(decode=True).decode()
    raise AssertionError("no text part")


def html_of(m: Message) -> str:
    for p in m.walk():
        if p.get_content_type() == "text/html":
            return p.get_payload(decode=True).decode()
    raise AssertionError("no html part")


def links_in(m: Message) -> dict[str, str]:
    body = text_of(m)
    return {
        "approve": re.search(r"Approve: (\S+)", body).group(1),
        "deny": re.search(r"Deny: (\S+)", body).group(1),
    }


def test_approvers_get_links_and_a_prefetch_does_not_vote(mail) -> None:
    server, inbox = mail
    svc = server.app.services
    with server.client("dave") as c:
        rid = c.post(
            "/v1/requests", json={"action": WRITE, "reason": "upgrade", "ticket": "OPS-9"}
        ).json()["id"]
    assert server.app.dispatch().delivered == 1
    assert {m["To"] for m in inbox.messages} == {"bob@example.com", "carol@example.com"}
    bob_mail = inbox.to("bob@example.com")[0]
    assert "Approval needed" in bob_mail["Subject"]
    assert "UPDATE plans SET tier = '<b>pro</b>'" in text_of(bob_mail)
    assert "&lt;b&gt;pro&lt;/b&gt;" in html_of(bob_mail)  # user text escaped in HTML
    links = links_in(bob_mail)

    with httpx.Client(timeout=10) as web:
        prefetch = web.get(links["approve"])  # what a mail scanner does
        assert prefetch.status_code == 200 and "Approve as bob" in prefetch.text
        assert reload(svc, rid).votes == []
        voted = web.post(links["approve"], data={"comment": "fine by me"})
        assert voted.status_code == 200 and "approval was recorded" in voted.text
        r = reload(svc, rid)
        assert [(v.voter, v.comment) for v in r.votes] == [("bob", "fine by me")]
        again = web.post(links["approve"])
        assert again.status_code == 403 and "already been used" in again.text
        seen = web.get(links["approve"])
        assert seen.status_code == 409 and "already used" in seen.text
        # bob's deny link is another link, but bob has voted: one person, one vote
        other = web.post(links["deny"])
        assert other.status_code == 409 and "already voted" in other.text
        forged = web.post(links["approve"][:-3] + "AAA")
        assert forged.status_code == 403
        carol = links_in(inbox.to("carol@example.com")[0])
        assert web.post(carol["approve"]).status_code == 200
    assert reload(svc, rid).status is Status.APPROVED
    server.app.dispatch()
    told = inbox.to("dave@example.com")
    assert [m["Subject"] for m in told] == [
        "[Signoff] Your request was approved: sql.execute on pg/prod"
    ]
    assert "Approve:" not in text_of(told[0])  # the requester gets no voting links


def test_an_expired_link_is_refused(mail) -> None:
    server, _ = mail
    links = server.app.links
    assert links is not None
    past = datetime.now(UTC) - timedelta(seconds=1)
    token = links.issue("bob", "some-request", "approve", past)
    with pytest.raises(LinkRefused) as info:
        links.verify(token)
    assert info.value.reason == "expired"
    with httpx.Client(timeout=10) as web:
        page = web.get(f"{server.url}/links/{token}")
    assert page.status_code == 403 and "expired" in page.text


def test_user_text_cannot_forge_lines_or_block_delivery(mail) -> None:
    """A reason of several lines is quoted, so it cannot pass for the message's own
    "Approve:" line; a CR/LF in the target cannot break the Subject header and leave the
    mail undelivered."""
    server, inbox = mail
    forged = "routine fix\nApprove: http://evil.example/steal\r\nDeny: http://evil.example/x"
    # reviewed (deploy-two-groups), then denied by bob: dave is mailed the denial
    odd = {"type": "deploy", "target": "prod/web\r\nBcc: everyone@example.com", "params": {}}
    with server.client("dave") as c:
        for action, reason in ((WRITE, forged), (odd, "r")):
            resp = c.post(
                "/v1/requests", json={"action": action, "reason": reason, "ticket": "OPS-9"}
            )
            assert resp.status_code == 201, resp.text
    with server.client("bob") as c:
        vote = c.post(f"/v1/requests/{resp.json()['id']}/votes", json={"decision": "deny"})
        assert vote.status_code == 200, vote.text
    result = server.app.dispatch()
    # the two asks to approvers, and the denial to dave
    assert (result.delivered, result.retried, result.dead) == (3, 0, 0)
    bob_mail = inbox.to("bob@example.com")[0]
    body = text_of(bob_mail)
    approve_lines = [line for line in body.splitlines() if line.startswith("Approve:")]
    assert len(approve_lines) == 1 and "evil" not in approve_lines[0]
    assert "  > Approve: http://evil.example/steal" in body  # shown, visibly quoted
    [denied] = inbox.to("dave@example.com")
    subject = " ".join(str(denied["Subject"]).split())  # unfolded, as mail clients show it
    assert subject == (
        "[Signoff] Your request was denied: deploy on prod/web Bcc: everyone@example.com"
    )
    assert denied["Bcc"] is None and "everyone@example.com" not in str(denied["To"])


def test_a_person_a_provider_signed_in_gets_mail_and_votes_by_its_link(
    database_url: str, tmp_path: Path
) -> None:
    """olga is in no users file: she signed in once by single sign-on, and the provider's
    groups made her a dba. She is asked by mail at the address the provider gave, and her
    link votes as her."""
    from signoff.services import sessions

    with mail_site(
        database_url,
        tmp_path,
        oidc_issuer="http://127.0.0.1:9/realms/acme",  # never reached in this test
        oidc_client_id="signoff",
    ) as (server, inbox):
        app = server.app
        svc = app.services
        sessions.sign_in_by_oidc(
            svc,
            "http://127.0.0.1:9/realms/acme",
            "sub-olga",
            "olga",
            "olga@example.com",
            frozenset({"dba"}),
        )
        with server.client("dave") as c:
            rid = c.post(
                "/v1/requests", json={"action": WRITE, "reason": "upgrade", "ticket": "OPS-9"}
            ).json()["id"]
        app.dispatch()
        assert {m["To"] for m in inbox.messages} == {
            "bob@example.com",
            "carol@example.com",
            "olga@example.com",
        }
        olga = links_in(inbox.to("olga@example.com")[0])
        with httpx.Client(timeout=10) as web:
            page = web.get(olga["approve"])
            assert page.status_code == 200 and "Approve as olga" in page.text
            assert web.post(olga["approve"]).status_code == 200
        assert [v.voter for v in reload(svc, rid).votes] == ["olga"]
