"""Slack direct messages, Microsoft Teams, Apprise, digests, quiet hours and requester
preferences, against real servers on loopback (a fake Slack Web API, an HTTP receiver
standing in for Teams and for Apprise's JSON target, aiosmtpd for mail)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml
from aiosmtpd.controller import Controller

from signoff.adapters.db import tables as t
from signoff.bootstrap import build
from signoff.domain.actions import Action
from signoff.domain.errors import InvalidInput
from signoff.domain.requests import Decision, Status
from signoff.services import requests as use_cases
from signoff.services.ports import FixedClock
from signoff.services.scheduler import sweep
from tests.conftest import reload

from ..conftest import FIXTURES, HttpRecorder, LiveServer, bound_socket, make_settings
from ..e2e.test_cli import free_port
from .test_email import Inbox, links_in, text_of
from .test_slack import FakeSlack

WRITE = Action(
    "sql.execute",
    "pg/prod",
    {"sql": "UPDATE t SET note = '<http://evil.example|ok> [click](http://evil.example)'"},
)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    yield fake
    fake.close()


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    box = Inbox()
    port = free_port()
    smtp = Controller(box, hostname="127.0.0.1", port=port)
    smtp.start()
    yield box, port
    smtp.stop()


def users_file(tmp_path: Path, **extra: dict[str, Any]) -> Path:
    """The fixture users, with extra profile fields for some of them."""
    doc = yaml.safe_load((FIXTURES / "users.yaml").read_text())
    for user in doc["users"]:
        user.update(extra.get(user["name"], {}))
    path = tmp_path / "users.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def submit(app, who: str, action: Action = WRITE, reason: str = "fix") -> str:
    svc = app.services
    return use_cases.submit_request(svc, svc.directory.user(who), action, reason, "OPS-1", {}).id


def vote(app, who: str, rid: str, decision: Decision = Decision.APPROVE, comment: str = ""):
    svc = app.services
    use_cases.cast_vote(svc, svc.directory.user(who), rid, decision, comment)


# ----- Slack direct messages ------------------------------------------------------------


def test_slack_dms_to_approvers_updated_in_place_across_a_restart(
    database_url: str, tmp_path: Path, slack: FakeSlack
) -> None:
    settings = make_settings(
        database_url,
        tmp_path,
        channels="slack:dm",
        slack_token="xoxb-test",
        slack_api_url=f"{slack.url}/api/",
    )
    app = build(settings)
    rid = submit(app, "dave")
    app.dispatch()
    posted = slack.named("chat.postMessage")
    assert sorted(m["channel"] for m in posted) == ["U_BOB", "U_CAROL"]  # found by email
    assert all('"approve"' in json.dumps(m["blocks"]) for m in posted)
    # user text is escaped for mrkdwn: no link can be forged in the message
    shown = json.dumps(posted[0]["blocks"])
    assert "<http://evil" not in shown and "&lt;http://evil.example|ok&gt;" in shown

    vote(app, "bob", rid)  # through the use case, as the API does
    app.dispatch()
    updates = slack.named("chat.update")
    assert sorted(u["channel"] for u in updates) == ["D_BOB", "D_CAROL"]
    assert all("bob approved" in json.dumps(u["blocks"]) for u in updates)
    app.close()

    app = build(settings)  # a restart: the DM references come from the database
    slack.calls.clear()
    vote(app, "carol", rid)
    app.dispatch()
    updates = slack.named("chat.update")
    assert sorted(u["channel"] for u in updates) == ["D_BOB", "D_CAROL"]
    assert all('"actions"' not in json.dumps(u["blocks"]) for u in updates)  # no buttons
    told = [m for m in slack.named("chat.postMessage") if m["channel"] == "U_DAVE"]
    assert len(told) == 1
    text = json.dumps(told[0]["blocks"])
    assert "Your request was approved" in text and "signoff grant redeem" in text
    app.close()


def test_slack_dm_reminders_go_in_the_thread(
    database_url: str, tmp_path: Path, slack: FakeSlack
) -> None:
    clock = FixedClock(datetime(2026, 11, 21, 9, 0, tzinfo=UTC))
    settings = make_settings(
        database_url,
        tmp_path,
        channels="slack:dm",
        slack_token="xoxb-test",
        slack_api_url=f"{slack.url}/api/",
    )
    app = build(settings, clock=clock)
    change = Action("config.change", "app/prod", {"key": "max_conns", "value": "200"})
    submit(app, "erin", change)
    app.dispatch()
    first = {m["channel"]: m for m in slack.named("chat.postMessage")}
    assert set(first) == {"U_BOB", "U_CAROL"}
    slack.calls.clear()
    clock.advance(minutes=10)
    assert sweep(app.services) == 1
    app.dispatch()
    reminders = [m for m in slack.named("chat.postMessage") if "thread_ts" in m]
    assert sorted(m["channel"] for m in reminders) == ["D_BOB", "D_CAROL"]
    assert all(m["text"].startswith("Reminder: approval needed") for m in reminders)
    app.close()


def test_requester_news_goes_where_they_prefer(
    database_url: str, tmp_path: Path, slack: FakeSlack, inbox
) -> None:
    box, port = inbox
    settings = make_settings(
        database_url,
        tmp_path,
        channels="email,slack:dm",
        users_file=users_file(tmp_path, dave={"notify": ["slack:dm"]}),
        smtp_port=port,
        slack_token="xoxb-test",
        slack_api_url=f"{slack.url}/api/",
    )
    app = build(settings)
    rid = submit(app, "dave")
    app.dispatch()
    assert sorted(m["To"] for m in box.messages) == ["bob@example.com", "carol@example.com"]
    vote(app, "bob", rid, Decision.DENY, "not on a Friday")
    app.dispatch()
    assert box.to("dave@example.com") == []  # dave prefers Slack
    told = [m for m in slack.named("chat.postMessage") if m["channel"] == "U_DAVE"]
    assert len(told) == 1
    assert "Denied by bob: not on a Friday" in json.dumps(told[0]["blocks"])
    app.close()


def test_a_user_preferring_an_unconfigured_channel_is_refused(
    database_url: str, tmp_path: Path
) -> None:
    users = users_file(tmp_path, dave={"notify": ["slack:dm"]})
    with pytest.raises(InvalidInput, match="user 'dave' prefers 'slack:dm'"):
        build(make_settings(database_url, tmp_path, channels="log", users_file=users))


# ----- Microsoft Teams --------------------------------------------------------------------


def test_teams_room_has_no_vote_links_and_personal_cards_vote(
    database_url: str, tmp_path: Path, receiver: HttpRecorder
) -> None:
    sock = bound_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = make_settings(
        database_url,
        tmp_path,
        channels="teams:ops,teams:dm",
        teams_webhooks={"ops": f"{receiver.url}/ops"},
        users_file=users_file(
            tmp_path,
            bob={"teams_webhook": f"{receiver.url}/bob"},
            carol={"teams_webhook": f"{receiver.url}/carol"},
        ),
        public_url=url,
    )
    server = LiveServer(build(settings), sock).start()
    app = server.app
    try:
        rid = submit(app, "dave")  # dave has no Teams webhook: his news goes nowhere
        assert app.dispatch().dead == 0
        [room] = receiver.at("/ops")
        content = room["attachments"][0]["content"]
        assert room["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"
        room_text = json.dumps(room)
        assert "/links/" not in room_text  # a shared room never gets a link that votes
        assert content["actions"] == [
            {
                "type": "Action.OpenUrl",
                "title": "Open in Signoff",
                "url": f"{url}/requests/{rid}",
            }
        ]
        assert "\\\\[click\\\\]" in room_text  # markdown in user text is escaped
        [bob_card] = receiver.at("/bob")
        actions = {a["title"]: a["url"] for a in bob_card["attachments"][0]["content"]["actions"]}
        assert set(actions) == {"Approve", "Deny", "Details"}
        with httpx.Client(timeout=10) as web:
            page = web.get(actions["Approve"])
            assert page.status_code == 200 and "Approve as bob" in page.text
            assert reload(app.services, rid).votes == []
            assert web.post(actions["Approve"]).status_code == 200
            [carol_card] = receiver.at("/carol")
            carol = {
                a["title"]: a["url"] for a in carol_card["attachments"][0]["content"]["actions"]
            }
            assert web.post(carol["Approve"]).status_code == 200
        assert reload(app.services, rid).status is Status.APPROVED
        app.dispatch()
        rooms = receiver.at("/ops")
        assert len(rooms) == 2  # the room hears how it ended
        ended = rooms[1]["attachments"][0]["content"]["body"]
        assert ended[0]["text"] == "Approved: sql\\.execute on pg/prod"  # for the room
        assert ended[1]["text"] == "Approved by carol\\."
        assert "grant redeem" not in json.dumps(rooms[1])  # the requester's steps are theirs
    finally:
        server.stop()
        app.close()


def test_a_failing_teams_webhook_is_retried(
    database_url: str, tmp_path: Path, receiver: HttpRecorder
) -> None:
    app = build(
        make_settings(
            database_url,
            tmp_path,
            channels="teams:ops",
            teams_webhooks={"ops": f"{receiver.url}/ops"},
        )
    )
    receiver.status = 500
    submit(app, "dave")
    result = app.dispatch()
    assert (result.delivered, result.retried) == (0, 1)
    with app.engine.connect() as conn:
        error = conn.execute(sa.select(t.outbox.c.last_error)).scalar_one()
    assert error.startswith("Teams: HTTP 500")
    app.close()


# ----- Apprise ----------------------------------------------------------------------------


def test_apprise_tells_a_room_with_a_link(
    database_url: str, tmp_path: Path, receiver: HttpRecorder
) -> None:
    app = build(
        make_settings(
            database_url,
            tmp_path,
            channels="apprise:room",
            apprise={"room": [f"json://127.0.0.1:{receiver.port}/room"]},
            public_url="https://signoff.example",
        )
    )
    rid = submit(app, "dave")
    assert app.dispatch().delivered == 1
    [body] = receiver.at("/room")
    assert body["title"] == "[Signoff] Approval needed: sql.execute on pg/prod"
    assert f"Details: https://signoff.example/requests/{rid}" in body["message"]
    assert "Waiting for: bob, carol" in body["message"]
    receiver.status = 503
    vote(app, "bob", rid, Decision.DENY, "no")
    result = app.dispatch()
    assert (result.delivered, result.retried) == (0, 1)  # retried later, not lost
    app.close()


def test_an_unknown_apprise_url_is_a_configuration_error(database_url: str, tmp_path: Path):
    with pytest.raises(InvalidInput, match="Apprise does not understand"):
        build(
            make_settings(
                database_url, tmp_path, channels="apprise:x", apprise={"x": ["nonsense://a"]}
            )
        )


# ----- digests and quiet hours ------------------------------------------------------------

REPORT = Action("report.publish", "reports/q3", {"draft": "v2"})


def mail_app(database_url: str, tmp_path: Path, port: int, clock: FixedClock, **overrides):
    settings = make_settings(database_url, tmp_path, channels="email", smtp_port=port, **overrides)
    return build(settings, clock=clock)


def test_digest_sends_one_mail_per_approver_per_window(
    database_url: str, tmp_path: Path, inbox
) -> None:
    box, port = inbox
    clock = FixedClock(datetime(2026, 11, 21, 9, 5, tzinfo=UTC))
    app = mail_app(database_url, tmp_path, port, clock)
    first = submit(app, "dave", REPORT)
    submit(app, "erin", Action("report.publish", "reports/q4", {"draft": "v1"}))
    submit(app, "alice", Action("report.publish", "reports/q2", {"draft": "v9"}))
    use_cases.cancel_request(app.services, app.services.directory.user("dave"), first, "not needed")
    app.dispatch()
    # nobody is asked yet; dave, who cancelled, is told at once
    assert [m["To"] for m in box.messages] == ["dave@example.com"]
    clock.advance(minutes=24)  # 09:29: the window is still open
    app.dispatch()
    assert len(box.messages) == 1
    clock.advance(minutes=1)  # 09:30: the window closes
    app.dispatch(limit=1)  # the rest of the window's rows are taken with the first
    digests = box.messages[1:]
    assert sorted(m["To"] for m in digests) == ["bob@example.com", "carol@example.com"]
    for m in digests:
        assert m["Subject"] == "[Signoff] 2 requests await your approval"
        body = text_of(m)
        assert "reports/q4" in body and "reports/q2" in body and "reports/q3" not in body
        assert body.count("Approve: ") == 2  # each request has its own links
    # a request alone in its window gets the ordinary message
    clock.advance(minutes=5)
    submit(app, "dave", Action("report.publish", "reports/q1", {"draft": "v1"}))
    clock.advance(minutes=30)
    app.dispatch()
    singles = box.messages[3:]
    assert len(singles) == 2
    assert all(m["Subject"].startswith("[Signoff] Approval needed") for m in singles)
    assert links_in(singles[0])["approve"]
    app.close()


def test_quiet_hours_hold_mail_until_they_end(database_url: str, tmp_path: Path, inbox) -> None:
    box, port = inbox
    clock = FixedClock(datetime(2026, 11, 21, 22, 30, tzinfo=UTC))  # 23:30 in Paris
    app = mail_app(
        database_url, tmp_path, port, clock, quiet_hours={"email": "22:00-07:00 Europe/Paris"}
    )
    submit(app, "dave")
    result = app.dispatch()
    assert (result.claimed, result.delivered, len(box.messages)) == (1, 0, 0)
    with app.engine.connect() as conn:
        row = conn.execute(sa.select(t.outbox.c.next_attempt_at, t.outbox.c.attempts)).one()
    assert row.next_attempt_at == datetime(2026, 11, 22, 6, 0, tzinfo=UTC)  # 07:00 Paris
    assert row.attempts == 0  # waiting is not a failed attempt
    clock.current = datetime(2026, 11, 22, 5, 59, tzinfo=UTC)
    assert app.dispatch().claimed == 0
    clock.current = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
    assert app.dispatch().delivered == 1
    assert sorted(m["To"] for m in box.messages) == ["bob@example.com", "carol@example.com"]
    app.close()


def test_bad_quiet_hours_are_a_configuration_error(database_url: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="SIGNOFF_QUIET_HOURS\\['log'\\]: invalid quiet hours"):
        build(make_settings(database_url, tmp_path, quiet_hours={"log": "late"}))
    with pytest.raises(InvalidInput, match="'email', which is not a configured channel"):
        build(make_settings(database_url, tmp_path, quiet_hours={"email": "22:00-07:00"}))


def test_requester_is_told_of_an_escalation(database_url: str, tmp_path: Path, inbox) -> None:
    box, port = inbox
    clock = FixedClock(datetime(2026, 11, 21, 9, 0, tzinfo=UTC))
    app = mail_app(database_url, tmp_path, port, clock)
    submit(app, "erin", Action("config.change", "app/prod", {"key": "k", "value": "v"}))
    clock.advance(minutes=30)
    while sweep(app.services):
        pass
    app.dispatch()
    [told] = [m for m in box.to("erin@example.com")]
    assert told["Subject"] == "[Signoff] Your request was escalated: config.change on app/prod"
    assert "alice, dave can now approve it too" in text_of(told)
    assert "Approve:" not in text_of(told)
    escalated = [m for m in box.messages if "Escalated to you" in m["Subject"]]
    assert sorted(m["To"] for m in escalated) == ["alice@example.com", "dave@example.com"]
    app.close()
