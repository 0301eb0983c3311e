"""The requester's pages on a real server: New request (the form, its dry run, its
refusals), My requests (own requests only, filter, pages, live), and Cancel and Execute
on the request page. Each person signs in with a one-time link, as in a browser."""

from __future__ import annotations

import html
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from markupsafe import escape

from signoff.bootstrap import App, build
from signoff.domain.actions import Action
from signoff.domain.requests import Request, Status
from signoff.services import requests as use_cases

from ..conftest import FIXTURES, LiveServer, bound_socket, make_settings, reload
from .test_gateway import targets_file

Site = tuple[App, LiveServer]


def _site(database_url: str, tmp_path: Path, **overrides: object) -> Iterator[Site]:
    sock = bound_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = build(make_settings(database_url, tmp_path, public_url=url, **overrides))
    server = LiveServer(app, sock).start()
    try:
        yield app, server
    finally:
        server.stop()
        app.close()


@pytest.fixture
def site(database_url: str, tmp_path: Path) -> Iterator[Site]:
    yield from _site(database_url, tmp_path)


@contextmanager
def browser(app: App, person: str) -> Iterator[httpx.Client]:
    """A client signed in as ``person`` through a sign-in link (it keeps the cookie)."""
    with httpx.Client(base_url=app.settings.public_url, follow_redirects=True, timeout=30) as c:
        landed = c.get(app.signin_link(person))
        assert landed.status_code == 200, landed.text
        yield c


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1)


