"""The admin pages and the API tokens page, through the real server, signed in the way
people are (a one-time link, then the session cookie): only admins see the admin
pages; the explain form names the deciding policy and why the others did not match;
the audit log filters, pages, verifies and exports; a dead letter is retried and the
retry audited; a token made on the page works on /v1 until it is revoked there; a form
without the session's CSRF token is refused and changes nothing; bad input is answered
with a page that says what is wrong.

One server per database for the module: tests name their own requests and tokens."""

from __future__ import annotations

import html
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from signoff.adapters.db import tables as t
from signoff.bootstrap import App, build
from signoff.domain.actions import Action
from signoff.domain.audit import AuditEvent
from signoff.services import requests as use_cases
from signoff.services.dependencies import Services
from signoff.services.ports import ApiToken, FixedClock

from ..conftest import HttpRecorder, LiveServer, bound_socket, fresh_pg_database, make_settings

NOW = datetime.now(UTC).replace(microsecond=0)
ADMIN_PAGES = [
    "/admin/policies",
    "/admin/audit",
    "/admin/outbox",
    "/admin/people",
    "/admin/audit/export.jsonl",
]
ADMIN_FORMS = [
    "/admin/policies/explain",
    "/admin/audit/verify",
    "/admin/outbox/1/retry",
    "/admin/people/erin/sign-out",
]


@dataclass
class Site:
    app: App
    server: LiveServer
    receiver: HttpRecorder
    browsers: dict[str, httpx.Client] = field(default_factory=dict)

    @property
    def svc(self) -> Services:
        return self.app.services

    def web(self, person: str) -> httpx.Client:
        """A browser signed in as ``person`` (once per module): it keeps the cookie."""
        if person not in self.browsers:
            client = httpx.Client(base_url=self.server.url, timeout=30)
            signed = client.get(self.app.signin_link(person), follow_redirects=True)
            assert signed.status_code == 200, signed.text
            self.browsers[person] = client
        return self.browsers[person]

    def events(self, **match: object) -> list[AuditEvent]:
        with self.svc.uow(write=False) as uow:
            found = list(uow.audit.events())
        return [e for e in found if all(getattr(e, k) == v for k, v in match.items())]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("web-admin")
    with _database(request.param, tmp, sqlite_template) as url:
        receiver = HttpRecorder(fail_first=10**9)  # a receiver that never recovers
        sock = bound_socket()
        settings = make_settings(
            url,
            tmp,
            public_url=f"http://127.0.0.1:{sock.getsockname()[1]}",
            channels="log,webhook:siem",
            webhooks={"siem": {"url": f"{receiver.url}/hook", "secret": "s3cret-for-tests"}},
            outbox_max_attempts=1,
        )
        app = build(settings, clock=FixedClock(NOW))
        server = LiveServer(app, sock).start()
        site = Site(app, server, receiver)
        try:
            yield site
        finally:
            for client in site.browsers.values():
                client.close()
            server.stop()
            app.close()
            receiver.close()


class _database:
    """A database for the module: a copy of the migrated SQLite file, or a fresh
    PostgreSQL database (dropped after)."""

    def __init__(self, kind: str, tmp: Path, template: Path) -> None:
        self.kind, self.tmp, self.template = kind, tmp, template

    def __enter__(self) -> str:
        if self.kind == "sqlite":
            path = self.tmp / "signoff.db"
            shutil.copy(self.template, path)
            return f"sqlite:///{path}"
        self._pg = fresh_pg_database()
        return self._pg.__enter__()

    def __exit__(self, *exc: object) -> None:
        if self.kind != "sqlite":
            self._pg.__exit__(None, None, None)


