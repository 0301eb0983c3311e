"""Who may still act, through the real server after a change to users.yaml and a
restart, or an admin's "End sessions and revoke tokens": a disabled person is refused
on every path (API token, web session, sign-in link, mail link, Slack button) with the
reason; signing a person out ends their sessions and their tokens get 401; a person
taken out of a group keeps their session and token (they are still themselves) but no
longer votes for the group."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
from typer.testing import CliRunner

from signoff.bootstrap import App, build
from signoff.domain.actions import Action
from signoff.entrypoints.cli import main
from signoff.services import auth
from signoff.services import requests as use_cases

from ..conftest import FIXTURES, LiveServer, bound_socket, make_settings, reload
from .test_slack import FakeSlack, click

SLACK_SECRET = "slack-signing-secret-for-tests"


def users_file(tmp_path: Path, name: str, old: str = "", new: str = "") -> Path:
    """The fixture users file, with ``old`` replaced by ``new``, as ``name``."""
    text = (FIXTURES / "users.yaml").read_text()
    assert old in text
    path = tmp_path / name
    path.write_text(text.replace(old, new) if old else text)
    return path


@contextmanager
def started(
    database_url: str, tmp_path: Path, users: Path, **overrides: object
) -> Iterator[LiveServer]:
    """A server on this database with this users file: a (re)start; stopped after."""
    sock = bound_socket()
    settings = make_settings(
        database_url,
        tmp_path,
        public_url=f"http://127.0.0.1:{sock.getsockname()[1]}",
        policies_dir=FIXTURES / "staged",
        users_file=users,
        **overrides,
    )
    app = build(settings)
    server = LiveServer(app, sock).start()
    try:
        yield server
    finally:
        server.stop()
        app.close()


def ask(app: App) -> str:
    svc = app.services
    return use_cases.submit_request(
        svc,
        svc.directory.user("dave"),
        Action("sql.execute", "pg/staged", {"sql": "UPDATE plans SET tier = 'pro' WHERE id = 7"}),
        "move customer 7",
        "OPS-7",
        {},
    ).id


def new_browser() -> httpx.Client:
    return httpx.Client(timeout=10, headers={"Accept": "text/html"})


def sign_in(web: httpx.Client, app: App, person: str) -> httpx.Client:
    """``web`` signed in as ``person`` through a one-time link (it keeps the cookie)."""
    landed = web.get(app.signin_link(person), follow_redirects=True)
    assert landed.status_code == 200, landed.text[:300]
    return web


@contextmanager
def signed_in_browser(app: App, person: str) -> Iterator[httpx.Client]:
    with new_browser() as web:
        yield sign_in(web, app, person)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def text_of(page: httpx.Response) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", page.text).split())


def api(server: LiveServer, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def test_a_disabled_person_is_refused_on_every_path_with_the_reason(
    database_url: str, tmp_path: Path
) -> None:
    zoe = "  - {name: zoe, email: zoe@example.com}\n"
    before = users_file(tmp_path, "before.yaml", "groups:\n", zoe + "groups:\n")
    before.write_text(before.read_text().replace("dba: [bob, carol]", "dba: [bob, carol, zoe]"))
    after = tmp_path / "after.yaml"
    after.write_text(
        before.read_text().replace("zoe@example.com}", "zoe@example.com, disabled: true}")
    )

    with started(database_url, tmp_path, before) as server:  # zoe does what anyone can
        app = server.app
        token = auth.create_token(app.services, "zoe", "laptop")
        web = sign_in(new_browser(), app, "zoe")
        with api(server, token) as client:
            assert client.get("/v1/requests").status_code == 200

    slack = FakeSlack()
    try:
        with (
            started(
                database_url,
                tmp_path,
                after,
                slack_token="xoxb-test",
                slack_signing_secret=SLACK_SECRET,
                slack_api_url=f"{slack.url}/api/",
                slack_users={"U_ZOE": "zoe"},
            ) as server,
            closing(web),
        ):
            app = server.app
            assert app.directory.user("zoe").disabled
            rid = ask(app)  # zoe is still in dba: asked, but she cannot vote
            assert "zoe" in reload(app.services, rid).stages[0].approvers
            base = server.url

            # her API token: 401 with the reason
            with api(server, token) as client:
                listed = client.get("/v1/requests")
                assert listed.status_code == 401
                assert listed.json()["detail"] == "user zoe is disabled"
                voted = client.post(
                    f"/v1/requests/{rid}/votes", json={"decision": "approve", "comment": "ok"}
                )
                assert voted.status_code == 401 and "user zoe is disabled" in voted.text

            # her web session ended: the next page is the sign-in page
            page = web.get(f"{base}/requests/{rid}")
            assert page.status_code == 303 and page.headers["location"].startswith("/signin")
            form = web.post(f"{base}/requests/{rid}/vote", data={"decision": "approve"})
            assert form.status_code == 303 and form.headers["location"].startswith("/signin")

            # a sign-in link is refused, saying why
            assert app.links is not None
            expires = app.services.clock.now() + timedelta(minutes=5)
            link = f"{base}/signin/{app.links.issue_signin('zoe', expires)}"
            with httpx.Client(timeout=10) as fresh:
                refused = fresh.get(link)
                assert refused.status_code == 403 and "user zoe is disabled" in refused.text
                assert "session" not in refused.cookies

            # a mail or Teams link: refused, saying why
            vote_link = app.links.issue("zoe", rid, "approve", expires)
            with httpx.Client(timeout=10) as mail:
                shown = mail.get(f"{base}/links/{vote_link}")  # no button to press
                assert shown.status_code == 403 and "user zoe is disabled" in text_of(shown)
                answer = mail.post(f"{base}/links/{vote_link}", data={"comment": "ok"})
                assert answer.status_code == 403
                assert "user zoe is disabled, and may not vote" in text_of(answer)

            # a Slack button: refused, and told why, privately
            assert click(server, slack, "U_ZOE", "approve", rid).status_code == 200
            assert slack.ephemeral[-1]["text"] == (
                "Not recorded: user zoe is disabled, and may not vote"
            )

            assert reload(app.services, rid).votes == []
            # and nobody makes her a new token
            with signed_in_browser(app, "alice") as alice:
                made = alice.post(
                    f"{base}/tokens",
                    data={
                        "csrf": csrf_of(alice.get(f"{base}/tokens").text),
                        "label": "x",
                        "user": "zoe",
                    },
                )
                assert made.status_code == 403 and "user zoe is disabled" in text_of(made)
                people = text_of(alice.get(f"{base}/admin/people"))
                assert "zoe zoe@example.com disabled" in people
    finally:
        slack.close()


def test_an_admin_ends_a_persons_sessions_and_revokes_their_tokens(
    database_url: str, tmp_path: Path
) -> None:
    users = users_file(tmp_path, "users.yaml")
    with started(database_url, tmp_path, users) as server:
        app = server.app
        base = server.url
        token = auth.create_token(app.services, "bob", "laptop")
        with (
            signed_in_browser(app, "bob") as bob,
            signed_in_browser(app, "dave") as dave,
            signed_in_browser(app, "alice") as alice,
        ):
            with api(server, token) as client:
                assert client.get("/v1/requests").status_code == 200  # cached now
            people = alice.get(f"{base}/admin/people")
            assert "End sessions and revoke tokens" in people.text
            assert 'action="/admin/people/bob/sign-out"' in people.text

            # without the CSRF token: nothing happens
            forged = alice.post(f"{base}/admin/people/bob/sign-out", data={"csrf": "x"})
            assert forged.status_code == 403 and bob.get(f"{base}/").status_code == 200

            ended = alice.post(
                f"{base}/admin/people/bob/sign-out", data={"csrf": csrf_of(people.text)}
            )
            assert ended.status_code == 303
            told = alice.get(f"{base}{ended.headers['location']}")
            # the "tests" token the server made for each person, and "laptop"
            assert "bob is signed out everywhere: 1 session ended, 2 API tokens revoked." in (
                text_of(told)
            )

            gone = bob.get(f"{base}/")
            assert gone.status_code == 303 and gone.headers["location"].startswith("/signin")
            with api(server, token) as client:
                assert client.get("/v1/requests").status_code == 401  # at once, though cached
            with api(server, server.tokens["bob"]) as client:
                assert client.get("/v1/requests").status_code == 401
            # nobody else: dave is still signed in, his token works
            assert dave.get(f"{base}/").status_code == 200
            with api(server, server.tokens["dave"]) as client:
                assert client.get("/v1/requests").status_code == 200
            # bob signs in again with a new link, as anyone would
            with signed_in_browser(app, "bob") as again:
                assert again.get(f"{base}/").status_code == 200

        with app.services.uow(write=False) as uow:
            events = [e for e in uow.audit.events() if e.type == "user.signed_out"]
        [audited] = events
        assert audited.actor == "alice"
        assert audited.payload_data()["user"] == "bob"
        assert audited.payload_data()["sessions"] == 1
        assert len(audited.payload_data()["tokens"]) == 2


def test_signoff_user_logout_does_the_same_from_the_command_line(
    database_url: str, tmp_path: Path
) -> None:
    users = users_file(tmp_path, "users.yaml")
    with started(database_url, tmp_path, users) as server:
        app = server.app
        base = server.url
        token = auth.create_token(app.services, "carol", "laptop")
        with signed_in_browser(app, "carol") as carol:
            env = {
                "SIGNOFF_DATABASE_URL": database_url,
                "SIGNOFF_DATA_DIR": str(tmp_path),
                "SIGNOFF_POLICIES_DIR": str(FIXTURES / "staged"),
                "SIGNOFF_USERS_FILE": str(users),
            }
            run = CliRunner().invoke(main.app, ["user", "logout", "--user", "carol"], env=env)
            assert run.exit_code == 0, run.output
            assert run.output.strip() == (
                "carol is signed out everywhere: 1 session ended, 2 API tokens revoked."
            )
            assert carol.get(f"{base}/").status_code == 303
            # another process revoked it: this one stops within the token cache's seconds
            app.services.token_cache.forget(auth.hash_token(token))
            with api(server, token) as client:
                assert client.get("/v1/requests").status_code == 401
            unknown = CliRunner().invoke(main.app, ["user", "logout", "--user", "nobody"], env=env)
            assert unknown.exit_code != 0 and "no user named 'nobody'" in unknown.output
        with app.services.uow(write=False) as uow:
            [audited] = [e for e in uow.audit.events() if e.type == "user.signed_out"]
        assert audited.actor == "admin"


def test_a_person_taken_out_of_a_group_is_still_themselves_but_no_longer_votes_for_it(
    database_url: str, tmp_path: Path
) -> None:
    before = users_file(tmp_path, "before.yaml")
    after = users_file(tmp_path, "after.yaml", "dba: [bob, carol]", "dba: [bob]")
    with started(database_url, tmp_path, before) as server:
        app = server.app
        token = auth.create_token(app.services, "carol", "laptop")
        web = sign_in(new_browser(), app, "carol")
        assert app.directory.user("carol").groups == frozenset({"dba", "sre"})

    with started(database_url, tmp_path, after) as server, closing(web):  # users.yaml edited
        app = server.app
        base = server.url
        assert app.directory.user("carol").groups == frozenset({"sre"})
        rid = ask(app)
        # her session and her token still say who she is
        inbox = web.get(f"{base}/")
        assert inbox.status_code == 200 and ">carol<" in inbox.text
        with api(server, token) as client:
            assert client.get("/v1/requests").status_code == 200
            voted = client.post(
                f"/v1/requests/{rid}/votes", json={"decision": "approve", "comment": "ok"}
            )
            assert voted.status_code == 403
            assert "carol is not an approver of stage 1 (dba)" in voted.json()["detail"]
        # nor through the web form (the request is not even hers to see)
        page = web.get(f"{base}/requests/{rid}")
        assert page.status_code == 404
        assert reload(app.services, rid).votes == []