def text_of(page: str) -> str:
    """The page as a person reads it: tags dropped, entities decoded, spaces folded."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def field_error(page: str, name: str) -> str | None:
    found = re.search(rf'id="{name}-error">([^<]*)<', page)
    return html.unescape(found.group(1)) if found else None


def stored(app: App) -> list[Request]:
    with app.services.uow(write=False) as uow:
        return uow.requests.list(
            status=None, requester=None, awaiting=None, cursor=None, limit=1000
        ).items


WRITE = {
    "type": "sql.execute",
    "target": "pg/prod",
    "params": "sql=UPDATE plans SET tier = 'pro'\n WHERE id = 7\nnote=one line",
    "reason": "move customer 7 to pro",
    "ticket": "OPS-12",
    "risk": "high",
    "links": "https://runbooks.example/plans\r\n\r\nhttps://tickets.example/OPS-12",
    "labels": "service=billing\nteam = payments",
}


def send(client: httpx.Client, **fields: str) -> httpx.Response:
    form = client.get("/new")
    return client.post("/new", data={"csrf": csrf_of(form.text), "do": "ask", **fields})


def test_a_request_sent_through_the_form_lands_on_its_page(site: Site) -> None:
    app, _ = site
    with browser(app, "dave") as dave:
        form = dave.get("/new")
        assert form.status_code == 200
        # the policies' action types and the nav entries are offered
        assert '<option value="sql.execute">' in form.text
        assert '<option value="secret.read">' in form.text
        assert 'href="/new" aria-current="page"' in form.text
        assert 'href="/mine"' in form.text
        landed = send(dave, **WRITE)
    assert landed.status_code == 200
    [r] = stored(app)
    assert landed.url.path == f"/requests/{r.id}"
    assert r.requester == "dave" and r.status is Status.PENDING
    assert r.action.as_dict() == {
        "type": "sql.execute",
        "target": "pg/prod",
        "params": {"sql": "UPDATE plans SET tier = 'pro'\nWHERE id = 7", "note": "one line"},
    }
    assert (r.reason, r.ticket) == ("move customer 7 to pro", "OPS-12")
    assert r.context == {
        "links": ["https://runbooks.example/plans", "https://tickets.example/OPS-12"],
        "labels": {"service": "billing", "team": "payments"},
        "risk": "high",
    }
    page = text_of(landed.text)
    assert "Your request was sent: this page follows it live." in page
    assert "2 more approvals from bob or carol" in page
    assert f'data-live="/requests/{r.id}/live"' in landed.text


def test_a_command_takes_one_argument_per_line(tmp_path: Path, database_url: str) -> None:
    rules = tmp_path / "policies"
    rules.mkdir()
    (rules / "10.yaml").write_text(
        "policies:\n"
        "  - name: commands\n"
        "    match: {type: command.run}\n"
        "    outcome: review\n"
        "    review: {stages: [{approvers: {groups: [dba]}, quorum: 1}]}\n"
        "default: {outcome: deny}\n"
    )
    for app, _ in _site(database_url, tmp_path, policies_dir=rules):
        with browser(app, "dave") as dave:
            landed = send(
                dave,
                type="command.run",
                target="ops/restart",
                params="/usr/bin/systemctl\r\nrestart\n\napp server.service\n",
            )
        assert landed.status_code == 200
        [r] = stored(app)
        assert r.action.params == {"argv": ["/usr/bin/systemctl", "restart", "app server.service"]}


def preview(client: httpx.Client, **fields: str) -> str:
    answer = client.get("/new/preview", params=fields)
    assert answer.status_code == 200
    assert answer.headers["content-security-policy"].startswith("default-src 'none'")
    return text_of(answer.text)


def test_the_dry_run_says_what_the_policies_would_decide(site: Site) -> None:
    app, _ = site
    with browser(app, "dave") as dave:
        assert "Fill in the type and the target" in preview(dave)
        read = preview(dave, type="sql.execute", target="pg/prod", params="sql=SELECT 1")
        assert "Allowed by policy read-only-sql: approved as soon as you send it." in read
        write = preview(dave, type="sql.execute", target="pg/prod", params="sql=DELETE FROM t")
        assert "Review under policy prod-sql-write: 2 approvals from dba (bob, carol)" in write
        assert r"A ticket matching ^OPS-\d+$ is required: none given yet." in write
        assert "A reason is required (policy prod-sql-write)." in write
        assert "read-only-sql: condition is false" in write  # why not the earlier one
        ready = preview(
            dave,
            type="sql.execute",
            target="pg/prod",
            params="sql=DELETE FROM t",
            ticket="OPS-9",
            reason="cleanup",
        )
        assert r"A ticket matching ^OPS-\d+$ is required: OPS-9 matches." in ready
        assert "none given yet" not in ready and "A reason is required (" not in ready
        staged = preview(dave, type="secret.read", target="vault/db")
        assert (
            "Review under policy staged-secret: 1 approval from dba (bob, carol), "
            "then 1 approval from security (erin)." in staged
        )
        denied = preview(dave, type="sql.drop", target="pg/prod")
        assert "Denied: policy 'forbidden-drop' denies it." in denied
        nothing = preview(dave, type="no.such.type", target="x")
        assert "Denied: no policy matched, and the default outcome is deny." in nothing
        broken = preview(dave, type="sql.execute", target="pg/prod", params="no equals sign")
        assert "Not checked yet: params: line 1: write key=value" in broken
        # without a script, Check shows the same on the whole page and stores nothing
        form = dave.get("/new")
        checked = dave.post(
            "/new",
            data={"csrf": csrf_of(form.text), "do": "check", **WRITE, "ticket": ""},
        )
    assert checked.status_code == 200
    assert r"A ticket matching ^OPS-\d+$ is required: none given yet." in text_of(checked.text)
    assert "move customer 7 to pro</textarea>" in checked.text  # the values are kept
    assert stored(app) == []
    with browser(app, "bob") as bob:
        # bob is one of the two dba: without him the stage cannot reach its quorum
        short = preview(bob, type="sql.execute", target="pg/prod", params="sql=DELETE FROM t")
    assert "2 approvals from dba (carol)" in short
    assert "Stage 1 (dba) needs 2 approvers other than you" in short


def test_the_dry_run_needs_a_session(site: Site) -> None:
    _, server = site
    with httpx.Client(base_url=server.url) as anonymous:
        answer = anonymous.get("/new/preview", params={"type": "sql.drop", "target": "x"})
        form = anonymous.get("/new")
    assert answer.status_code == 401 and "Denied" not in answer.text
    assert form.status_code == 303 and form.headers["location"] == "/signin?next=/new"


REFUSED = [
    ({"ticket": ""}, "ticket", "requires a ticket matching the pattern ^OPS-\\d+$"),
    ({"ticket": "JIRA-1"}, "ticket", "got 'JIRA-1'"),
    ({"reason": " "}, "reason", "requires a reason"),
    ({"type": ""}, "type", "say what kind of action this is"),
    ({"target": "  "}, "target", "say where it runs"),
    ({"type": "x" * 201}, "type", "at most 200 characters"),
    ({"ticket": "OPS-" + "1" * 300}, "ticket", "at most 200 characters"),
    ({"reason": "why\x00"}, "reason", "NUL character"),
    ({"params": "sql=SELECT\x00 1"}, "params", "NUL character"),
    ({"params": "just words"}, "params", "line 1: write key=value"),
    ({"params": " leading"}, "params", "no key=value line above it"),
    ({"params": "a=1\na=2"}, "params", "line 2: a is given twice"),
    ({"params": "{not json"}, "params", "not a JSON object"),
    ({"params": "[1, 2]"}, "params", "write key=value"),
    ({"params": "[" * 50_000 + "]" * 50_000}, "params", "write key=value"),
    ({"params": '{"a": ' * 40 + "1" + "}" * 40}, "params", "nested deeper than 32"),
    ({"params": '{"a":' * 20_000}, "params", "not a JSON object"),  # too deep to parse
    ({"params": "x=1\n" * 10_001}, "params", "at most 10000 lines"),
    ({"risk": "extreme"}, "risk", "one of low, medium, high, critical"),
    ({"links": "https://x\n" * 101}, "links", "at most 100 lines"),
    ({"links": "https://" + "x" * 2000}, "links", "link 1: at most 2000 characters"),
    ({"labels": "team"}, "labels", "line 1: write key=value"),
    ({"labels": "team=" + "x" * 201}, "labels", "team: at most 200 characters"),
    ({"labels": "team\x00=x"}, "labels", "NUL character"),
]


@pytest.mark.parametrize(("change", "name", "message"), REFUSED)
def test_a_refused_request_is_the_form_again_with_the_message_at_its_field(
    site: Site, change: dict[str, str], name: str, message: str
) -> None:
    app, _ = site
    sent = {**WRITE, **change}
    with browser(app, "dave") as dave:
        answer = send(dave, **sent)
    assert answer.status_code == 422, answer.text[:500]
    assert answer.url.path == "/new"
    said = field_error(answer.text, name)
    assert said is not None and message in said, (said, text_of(answer.text)[:800])
    assert f'aria-describedby="{name}-error {name}-hint" autofocus' in answer.text
    assert re.search(rf'Not sent: <a href="#{name}">\w+</a> needs a change', answer.text)
    assert "--ticket" not in answer.text  # the CLI's option means nothing here
    # every value is kept as it was typed (line ends as a browser sends them: \n)
    for key, value in sent.items():
        if key != "risk" and len(value) < 5000 and "\x00" not in value:
            shown = str(escape(value.replace("\r\n", "\n")))
            assert shown in answer.text, key
    assert stored(app) == []


def test_an_unknown_target_is_refused_with_what_was_meant(
    database_url: str, tmp_path: Path, target_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCRATCH_DSN", target_db)
    monkeypatch.setenv("RESTART_TOKEN", "x")
    monkeypatch.setenv("DEPLOY_TOKEN", "x")
    for app, _ in _site(
        database_url,
        tmp_path,
        policies_dir=FIXTURES / "gateway",
        targets_file=targets_file(tmp_path),
    ):
        with browser(app, "dave") as dave:
            form = dave.get("/new")
            assert '<option value="pg/scratch">' in form.text  # the configured targets
            typo = {"type": "sql.execute", "target": "pg/scrach", "params": "sql=SELECT 1"}
            dry = preview(dave, **typo)
            answer = send(dave, **typo)
            argv = send(dave, type="command.run", target="ops/restart", params="/bin/rm\n-rf")
        assert "did you mean pg/scratch?" in dry
        assert "approved as soon as you send it" not in dry
        assert "Allowed by policy reads-run-read-only: it would be approved once" in dry
        assert answer.status_code == 422
        said = field_error(answer.text, "target")
        assert said is not None and "did you mean pg/scratch?" in said
        # the target's executor refuses the params: the message is at the params
        assert argv.status_code == 422
        said = field_error(argv.text, "params")
        assert said is not None and "does not allow '/bin/rm'" in said
        assert stored(app) == []


def test_a_form_without_its_token_is_refused_and_changes_nothing(site: Site) -> None:
    app, _ = site
    svc = app.services
    mine = use_cases.submit_request(
        svc, svc.directory.user("dave"), Action("deploy", "prod/api", {}), "", None, {}
    )
    with browser(app, "dave") as dave:
        for data in ({}, {"csrf": "forged"}):
            asked = dave.post("/new", data={**data, "do": "ask", **WRITE})
            assert asked.status_code == 403, asked.text
            assert "Nothing was changed" in asked.text
            cancel = dave.post(f"/requests/{mine.id}/cancel", data={**data, "comment": "x"})
            assert cancel.status_code == 403
            run = dave.post(f"/requests/{mine.id}/execute", data=data)
            assert run.status_code == 403
    assert [r.id for r in stored(app)] == [mine.id]
    assert reload(svc, mine.id).status is Status.PENDING


def test_the_requester_cancels_and_no_one_else_does(site: Site) -> None:
    app, _ = site
    with browser(app, "dave") as dave, browser(app, "bob") as bob:
        landed = send(dave, **WRITE)
        rid = landed.url.path.rsplit("/", 1)[1]
        assert f'action="/requests/{rid}/cancel"' in landed.text
        theirs = bob.get(f"/requests/{rid}")
        assert "/cancel" not in theirs.text  # bob votes on it; the Cancel form is dave's
        refused = bob.post(
            f"/requests/{rid}/cancel", data={"csrf": csrf_of(theirs.text), "comment": "mine now"}
        )
        assert refused.status_code == 403
        assert "only the requester or an admin can cancel" in text_of(refused.text)
        assert reload(app.services, rid).status is Status.PENDING
        done = dave.post(
            f"/requests/{rid}/cancel",
            data={"csrf": csrf_of(landed.text), "comment": "not needed after all\r\n"},
        )
        assert done.status_code == 200 and done.url.path == f"/requests/{rid}"
        page = text_of(done.text)
        assert "You cancelled this request." in page
        assert "cancelled by dave: not needed after all" in page
        assert "Cancel request" not in page  # nothing left to cancel
        again = dave.post(f"/requests/{rid}/cancel", data={"csrf": csrf_of(landed.text)})
        assert again.status_code == 409
    assert reload(app.services, rid).status is Status.CANCELLED


def test_the_requester_executes_on_a_gateway_target(
    database_url: str, tmp_path: Path, target_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCRATCH_DSN", target_db)
    monkeypatch.setenv("RESTART_TOKEN", "x")
    monkeypatch.setenv("DEPLOY_TOKEN", "x")
    for app, _ in _site(
        database_url,
        tmp_path,
        policies_dir=FIXTURES / "gateway",
        targets_file=targets_file(tmp_path),
    ):
        read = {
            "type": "sql.execute",
            "target": "pg/scratch",
            "params": "sql=SELECT id, balance FROM accounts WHERE id <= 2 ORDER BY id",
        }
        with browser(app, "dave") as dave, browser(app, "bob") as bob:
            assert "press Execute on the request page" in preview(dave, **read)
            landed = send(dave, **read)
            rid = landed.url.path.rsplit("/", 1)[1]
            assert "Approved at once by policy." in text_of(landed.text)
            assert f'action="/requests/{rid}/execute"' in landed.text
            # bob may read it (he is a dba) but it is not his to run
            csrf_bob = csrf_of(bob.get("/").text)
            theirs = bob.post(f"/requests/{rid}/execute", data={"csrf": csrf_bob})
            assert theirs.status_code == 403, theirs.text
            assert reload(app.services, rid).status is Status.APPROVED
            ran = dave.post(f"/requests/{rid}/execute", data={"csrf": csrf_of(landed.text)})
            assert ran.status_code == 200 and ran.url.path == f"/requests/{rid}"
            page = text_of(ran.text)
            assert "Signoff ran it: the result is below." in page
            assert "id balance 1 100 2 100" in page  # the result as a table
            assert f'action="/requests/{rid}/execute"' not in ran.text
            again = dave.post(f"/requests/{rid}/execute", data={"csrf": csrf_of(landed.text)})
            assert again.status_code in (403, 409) and "Not run" in again.text
        assert reload(app.services, rid).status is Status.EXECUTED


SCRIPT = "<script>alert(1)</script>"


def test_markup_in_every_field_is_shown_as_text(site: Site) -> None:
    app, _ = site
    fields = {
        "type": f"sql.execute{SCRIPT}",
        "target": f"pg/{SCRIPT}",
        "params": f"sql={SCRIPT}\n{SCRIPT}x=1",
        "reason": SCRIPT,
        "ticket": SCRIPT,
        "links": f"https://x/{SCRIPT}",
        "labels": f"team={SCRIPT}",
    }
    with browser(app, "dave") as dave:
        pages = [
            dave.get("/new", params=fields).text,
            dave.get("/new/preview", params=fields).text,
            send(dave, **fields, risk=SCRIPT).text,  # refused: the form again
        ]
        landed = send(dave, **fields)  # denied by the default, and stored
        pages += [landed.text, dave.get("/mine").text]
    assert landed.url.path.startswith("/requests/")
    for page in pages:
        assert "<script>alert" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def make(app: App, who: str, n: int) -> list[str]:
    svc = app.services
    user = svc.directory.user(who)
    return [
        use_cases.submit_request(
            svc, user, Action("deploy", "prod/api", {"n": i}), f"deploy {i}", None, {}
        ).id
        for i in range(n)
    ]


def cards(page: str) -> list[str]:
    return re.findall(r'<a class="card-title" href="/requests/([^"]+)"', page)


def test_my_requests_are_mine_newest_first_by_state_a_page_at_a_time(site: Site) -> None:
    app, _ = site
    svc = app.services
    mine = make(app, "dave", 27)
    make(app, "carol", 1)  # dave votes on it, but did not ask for it
    use_cases.cancel_request(svc, svc.directory.user("dave"), mine[3], "wrong service")
    with browser(app, "dave") as dave, browser(app, "alice") as alice:
        first = dave.get("/mine")
        assert first.status_code == 200
        assert cards(first.text) == list(reversed(mine))[:25]
        assert 'aria-current="page"' in first.text and 'data-live="/live"' in first.text
        assert '<section id="items" data-live-part' in first.text
        page = text_of(first.text)
        assert "deploy on prod/api pending" in page
        assert "Stage 1 of 1: stage-1 · 2 more approvals from bob or carol" in page
        older = re.search(r'href="(/mine\?[^"]+)">Older requests', first.text)
        assert older
        second = dave.get(html.unescape(older.group(1)))
        assert cards(second.text) == list(reversed(mine))[25:]
        assert "Older requests" not in second.text and "← Newest" in second.text
        cancelled = dave.get("/mine", params={"state": "cancelled"})
        assert cards(cancelled.text) == [mine[3]]
        assert "cancelled by dave: wrong service" in text_of(cancelled.text)
        timed_out = dave.get("/mine", params={"state": "timed_out"})
        assert cards(timed_out.text) == []
        assert "None of your requests is timed out." in text_of(timed_out.text)
        assert '<option value="timed_out" selected>timed out</option>' in timed_out.text
        wrong = dave.get("/mine", params={"state": "nonsense"})
        assert wrong.status_code == 422
        bad_cursor = dave.get("/mine", params={"cursor": "nonsense"})
        assert bad_cursor.status_code == 422
        # an admin sees every request elsewhere; here, only what she asked for
        assert cards(alice.get("/mine").text) == []
        assert "You have not asked for anything yet." in text_of(alice.get("/mine").text)


def test_my_requests_follow_new_states_live(site: Site) -> None:
    app, _ = site
    svc = app.services
    [rid] = make(app, "dave", 1)
    seen: list[str] = []

    def listen(client: httpx.Client, ready: threading.Event) -> None:
        with client.stream("GET", "/live") as stream:
            assert stream.status_code == 200
            ready.set()
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    seen.append(line)
                    return

    with browser(app, "dave") as dave:
        assert "pending" in text_of(dave.get("/mine").text)
        ready = threading.Event()
        listener = threading.Thread(target=listen, args=(dave, ready), daemon=True)
        listener.start()
        assert ready.wait(10)
        time.sleep(0.2)  # the stream subscribes once its headers are out
        use_cases.cancel_request(svc, svc.directory.user("dave"), rid, "")
        listener.join(10)
        assert seen == ["event: changed"]
        # what the page's script then fetches: the list part with the new state
        after = dave.get("/mine", headers={"X-Signoff-Live": "1"}).text
    part = re.search(r'<section id="items" data-live-part.*?</section>', after, re.S)
    assert part and "cancelled by dave" in text_of(part.group(0))