def text_of(page: httpx.Response) -> str:
    """The page as a person reads it: tags dropped, entities decoded, spaces folded."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page.text)).split())


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, "no form on the page"
    return found.group(1)


def seqs_of(page: httpx.Response) -> list[int]:
    """The event numbers of the audit page's table, top to bottom."""
    return [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', page.text)]


def ask(
    site: Site, person: str, action: Action, reason: str = "", ticket: str | None = None
) -> str:
    svc = site.svc
    return use_cases.submit_request(svc, svc.directory.user(person), action, reason, ticket, {}).id


def is_error_page(page: httpx.Response, status: int) -> bool:
    return page.status_code == status and page.headers["content-type"].startswith("text/html")


# ----- who may -----------------------------------------------------------------------------


def test_only_admins_see_the_admin_pages_others_get_a_page_that_says_so(site: Site) -> None:
    bob = site.web("bob")
    for path in ADMIN_PAGES:
        answer = bob.get(path)
        assert is_error_page(answer, 403), path
        assert "Only admins may see this page." in text_of(answer)
    csrf = csrf_of(bob.get("/tokens"))
    for path in ADMIN_FORMS:
        answer = bob.post(path, data={"csrf": csrf, "type": "deploy", "target": "prod/web"})
        assert is_error_page(answer, 403), path
        assert "Only admins may see this page." in text_of(answer)
    # the navigation: Tokens for everyone, the admin pages for admins
    mine = bob.get("/tokens").text
    assert 'href="/tokens"' in mine
    assert not any(f'href="{p}"' in mine for p in ADMIN_PAGES[:4])
    theirs = site.web("alice").get("/tokens").text
    assert all(f'href="{p}"' in theirs for p in [*ADMIN_PAGES[:4], "/tokens"])
    # nobody signed in is sent to sign in, and back here after
    with httpx.Client(base_url=site.server.url) as anonymous:
        answer = anonymous.get("/admin/audit?actor=bob")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/signin?next=/admin/audit%3Factor%3Dbob"
        answer = anonymous.post("/admin/audit/verify", data={"csrf": "x"})
        assert answer.status_code == 303
        assert answer.headers["location"] == "/signin?next=/admin/audit"


# ----- policies --------------------------------------------------------------------------------


def test_the_policies_page_shows_the_loaded_set(site: Site) -> None:
    page = site.web("alice").get("/admin/policies")
    assert page.status_code == 200
    text = text_of(page)
    ps = site.svc.policies
    assert ps.digest in text
    for p in ps.policies:
        assert p.name in text
    assert 'Condition action.sql.kind == "read"' in text
    assert "Stage 1: dba 2 of group dba (bob, carol) deadline 30m" in text
    assert "ticket must match ^OPS-\\d+$" in text
    assert "Grant valid 15m, 1 use" in text


def explain(site: Site, **fields: str) -> httpx.Response:
    alice = site.web("alice")
    csrf = csrf_of(alice.get("/admin/policies"))
    return alice.post("/admin/policies/explain", data={"csrf": csrf, **fields})


def test_the_explain_form_shows_the_deciding_policy_and_why_earlier_ones_did_not_match(
    site: Site,
) -> None:
    answer = explain(
        site,
        type="sql.execute",
        target="pg/prod",
        params="sql=UPDATE accounts\n  SET balance = 0",
        requester="dave",
        ticket="OPS-1",
    )
    assert answer.status_code == 200
    text = text_of(answer)
    assert "REVIEW by prod-sql-write" in text
    assert "Matched policy 'prod-sql-write'. Requester: dave." in text
    assert "stage 1 dba: 2 of bob, carol" in text
    assert 'read-only-sql condition condition is false: action.sql.kind == "read"' in text
    # what was asked stays in the form
    assert "sql=UPDATE accounts\n  SET balance = 0</textarea>" in html.unescape(answer.text)

    allowed = text_of(explain(site, type="sql.execute", target="pg/prod", params="sql=SELECT 1"))
    assert "ALLOW by read-only-sql" in allowed and "None: the first policy" in allowed
    default = text_of(explain(site, type="nothing.known", target="x"))
    assert "No policy matched: default outcome." in default
    assert "forbidden-drop type type 'nothing.known' is not 'sql.drop'" in default


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"type": "deploy", "target": "prod/web", "params": "no equals sign"}, "params, line 1"),
        ({"type": "deploy", "target": "prod/web", "params": "a=1\na=2"}, "'a' is given twice"),
        ({"type": "deploy", "target": "prod\x00/web"}, "target contains a NUL character"),
        ({"type": "d" * 201, "target": "prod/web"}, "type is at most 200 characters"),
        ({"type": "", "target": "prod/web"}, "give the action's type"),
        ({"type": "deploy", "target": "prod/web", "requester": "zed"}, "nobody named 'zed'"),
        ({"type": "deploy", "target": "prod/web", "risk": "extreme"}, "risk is one of"),
        ({"type": "deploy", "target": "prod/web", "labels": "k=" + "v" * 201}, "labels: 'k'"),
    ],
)
def test_bad_explain_input_is_answered_with_a_page_that_says_what_is_wrong(
    site: Site, fields: dict[str, str], says: str
) -> None:
    answer = explain(site, **fields)
    assert is_error_page(answer, 422)
    assert says in text_of(answer)
    assert "Explain a decision" in text_of(answer)  # the form, to put it right


# ----- the audit log -------------------------------------------------------------------------


