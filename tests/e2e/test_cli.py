"""The CLI end to end: the server as a process, each command as a subprocess."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import SIGNOFF, free_port, in_process_tokens, spawn_server, stop, wait_ready
from .terminal import Terminal

FIXTURES = Path(__file__).parent.parent / "fixtures"


class Cli:
    def __init__(self, env: dict[str, str], database_url: str = "") -> None:
        self.env = env
        self.database_url = database_url
        self.tokens: dict[str, str] = {}
        self.signin = ""  # the sign-in link the server printed at its first start

    def run(self, *args: str, user: str | None = None, timeout: float = 60):
        env = dict(self.env)
        if user:
            env["SIGNOFF_TOKEN"] = self.tokens[user]
        return subprocess.run(
            [*SIGNOFF, *args], env=env, capture_output=True, text=True, timeout=timeout
        )

    def start(self, *args: str, user: str) -> subprocess.Popen[str]:
        env = {**self.env, "SIGNOFF_TOKEN": self.tokens[user]}
        return subprocess.Popen(
            [*SIGNOFF, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )


def cli_env(database_url: str, data_dir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "SIGNOFF_DATABASE_URL": database_url,
        "SIGNOFF_DATA_DIR": str(data_dir),
        "SIGNOFF_POLICIES_DIR": str(FIXTURES / "policies"),
        "SIGNOFF_USERS_FILE": str(FIXTURES / "users.yaml"),
        "COLUMNS": "200",
    }
    env.pop("SIGNOFF_TOKEN", None)
    return env


@pytest.fixture(scope="module")
def cli(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """One server on a database of its own for the module's tests (each works on requests
    of its own), and the CLI pointed at it."""
    data_dir = tmp_path_factory.mktemp("cli")
    env = cli_env(module_database_url, data_dir)
    c = Cli(env, module_database_url)
    # Tokens for three users in this process (a CLI start costs seconds of imports each);
    # this makes the signing key too. None is an admin: the server still sees a first start.
    c.tokens.update(in_process_tokens(module_database_url, data_dir, ("carol", "dave", "frank")))
    server, url = spawn_server(env, data_dir, "server")
    try:
        made = c.run("token", "create", "--user", "bob")  # the command, once, as it starts
        wait_ready(server, url, data_dir / "server.log")
        env["SIGNOFF_URL"] = url
        assert made.returncode == 0, made.stderr
        c.tokens["bob"] = made.stdout.strip()
        admin_line = (data_dir / "server.log").read_text()
        assert "Admin API token for alice" in admin_line
        c.tokens["alice"] = admin_line.split("keep it safe):\n", 1)[1].split()[0]
        c.signin = re.search(r"http://\S+/signin/\S+", admin_line).group(0)  # type: ignore[union-attr]
        yield c
    finally:
        stop([server])


@pytest.fixture
def local_cli(tmp_path: Path) -> Cli:
    """The CLI for commands that read only the policy and user files: no server, and no
    database to run them on twice."""
    return Cli(cli_env(f"sqlite:///{tmp_path}/unused.db", tmp_path))


def listed_on(cli: Cli, user: str, params: dict[str, str], target: str) -> str:
    """The id of the one request on ``target`` that ``user`` sees listed with ``params``,
    once there is one (asked over HTTP: a CLI start per poll costs a second)."""
    deadline = time.monotonic() + 30
    while True:
        page = httpx.get(
            f"{cli.env['SIGNOFF_URL']}/v1/requests",
            params=params,
            headers={"Authorization": f"Bearer {cli.tokens[user]}"},
        ).json()
        ids = [r["id"] for r in page["items"] if r["action"]["target"] == target]
        if ids:
            [rid] = ids
            return rid
        assert time.monotonic() < deadline, f"{user} sees nothing on {target}"
        time.sleep(0.05)


def ids_in(listed: subprocess.CompletedProcess[str]) -> list[str]:
    assert listed.returncode == 0, listed.stderr
    return [r["id"] for r in json.loads(listed.stdout)["items"]]


def test_request_wait_is_decided_by_votes_from_other_processes(cli: Cli) -> None:
    waiting = cli.start(
        "request",
        "--type",
        "sql.execute",
        "--target",
        "pg/prod",
        "--param",
        "sql=UPDATE users SET plan = 'pro' WHERE id = 7",
        "--reason",
        "customer upgrade",
        "--ticket",
        "OPS-42",
        "--wait",
        user="frank",
    )
    rid = listed_on(cli, "bob", {"awaiting": "me"}, "pg/prod")
    assert rid in ids_in(cli.run("inbox", "--json", user="bob"))
    own = cli.run("approve", rid, user="frank")
    assert (
        own.returncode == 1 and own.stderr.strip() == "error: you cannot vote on your own request"
    )
    inbox = cli.run("inbox", user="bob")  # plain lines: the whole id, what is needed
    assert inbox.returncode == 0, inbox.stderr
    assert f"{rid}  sql.execute on pg/prod  by frank" in inbox.stdout
    assert "  needs: 2 more approvals from bob or carol (stage 1 of 1: dba)" in inbox.stdout
    assert "  sql: UPDATE users SET plan = 'pro' WHERE id = 7" in inbox.stdout
    # the first 8 characters of the id are enough, as with git
    first = cli.run("approve", rid[:8], "--comment", "looks right", user="bob")
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().splitlines() == [
        f"Your approval of {rid} is recorded.",
        "Still needed: 1 more approval from carol (stage 1 of 1: dba).",
    ]
    # one exit-code rule: the server saying no is 1, whatever the refusal
    again = cli.run("approve", rid, user="bob")
    assert again.returncode == 1 and "already voted" in again.stderr, again.stderr
    second = cli.run("approve", rid, user="carol")
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip().splitlines()[-1] == "The request is approved."
    shown = cli.run("show", rid[:8], user="frank")
    assert shown.returncode == 0, shown.stderr
    assert f"request   {rid}  [approved]" in shown.stdout
    assert "vote      bob approved: looks right" in shown.stdout
    assert "outcome   approved by carol" in shown.stdout
    stdout, stderr = waiting.communicate(timeout=30)
    assert waiting.returncode == 0, stderr
    token = stdout.strip()
    assert token.count(".") == 2
    # piped: plain lines, whole, one event each
    assert stderr.splitlines()[:4] == [
        f"request {rid} submitted under policy prod-sql-write",
        "pending: needs 2 more approvals from bob or carol (stage 1 of 1: dba)",
        "bob approved (looks right); pending: needs 1 more approval from carol (stage 1 of 1: dba)",
        f"carol approved; request {rid} is approved",
    ]

    ok = cli.run(
        "grant",
        "verify",
        token,
        "--type",
        "sql.execute",
        "--target",
        "pg/prod",
        "--param",
        "sql=UPDATE users SET plan = 'pro' WHERE id = 7",
    )
    assert ok.returncode == 0 and ok.stdout.startswith("valid: grant")
    other = cli.run(
        "grant",
        "verify",
        token,
        "--type",
        "sql.execute",
        "--target",
        "pg/prod",
        "--param",
        "sql=UPDATE users SET plan = 'pro' WHERE id = 8",
    )
    assert other.returncode == 1 and "differs from the approved action" in other.stderr

    shown = cli.run("show", rid, user="bob")
    assert "looks right" in shown.stdout and "request.approved" in shown.stdout

    verify = cli.run("audit", "verify")
    assert verify.returncode == 0 and verify.stdout.startswith("ok:")
    exported = cli.run("audit", "export", "--format", "jsonl")
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [e["seq"] for e in lines] == list(range(1, len(lines) + 1))
    assert any(e["type"] == "grant.issued" and e["request_id"] == rid for e in lines)


def test_denied_and_cancelled_exit_codes(cli: Cli) -> None:
    denied = cli.run("request", "--type", "sql.drop", "--target", "pg/prod", "--wait", user="frank")
    assert denied.returncode == 1
    assert "denied: policy 'forbidden-drop' denies it" in denied.stderr  # says why
    unmatched = cli.run("request", "--type", "nothing.here", "--target", "x", user="frank")
    assert unmatched.returncode == 1
    assert "denied: no policy matched, and the default outcome is deny" in unmatched.stderr
    waiting = cli.start(
        "request", "--type", "deploy", "--target", "prod/api", "--wait", "--json", user="frank"
    )
    rid = listed_on(cli, "frank", {"status": "pending"}, "prod/api")
    assert rid in ids_in(cli.run("list", "--status", "pending", "--json", user="frank"))
    cancelled = cli.run("cancel", rid[:8], "--comment", "not needed now", user="frank")
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.strip() == f"request {rid} cancelled by frank: not needed now"
    stdout, _ = waiting.communicate(timeout=30)
    assert waiting.returncode == 3
    assert json.loads(stdout)["status"] == "cancelled"


def test_usage_and_unreachable_server_errors_are_one_line(local_cli: Cli) -> None:
    # both are found before any database is read: once, not once per database
    cli = local_cli
    env = {**cli.env, "SIGNOFF_TOKEN": "unused"}
    bad = subprocess.run(
        [*SIGNOFF, "request", "--type", "deploy", "--target", "prod/x", "--param", "novalue"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: --param must look like")
    env["SIGNOFF_URL"] = f"http://127.0.0.1:{free_port()}"
    unreachable = subprocess.run([*SIGNOFF, "inbox"], env=env, capture_output=True, text=True)
    assert unreachable.returncode == 2 and unreachable.stderr.startswith("error: cannot reach")
    assert "Traceback" not in unreachable.stderr


def test_an_unknown_request_is_one_line(cli: Cli) -> None:
    missing = cli.run("approve", "no-such-id", user="bob")
    assert missing.returncode == 2
    assert missing.stderr.strip() == "error: no request with an id starting 'no-such-id'"
    short = cli.run("approve", "abc", user="bob")
    assert short.returncode == 2
    assert short.stderr.strip() == (
        "error: 'abc' is too short to name a request: give at least 8 characters of its id"
    )


def test_policy_check_and_explain(local_cli: Cli, tmp_path: Path) -> None:
    cli = local_cli
    good = cli.run("policy", "check", str(FIXTURES / "policies"))
    assert good.returncode == 0 and good.stdout.startswith("ok: 10 policies")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.yaml").write_text(
        "default: {outcome: deny}\npolicies:\n  - name: x\n    outcom: allow\n"
    )
    result = cli.run("policy", "check", str(broken))
    assert result.returncode == 2
    assert f"{broken}/a.yaml:4:5: unknown key 'outcom'" in result.stderr
    explained = cli.run(
        "policy", "explain", "--action", "secret.read", "--target", "vault/x", "--as", "frank"
    )
    assert explained.returncode == 0
    out = explained.stdout.splitlines()
    assert out[0].startswith("  skip  read-only-sql: type:")
    assert out[3].startswith("REVIEW  staged-secret")
    assert "stage 2 security: quorum 1 of erin" in explained.stdout


def test_server_refuses_to_start_on_invalid_policies(tmp_path: Path) -> None:
    broken = tmp_path / "policies"
    broken.mkdir()
    (broken / "a.yaml").write_text("policies:\n  - name: x\n    outcome: allow\n")
    env = {
        **os.environ,
        "SIGNOFF_DATA_DIR": str(tmp_path),
        "SIGNOFF_POLICIES_DIR": str(broken),
        "SIGNOFF_USERS_FILE": str(FIXTURES / "users.yaml"),
        "SIGNOFF_PORT": str(free_port()),
    }
    result = subprocess.run(
        [*SIGNOFF, "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert f"{broken}/a.yaml:1:1: no default outcome" in result.stderr
    assert "Traceback" not in result.stderr


def test_audit_verify_names_the_tampered_event(cli: Cli) -> None:
    import sqlalchemy as sa

    from signoff.adapters.db import tables as t
    from signoff.adapters.db.engine import create_db_engine

    made = cli.run("request", "--type", "deploy", "--target", "prod/web", user="frank")
    rid = made.stdout.strip()
    assert cli.run("approve", rid, user="carol").returncode == 0
    assert cli.run("audit", "verify").returncode == 0
    engine = create_db_engine(cli.database_url, 1)
    events = t.audit_events
    original = None
    try:
        with engine.begin() as conn:
            original = (
                conn.execute(
                    sa.select(events).where(
                        events.c.type == "vote.cast", events.c.request_id == rid
                    )
                )
                .mappings()
                .one()
            )
            seq = original["seq"]
            conn.execute(events.update().where(events.c.seq == seq).values(actor="bob"))
        edited = cli.run("audit", "verify")
        assert edited.returncode == 1
        first, *more = edited.stderr.strip().splitlines()
        assert first == (
            f"error: audit chain broken at event {seq}: event {seq} was altered: "
            "its hash does not match"
        )
        # the edited vote also disagrees with the votes stored: the replay says so
        assert more == [
            f"also: request {rid} has votes [('carol', 'approve', 0)] stored but "
            "[('bob', 'approve', 0)] in its history"
        ]
        with engine.begin() as conn:
            conn.execute(events.delete().where(events.c.seq == seq))
        deleted = cli.run("audit", "verify")
        assert deleted.returncode == 1
        # the vote was the newest event: the stored head still names it
        assert deleted.stderr.strip().splitlines()[0] == (
            f"error: audit chain broken at event {seq}: the log ends at event {seq - 1} but "
            f"the head records event {seq}: events were removed from the end"
        )
    finally:
        if original is not None:  # the module's other tests share this log: mend it
            with engine.begin() as conn:
                conn.execute(events.delete().where(events.c.seq == original["seq"]))
                conn.execute(events.insert().values(**original))
        engine.dispose()


def test_the_first_start_prints_a_sign_in_link_that_works_once(cli: Cli) -> None:
    path = cli.signin.split("/signin/", 1)[1]
    link = f"{cli.env['SIGNOFF_URL']}/signin/{path}"
    with httpx.Client(timeout=10) as web:
        landed = web.get(link, follow_redirects=True)
        assert landed.status_code == 200 and "Needs your review" in landed.text
        assert ">alice<" in landed.text
    again = httpx.get(link)
    assert again.status_code == 403 and "already been used" in again.text
    made = cli.run("signin-link", "--user", "bob", "--next", "/requests/x")
    assert made.returncode == 0, made.stderr
    assert "/signin/" in made.stdout and made.stdout.strip().endswith("?next=/requests/x")


def test_db_upgrade_is_idempotent(cli: Cli) -> None:
    # the server migrated this database when it started: this is already a second run
    again = cli.run("db", "upgrade")
    assert again.returncode == 0, again.stderr
    from alembic.script import ScriptDirectory

    from signoff.adapters.db.engine import MIGRATIONS

    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert again.stdout.strip() == f"database at revision {head}"


# ----- what a person sees: 80 and 120 columns, piped, Ctrl-C -------------------------

SCREEN_REASON = (
    "roll out 2.4.1 with the new billing export that finance asked for in last week's planning"
)
SCREEN_ASK = [
    "--type", "deploy", "--param", "version=2.4.1", "--reason", SCREEN_REASON,
    "--ticket", "OPS-80", "--label", "team=billing", "--label", "env=production",
    "--link", "https://github.com/example/api/pull/1234", "--risk", "high", "--wait",
]  # fmt: skip
BRAILLE = re.compile("[\u2800-\u28ff]")  # the spinner's frames


def flat(text: str) -> str:
    """Text with every run of whitespace one space: a fact, however it was wrapped."""
    return " ".join(text.split())


def test_inbox_list_and_request_wait_on_terminals_80_and_120_columns_wide(cli: Cli) -> None:
    """Every line fits (wrapped at spaces, never cut mid-word), the whole id stays on one
    row, every fact of the request is there; piped, the same lines are whole and plain."""
    frank = {**cli.env, "SIGNOFF_TOKEN": cli.tokens["frank"]}
    waiting = {
        w: Terminal([*SIGNOFF, "request", "--target", f"prod/screen-{w}", *SCREEN_ASK], frank, w)
        for w in (80, 120)
    }
    piped = subprocess.Popen(
        [*SIGNOFF, "request", "--target", "prod/screen-piped", *SCREEN_ASK],
        env={**frank, "COLUMNS": "80"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    for term in waiting.values():
        term.wait_for("pending: needs")
    rids = {w: listed_on(cli, "bob", {"awaiting": "me"}, f"prod/screen-{w}") for w in (80, 120)}
    rids["piped"] = listed_on(cli, "bob", {"awaiting": "me"}, "prod/screen-piped")
    bob = {**cli.env, "SIGNOFF_TOKEN": cli.tokens["bob"]}
    shown = {
        (command, w): Terminal([*SIGNOFF, command], bob if command == "inbox" else frank, w)
        for command in ("inbox", "list")
        for w in (80, 120)
    }
    screens = {key: term.finish() for key, term in shown.items()}  # before the votes
    for rid in rids.values():
        for voter, comment in (("bob", "ship it"), ("carol", "")):
            voted = httpx.post(
                f"{cli.env['SIGNOFF_URL']}/v1/requests/{rid}/votes",
                json={"decision": "approve", "comment": comment},
                headers={"Authorization": f"Bearer {cli.tokens[voter]}"},
            )
            assert voted.status_code == 200, voted.text

    for w in (80, 120):
        rid = rids[w]
        inbox, listed = screens["inbox", w], screens["list", w]
        wait = waiting[w].finish()
        assert waiting[w].proc.returncode == 0, wait.text
        for screen in (inbox, listed, wait):
            assert screen.cuts == [], screen.text
            assert all(len(row) <= w for row in screen.rows)
        # the whole id on one row, then every fact of the request
        assert f"{rid}  deploy on prod/screen-{w}  by frank" in inbox.rows
        start = inbox.rows.index(f"{rid}  deploy on prod/screen-{w}  by frank")
        end = next(
            (i for i, row in enumerate(inbox.rows[start + 1 :], start + 1) if row[:1] != " "),
            len(inbox.rows),
        )
        facts = flat("\n".join(inbox.rows[start:end]))
        for fact in (
            f"reason: {SCREEN_REASON}",
            "ticket: OPS-80",
            "risk: high",
            "labels: team=billing, env=production",
            "link: https://github.com/example/api/pull/1234",
            "needs: 2 more approvals from bob or carol or dave (stage 1 of 1: stage-1)",
            "version: 2.4.1",
        ):
            assert fact in facts, inbox.text
        reason = f"  reason: {SCREEN_REASON}"
        if w == 120:
            assert reason in inbox.rows
        else:  # wrapped at a space, what follows indented under it
            i = inbox.rows.index(reason[: reason.rindex(" ", 0, 80)])
            assert inbox.rows[i + 1].startswith("      ")
        assert any(rid in row and "pending" in row for row in listed.rows), listed.text
        # the request followed to its decision: each event a line; the spinner gone
        said = flat(wait.text)
        for line in (
            f"request {rid} submitted under policy deploy-two-groups",
            "bob approved (ship it); pending: needs 1 more approval from carol or dave",
            f"carol approved; request {rid} is approved",
            "approved: grant",
        ):
            assert line in said, wait.text
        assert any(rid in row for row in wait.rows) and not BRAILLE.search(wait.text)

    stdout, stderr = piped.communicate(timeout=30)
    assert piped.returncode == 0, stderr
    rid = rids["piped"]
    assert "\x1b" not in stderr + stdout and not BRAILLE.search(stderr)
    assert stderr.splitlines()[:4] == [  # at COLUMNS=80, yet each line whole
        f"request {rid} submitted under policy deploy-two-groups",
        "pending: needs 2 more approvals from bob or carol or dave (stage 1 of 1: stage-1)",
        "bob approved (ship it); pending: needs 1 more approval from carol or dave (stage 1 of "
        "1: stage-1)",
        f"carol approved; request {rid} is approved",
    ]
    assert stdout.count(".") == 2 and len(stdout.splitlines()) == 1  # the token, one line


def test_ctrl_c_while_waiting_says_the_request_is_pending_and_how_to_cancel(cli: Cli) -> None:
    waiting = cli.start("request", "--type", "deploy", "--target", "prod/interrupted", "--wait",
                        user="frank")  # fmt: skip
    assert waiting.stderr is not None
    rid = waiting.stderr.readline().split()[1]
    assert waiting.stderr.readline().startswith("pending: needs")
    waiting.send_signal(signal.SIGINT)
    stderr = waiting.stderr.read()  # the rest (communicate would read past what was read)
    assert waiting.wait(30) == 130
    assert stderr.splitlines() == [
        f"request {rid} is still pending; cancel it with: signoff cancel {rid}"
    ]
    assert "Traceback" not in stderr
    url, frank = cli.env["SIGNOFF_URL"], {"Authorization": f"Bearer {cli.tokens['frank']}"}
    assert httpx.get(f"{url}/v1/requests/{rid}", headers=frank).json()["status"] == "pending"
    httpx.post(f"{url}/v1/requests/{rid}/cancel", json={}, headers=frank).raise_for_status()


def test_errors_say_what_to_set_and_which_option_is_wrong(cli: Cli) -> None:
    no_token = cli.run("inbox")
    assert no_token.returncode == 2
    assert no_token.stderr == (
        "error: not logged in: run signoff login, or set SIGNOFF_TOKEN (an admin makes one "
        "with: signoff token create --user NAME)\n"
    )
    bad = subprocess.run(
        [*SIGNOFF, "inbox"], env={**cli.env, "SIGNOFF_TOKEN": "so_not-a-token"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr == (
        f"error: SIGNOFF_TOKEN is not a valid API token on {cli.env['SIGNOFF_URL']} (an admin "
        "makes one with: signoff token create --user NAME)\n"
    )
    # a field the server refuses is named by the option it came from
    long_label = cli.run("request", "--type", "deploy", "--target", "prod/labels",
                         "--label", "team=" + "x" * 300, user="frank")  # fmt: skip
    assert long_label.returncode == 2
    assert long_label.stderr == "error: --label team: string should have at most 200 characters\n"
    no_reason = cli.run("request", "--type", "sql.execute", "--target", "pg/prod",
                        "--param", "sql=UPDATE t SET a = 1 WHERE id = 1", user="frank")  # fmt: skip
    assert no_reason.returncode == 2
    assert no_reason.stderr == "error: --reason: policy 'prod-sql-write' requires a reason\n"