def test_the_audit_log_filters_by_request_actor_type_and_dates(site: Site) -> None:
    rid = ask(site, "dave", Action("deploy", "prod/api", {"version": "7"}), "ship it")
    alice = site.web("alice")

    by_request = alice.get("/admin/audit", params={"request": rid[:8]})
    assert by_request.status_code == 200
    linked = set(re.findall(r'href="/requests/([^"]+)"', by_request.text))
    assert linked == {rid}
    assert "request.submitted" in by_request.text

    mine = alice.get("/admin/audit", params={"actor": "dave", "type": "request.submitted"})
    submitted = site.events(actor="dave", type="request.submitted")
    assert seqs_of(mine) == [e.seq for e in reversed(submitted)]

    today = NOW.date().isoformat()
    tomorrow = (NOW + timedelta(days=1)).date().isoformat()
    within = alice.get("/admin/audit", params={"request": rid, "from": today, "to": today})
    assert seqs_of(within) == seqs_of(by_request)
    later = alice.get("/admin/audit", params={"request": rid, "from": tomorrow})
    assert seqs_of(later) == []
    assert "No event matches these filters." in text_of(later)


def test_the_audit_log_pages_by_sequence_number(site: Site) -> None:
    ask(site, "dave", Action("deploy", "prod/pages", {}), "a few events")
    alice = site.web("alice")
    every = [e.seq for e in reversed(site.events())]
    first = alice.get("/admin/audit", params={"limit": "2"})
    assert seqs_of(first) == every[:2]
    older = re.search(r'href="([^"]+)" rel="next"', first.text)
    assert older is not None
    second = alice.get(html.unescape(older.group(1)))
    assert seqs_of(second) == every[2:4]
    newer = re.search(r'href="([^"]+)" rel="prev"', second.text)
    assert newer is not None
    assert seqs_of(alice.get(html.unescape(newer.group(1)))) == every[:2]


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("type=bogus.event", "there is no event type 'bogus.event'"),
        ("before=abc", "before must be an event number"),
        ("before=99999999999999999999", "before must be an event number"),
        ("from=2026-13-01", "from: write a date as YYYY-MM-DD"),
        ("from=2026-05-02&to=2026-05-01", "the range ends before it starts"),
        ("request=abc", "too short to name a request"),
        ("request=ffffffff", "no request with an id starting 'ffffffff'"),
        ("limit=0", "limit is a number from 1 to 500"),
        ("before=5&after=2", "not both"),
    ],
)
def test_bad_audit_filters_are_answered_with_a_page_that_says_what_is_wrong(
    site: Site, query: str, says: str
) -> None:
    answer = site.web("alice").get(f"/admin/audit?{query}")
    assert answer.status_code in (404, 422) and "text/html" in answer.headers["content-type"]
    assert says in text_of(answer)
    assert "Filter" in text_of(answer)


def test_verify_reports_an_intact_log_and_the_first_broken_event(site: Site) -> None:
    ask(site, "dave", Action("deploy", "prod/verify", {}), "something to verify")
    alice = site.web("alice")
    csrf = csrf_of(alice.get("/admin/audit"))

    refused = alice.post("/admin/audit/verify", data={})
    assert is_error_page(refused, 403) and "security token" in text_of(refused)

    head = len(site.events())
    sound = alice.post("/admin/audit/verify", data={"csrf": csrf})
    assert sound.status_code == 200
    text = text_of(sound)
    assert f"Intact: {head} events" in text
    assert "agree with their audit events" in text

    victim = site.events(type="request.submitted")[-1]
    a = t.audit_events
    with site.app.engine.begin() as conn:
        conn.execute(sa.update(a).where(a.c.seq == victim.seq).values(actor="mallory"))
    try:
        broken = text_of(alice.post("/admin/audit/verify", data={"csrf": csrf}))
    finally:
        with site.app.engine.begin() as conn:
            conn.execute(sa.update(a).where(a.c.seq == victim.seq).values(actor=victim.actor))
    assert f"Broken at event {victim.seq} : event {victim.seq} was altered" in broken
    assert "The audit log does not hold" in broken


def test_the_export_is_the_whole_log_as_json_lines(site: Site) -> None:
    ask(site, "dave", Action("deploy", "prod/export", {}), "something to export")
    answer = site.web("alice").get("/admin/audit/export.jsonl")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/x-ndjson")
    assert answer.headers["content-disposition"].startswith('attachment; filename="signoff-audit-')
    lines = [json.loads(line) for line in answer.text.splitlines()]
    assert [e["seq"] for e in lines] == list(range(1, len(site.events()) + 1))
    assert lines[-1] == site.events()[-1].as_dict()


# ----- the outbox ----------------------------------------------------------------------------


def dead_row(site: Site, rid: str) -> dict[str, object]:
    with site.svc.uow(write=False) as uow:
        rows = uow.outbox.rows(None, 1000)
    [row] = [r for r in rows if r["request_id"] == rid and r["topic"] == "webhook:siem"]
    return row


def test_a_dead_letter_is_retried_from_the_page_and_the_retry_is_audited(site: Site) -> None:
    rid = ask(site, "frank", Action("sql.drop", "pg/prod", {}))  # denied: frank is told
    site.app.dispatch()  # the webhook answers 503 and has one attempt: a dead letter
    row = dead_row(site, rid)
    assert row["status"] == "dead"
    alice = site.web("alice")
    page = alice.get("/admin/outbox")
    assert page.status_code == 200
    assert f'action="/admin/outbox/{row["id"]}/retry"' in page.text
    assert "HTTP 503" in text_of(page)
    csrf = csrf_of(page)

    refused = alice.post(f"/admin/outbox/{row['id']}/retry", data={"csrf": "forged"})
    assert is_error_page(refused, 403)
    assert dead_row(site, rid)["status"] == "dead"
    assert site.events(type="outbox.requeued", request_id=rid) == []

    retried = alice.post(f"/admin/outbox/{row['id']}/retry", data={"csrf": csrf})
    assert retried.status_code == 303
    assert retried.headers["location"] == f"/admin/outbox?retried={row['id']}"
    again = dead_row(site, rid)
    assert (again["status"], again["attempts"]) == ("pending", 0)
    [audited] = site.events(type="outbox.requeued", request_id=rid)
    assert audited.actor == "alice"
    assert audited.payload_data() == {
        "outbox_id": row["id"],
        "channel": "webhook:siem",
        "attempts": 1,
        "event": "request.denied",
    }
    shown = text_of(alice.get(retried.headers["location"]))
    assert f"Notification {row['id']} is queued again" in shown
    log = alice.get("/admin/audit", params={"type": "outbox.requeued", "request": rid})
    assert seqs_of(log) == [audited.seq]

    twice = alice.post(f"/admin/outbox/{row['id']}/retry", data={"csrf": csrf})
    assert is_error_page(twice, 409) and "is not a dead letter" in text_of(twice)
    for wrong in ("abc", "99999999999", "0"):
        answer = alice.post(f"/admin/outbox/{wrong}/retry", data={"csrf": csrf})
        assert answer.status_code in (404, 409) and "Back to the outbox" in text_of(answer)


# ----- people ----------------------------------------------------------------------------------


def test_the_people_page_lists_the_directory(site: Site) -> None:
    text = text_of(site.web("alice").get("/admin/people"))
    for person in site.svc.directory.users:
        assert person in text
    assert "dba bob, carol" in text and "security erin" in text
    assert "alice alice@example.com admin" in text


# ----- API tokens ------------------------------------------------------------------------------


def token_on(page: httpx.Response) -> str:
    found = re.search(r'<pre class="secret">(so_[^<]+)</pre>', page.text)
    assert found, text_of(page)
    return found.group(1)


def api_status(site: Site, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=site.server.url, headers=headers) as api:
        return api.get("/v1/requests").status_code


def _tokens(site: Site, person: str) -> list[ApiToken]:
    with site.svc.uow(write=False) as uow:
        return uow.tokens.list(person, 100)


def tokens_of(site: Site, person: str) -> list[str]:
    """A person's tokens, newest first, as label:state."""
    return [f"{x.label}:{'revoked' if x.revoked_at else 'active'}" for x in _tokens(site, person)]


def test_a_token_made_on_the_page_works_until_it_is_revoked_there(site: Site) -> None:
    bob = site.web("bob")
    before = tokens_of(site, "bob")
    made = bob.post("/tokens", data={"csrf": csrf_of(bob.get("/tokens")), "label": "laptop"})
    assert made.status_code == 200
    token = token_on(made)
    assert "New token for bob" in text_of(made)
    assert api_status(site, token) == 200  # and now it is in this process's cache
    assert sorted(tokens_of(site, "bob")) == sorted(["laptop:active", *before])

    listed = bob.get("/tokens")
    assert token not in listed.text and "laptop" in text_of(listed)
    [mine] = [x for x in _tokens(site, "bob") if x.label == "laptop"]
    assert f"/tokens/{mine.id}/revoke" in listed.text
    [created] = [e for e in site.events(type="token.created") if e.actor == "bob"]
    assert created.payload_data() == {"user": "bob", "label": "laptop"}

    revoked = bob.post(f"/tokens/{mine.id}/revoke", data={"csrf": csrf_of(listed)})
    assert revoked.status_code == 303
    assert revoked.headers["location"] == f"/tokens?revoked={mine.id}"
    assert api_status(site, token) == 401  # at once, though it was cached a moment ago
    after = text_of(bob.get(revoked.headers["location"]))
    assert "The token 'laptop' is revoked: it no longer authenticates." in after
    [audited] = site.events(type="token.revoked")[-1:]
    assert audited.actor == "bob"
    assert audited.payload_data() == {"token_id": mine.id, "user": "bob", "label": "laptop"}

    again = bob.post(f"/tokens/{mine.id}/revoke", data={"csrf": csrf_of(listed)})
    assert is_error_page(again, 409) and "revoked already" in text_of(again)


def test_people_make_their_own_tokens_admins_anyones(site: Site) -> None:
    bob, alice = site.web("bob"), site.web("alice")
    for_dave = bob.post(
        "/tokens", data={"csrf": csrf_of(bob.get("/tokens")), "label": "x", "user": "dave"}
    )
    assert is_error_page(for_dave, 403)
    assert "only an admin may create an API token for someone else" in text_of(for_dave)
    assert "x:active" not in tokens_of(site, "dave")
    # bob's list is his own; he cannot revoke another's token, nor see it
    [alices] = [x for x in _tokens(site, "alice") if x.label == "tests"]
    page = bob.get("/tokens")
    assert "alice" not in text_of(page)
    hidden = bob.post(f"/tokens/{alices.id}/revoke", data={"csrf": csrf_of(page)})
    assert is_error_page(hidden, 404)
    assert api_status(site, site.server.tokens["alice"]) == 200

    made = alice.post(
        "/tokens", data={"csrf": csrf_of(alice.get("/tokens")), "label": "ci", "user": "dave"}
    )
    assert made.status_code == 200 and "New token for dave" in text_of(made)
    headers = {"Authorization": f"Bearer {token_on(made)}"}
    with httpx.Client(base_url=site.server.url, headers=headers) as api:
        assert api.get("/v1/requests").status_code == 200
    assert "ci:active" in tokens_of(site, "dave")
    [audited] = [e for e in site.events(type="token.created") if e.payload_data()["label"] == "ci"]
    assert audited.actor == "alice"


@pytest.mark.parametrize(
    ("label", "says"),
    [
        ("", "say what the token is for"),
        ("x" * 201, "label is at most 200 characters"),
        ("ci\x00", "label contains a NUL character"),
    ],
)
def test_a_bad_label_is_answered_with_a_page_that_says_what_is_wrong(
    site: Site, label: str, says: str
) -> None:
    bob = site.web("bob")
    before = tokens_of(site, "bob")
    answer = bob.post("/tokens", data={"csrf": csrf_of(bob.get("/tokens")), "label": label})
    assert is_error_page(answer, 422) and says in text_of(answer)
    assert tokens_of(site, "bob") == before


# ----- CSRF ------------------------------------------------------------------------------------


def test_forms_without_the_session_csrf_token_are_refused_and_change_nothing(site: Site) -> None:
    alice = site.web("alice")
    rid = ask(site, "frank", Action("sql.drop", "pg/csrf", {}))
    site.app.dispatch()
    dead = dead_row(site, rid)
    [token] = [x for x in _tokens(site, "bob") if x.label == "tests"]
    events = len(site.events())
    tokens = tokens_of(site, "dave")
    for path, data in [
        ("/tokens", {"label": "sneaky", "user": "dave"}),
        (f"/tokens/{token.id}/revoke", {}),
        (f"/admin/outbox/{dead['id']}/retry", {}),
        ("/admin/people/bob/sign-out", {}),
        ("/admin/audit/verify", {}),
        ("/admin/policies/explain", {"type": "deploy", "target": "prod/web"}),
    ]:
        for csrf in (None, "", "not-the-token"):
            sent = data if csrf is None else {**data, "csrf": csrf}
            answer = alice.post(path, data=sent)
            assert is_error_page(answer, 403), (path, csrf)
            assert "Nothing was changed" in text_of(answer)
    assert len(site.events()) == events
    assert tokens_of(site, "dave") == tokens
    assert dead_row(site, rid)["status"] == "dead"
    assert api_status(site, site.server.tokens["bob"]) == 200
