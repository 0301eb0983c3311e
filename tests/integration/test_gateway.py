"""The gateway: Signoff runs the approved action itself, against a real PostgreSQL scratch
database, a real allow-listed script and an HTTP receiver on loopback, and records what
happened. Signoff's own database is SQLite or PostgreSQL (the usual parametrisation)."""

from __future__ import annotations

import dataclasses
import json
import logging
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
import yaml

from signoff.adapters.db import tables as t
from signoff.adapters.targets_file import load_targets
from signoff.bootstrap import build
from signoff.domain.actions import Action, canonical_json, sha256_hex
from signoff.domain.errors import Forbidden, GrantRefused, InvalidInput, NotFound, PolicyError
from signoff.domain.requests import Decision, Status
from signoff.services import requests as use_cases
from signoff.services.execution import execute_request
from signoff.services.ports import FixedClock
from signoff.services.scheduler import sweep
from signoff.services.views import executions_of, verify_audit
from tests.conftest import reload

from ..conftest import FIXTURES, SCRATCH_SECRET, HttpRecorder, LiveServer, make_settings

SECRET = SCRATCH_SECRET
HTTP_TOKEN = "deploy-token-9d2e"


def targets_file(tmp_path: Path, receiver_url: str = "http://127.0.0.1:9") -> Path:
    script = tmp_path / "restart-app"
    script.write_text(
        "#!/bin/sh\n"
        'echo "restarting $1 in $(pwd)"\n'
        'echo "token=$TOKEN" >&2\n'
        'echo "path=$PATH"\n'
        "echo \"names: $(env | cut -d= -f1 | sort | tr '\\n' ' ')\"\n"  # what it was given
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    doc = {
        "targets": [
            {
                "name": "pg/scratch",
                "executor": "postgres",
                "dsn": {"env": "SCRATCH_DSN"},
                "statement_timeout": "1s",
                "max_rows": 5,
                "mask": {"columns": ["email"], "patterns": [r"\b\d{16}\b"]},
            },
            {
                "name": "pg/down",
                "executor": "postgres",
                "dsn": f"postgresql://postgres:{SECRET}@127.0.0.1:1/nothing",
                "connect_timeout": "1s",
            },
            {
                "name": "ops/restart",
                "executor": "command",
                "allow": [str(script)],
                "cwd": str(tmp_path),
                "env": {"PATH": "/usr/bin:/bin", "TOKEN": {"env": "RESTART_TOKEN"}},
                "timeout": "5s",
                "mask": {"patterns": ["token=\\S+"]},
            },
            {
                "name": "deploy/api",
                "executor": "http",
                "base_url": f"{receiver_url}/api/",
                "headers": {"Authorization": {"env": "DEPLOY_TOKEN", "prefix": "Bearer "}},
            },
        ]
    }
    path = tmp_path / "targets.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def gateway(database_url: str, tmp_path: Path, target_db: str, monkeypatch, receiver: HttpRecorder):
    monkeypatch.setenv("SCRATCH_DSN", target_db)
    monkeypatch.setenv("RESTART_TOKEN", "restart-secret-1")
    monkeypatch.setenv("DEPLOY_TOKEN", HTTP_TOKEN)
    settings = make_settings(
        database_url,
        tmp_path,
        policies_dir=FIXTURES / "gateway",
        targets_file=targets_file(tmp_path, receiver.url),
    )
    app = build(settings)
    yield app
    app.close()


def sql(text: str) -> Action:
    return Action("sql.execute", "pg/scratch", {"sql": text})


def ask(app, who: str, action: Action):
    svc = app.services
    return use_cases.submit_request(svc, svc.directory.user(who), action, "because", None, {})


def run(app, who: str, rid: str):
    svc = app.services
    return execute_request(svc, app.executors, svc.directory.user(who), rid)


def balance(dsn: str, id_: int) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT balance FROM accounts WHERE id = %s", (id_,)).fetchone()
        assert row is not None
        return int(row[0])


def audit_types(app, rid: str) -> list[str]:
    with app.services.uow(write=False) as uow:
        return [e.type for e in uow.audit.events(request_id=rid)]


def test_an_approved_update_runs_once_and_its_effect_is_visible(gateway, target_db) -> None:
    app = gateway
    r = ask(app, "dave", sql("UPDATE accounts SET balance = balance + 5 WHERE id = 3"))
    assert r.status is Status.PENDING
    with pytest.raises(GrantRefused):  # nothing runs before approval
        run(app, "dave", r.id)
    use_cases.cast_vote(
        app.services, app.services.directory.user("bob"), r.id, Decision.APPROVE, ""
    )
    done = run(app, "dave", r.id)
    assert done.ok and done.summary == "UPDATE 1"
    assert done.output == {"rowcount": 1, "status": "UPDATE 1"}
    assert done.request.status is Status.EXECUTED
    assert balance(target_db, 3) == 105
    with pytest.raises(GrantRefused) as again:
        run(app, "dave", r.id)
    assert again.value.reason == "used_up"
    assert balance(target_db, 3) == 105  # once
    types = audit_types(app, r.id)
    assert types[-4:] == [
        "execution.started",
        "execution.finished",
        "request.executed",
        "execution.refused",  # the second call
    ]
    assert types.count("execution.refused") == 2  # and the one before approval
    with app.services.uow(write=False) as uow:
        finished = [e for e in uow.audit.events(request_id=r.id) if e.type == "execution.finished"]
    assert finished[0].payload_data()["output_digest"] == done.output_digest
    assert verify_audit(app.services).ok


def test_only_the_requester_or_an_admin_executes(gateway) -> None:
    app = gateway
    r = ask(app, "dave", sql("UPDATE accounts SET balance = 0 WHERE id = 1"))
    use_cases.cast_vote(
        app.services, app.services.directory.user("bob"), r.id, Decision.APPROVE, ""
    )
    with pytest.raises(Forbidden, match="only dave or an admin"):
        run(app, "carol", r.id)
    assert audit_types(app, r.id)[-1] == "execution.refused"  # the attempt is on record
    assert run(app, "alice", r.id).ok  # an admin may run it for them


def test_someone_the_policy_names_may_execute(gateway, receiver: HttpRecorder) -> None:
    app = gateway
    action = Action("http.request", "deploy/api", {"method": "POST", "path": "deploys"})
    r = ask(app, "dave", action)
    with pytest.raises(Forbidden, match="only dave, erin or an admin"):
        run(app, "bob", r.id)
    assert run(app, "erin", r.id).ok  # e.g. the pipeline's user
    svc = app.services
    [ran] = executions_of(svc, svc.directory.user("erin"), r.id)  # and reads what ran
    assert ran["actor"] == "erin" and ran["ok"]
    with pytest.raises(NotFound):  # bob may not even see dave's request
        executions_of(svc, svc.directory.user("bob"), r.id)


@pytest.mark.parametrize("end", ["denied", "cancelled", "revoked", "expired"])
def test_a_request_that_ended_cannot_run(gateway, end: str) -> None:
    app = gateway
    svc = app.services
    r = ask(app, "dave", sql("UPDATE accounts SET balance = 2 WHERE id = 7"))
    bob, dave, alice = (svc.directory.user(u) for u in ("bob", "dave", "alice"))
    if end == "denied":
        use_cases.cast_vote(svc, bob, r.id, Decision.DENY, "no")
    elif end == "cancelled":
        use_cases.cancel_request(svc, dave, r.id, "not needed")
    else:
        use_cases.cast_vote(svc, bob, r.id, Decision.APPROVE, "")
        if end == "revoked":
            use_cases.revoke_grant(svc, alice, reload(svc, r.id).grant.id, "stop")
        else:
            sweep(
                dataclasses.replace(svc, clock=FixedClock(datetime.now(UTC) + timedelta(hours=1)))
            )
    assert reload(svc, r.id).status.value == end
    with pytest.raises(GrantRefused):
        run(app, "dave", r.id)
    assert audit_types(app, r.id)[-1] == "execution.refused"


def test_approvers_see_what_the_sql_does(gateway) -> None:
    app = gateway
    ask(app, "dave", sql("UPDATE accounts SET balance = 3 WHERE id = 8"))
    with app.engine.connect() as conn:
        payloads = [r[0] for r in conn.execute(sa.select(t.outbox.c.payload))]
    assert payloads[0]["request"]["analysis"] == "SQL: write; tables accounts"


def test_an_unreachable_target_runs_nothing_and_gives_the_use_back(gateway) -> None:
    app = gateway
    r = ask(app, "dave", Action("sql.execute", "pg/down", {"sql": "SELECT 1"}))
    assert r.status is Status.APPROVED
    done = run(app, "dave", r.id)
    assert not done.ok
    assert done.summary == "not run: could not connect to target pg/down within 1 s"
    after = reload(app.services, r.id)
    assert after.status is Status.APPROVED and after.grant is not None
    assert after.grant.uses_left == 1  # it may be tried again once the target is back
    assert audit_types(app, r.id)[-3:] == [
        "execution.started",
        "execution.finished",
        "grant.use_returned",
    ]


def test_a_pooled_connection_keeps_nothing_from_the_last_execution(gateway) -> None:
    app = gateway
    first = ask(app, "dave", sql("UPDATE accounts SET balance = 9 WHERE id = 8"))
    use_cases.cast_vote(
        app.services, app.services.directory.user("bob"), first.id, Decision.APPROVE, ""
    )
    assert run(app, "dave", first.id).ok
    # a session setting made by one execution does not reach the next one
    setter = ask(app, "dave", sql("SELECT set_config('application_name', 'leak', false)"))
    assert run(app, "dave", setter.id).ok
    shown = ask(app, "dave", sql("SELECT current_setting('application_name')"))
    assert run(app, "dave", shown.id).output["rows"] == [[""]]
    # the same statement many times over reset connections (no stale prepared statements)
    for i in range(8):
        again = ask(app, "dave", sql("SELECT count(*) FROM accounts"))
        assert run(app, "dave", again.id).ok, i


def test_reads_are_masked_and_limited(gateway) -> None:
    app = gateway
    r = ask(app, "dave", sql("SELECT id, email, card, balance FROM accounts ORDER BY id"))
    assert r.status is Status.APPROVED  # a read passes by policy
    done = run(app, "dave", r.id)
    assert done.ok and done.summary == "5 row(s) (truncated)"
    assert done.output["columns"] == ["id", "email", "card", "balance"]
    assert done.output["rows"][0] == [1, "****", "****", 100]
    assert done.output["truncated"] is True
    text = json.dumps(done.output)
    assert "@example.com" not in text and "4111111111111" not in text


def test_a_masked_column_stays_masked_under_another_name(gateway) -> None:
    """An alias, an expression over it, or a subquery does not unmask a column; a plain
    column beside it is shown."""
    app = gateway
    statements = [
        "SELECT id, email AS contact FROM accounts ORDER BY id",
        "SELECT id, upper(email) AS contact FROM accounts ORDER BY id",
        "SELECT id, email || '' AS contact FROM accounts ORDER BY id",
        "SELECT id, x.c AS contact FROM (SELECT id, email AS c FROM accounts) x ORDER BY id",
    ]
    for text in statements:
        r = ask(app, "dave", sql(text))
        done = run(app, "dave", r.id)
        assert done.ok, (text, done.summary)
        assert done.output["rows"][0] == [1, "****"], text
        assert "@example.com" not in json.dumps(done.output), text


def test_a_read_only_grant_refuses_a_write_inside_the_transaction(gateway, target_db) -> None:
    app = gateway
    # the parser sees a SELECT; PostgreSQL's READ ONLY transaction sees the write
    r = ask(app, "dave", sql("SELECT setval('ticket_seq', 500)"))
    assert r.status is Status.APPROVED and r.read_only
    done = run(app, "dave", r.id)
    assert not done.ok and done.summary.startswith("refused: the grant is read-only")
    assert done.request.status is Status.FAILED
    with psycopg.connect(target_db) as conn:
        assert conn.execute("SELECT last_value FROM ticket_seq").fetchone() == (1,)


def test_a_statement_past_its_timeout_is_cancelled_and_recorded_as_failed(gateway) -> None:
    app = gateway
    r = ask(app, "dave", sql("SELECT pg_sleep(5)"))
    done = run(app, "dave", r.id)
    assert not done.ok and done.summary == "cancelled: the statement ran past 1000 ms"
    assert reload(app.services, r.id).status is Status.FAILED
    assert audit_types(app, r.id)[-1] == "request.failed"


def test_policies_see_what_the_sql_does(gateway) -> None:
    app = gateway
    for text in (
        "DELETE FROM accounts",
        "UPDATE accounts SET balance = 0",
        "DROP TABLE accounts",
        "SELECT 1; DELETE FROM accounts WHERE id = 1",
        "SELEC nonsense",
    ):
        r = ask(app, "dave", sql(text))
        assert (r.status, r.policy_name) == (Status.DENIED, "no-dangerous-sql"), text
    r = ask(app, "dave", sql("DELETE FROM accounts WHERE id = 2"))
    assert (r.status, r.policy_name) == (Status.PENDING, "writes-need-a-dba")


def test_a_changed_statement_is_refused_and_audited(gateway, target_db) -> None:
    app = gateway
    svc = app.services
    r = ask(app, "dave", sql("UPDATE accounts SET balance = 1 WHERE id = 4"))
    use_cases.cast_vote(svc, svc.directory.user("bob"), r.id, Decision.APPROVE, "")
    token = svc.signer.issue(reload(svc, r.id))
    changed = sql("UPDATE accounts SET balance = 1 WHERE id = 4 ")  # one more byte
    with pytest.raises(GrantRefused) as refused:
        use_cases.redeem_grant(svc, svc.directory.user("dave"), token, changed)
    assert refused.value.reason == "action_mismatch"
    assert "grant.refused" in audit_types(app, r.id)
    assert run(app, "dave", r.id).ok  # the refusal cost nothing: the approved one runs
    assert balance(target_db, 4) == 1


def test_bad_params_are_refused_at_submission(gateway) -> None:
    app = gateway
    with pytest.raises(InvalidInput, match=r"params\.sql must be a statement"):
        ask(app, "dave", Action("sql.execute", "pg/scratch", {"query": "select 1"}))
    with pytest.raises(InvalidInput, match="does not allow '/bin/rm'"):
        ask(app, "dave", Action("command.run", "ops/restart", {"argv": ["/bin/rm", "-rf", "/"]}))
    with pytest.raises(InvalidInput, match="leaves the base URL"):
        ask(
            app,
            "dave",
            Action("http.request", "deploy/api", {"method": "GET", "path": "http://evil/x"}),
        )


def test_a_command_runs_with_its_fixed_environment(gateway, tmp_path: Path, monkeypatch) -> None:
    app = gateway
    # the server's own environment (the scratch DSN, the deploy token, this sentinel) must
    # not reach the command: it gets the target's env and nothing else
    monkeypatch.setenv("SIGNOFF_TEST_SENTINEL", "sentinel-value-4b1d")
    script = str(tmp_path / "restart-app")
    r = ask(app, "dave", Action("command.run", "ops/restart", {"argv": [script, "billing"]}))
    use_cases.cast_vote(
        app.services, app.services.directory.user("bob"), r.id, Decision.APPROVE, ""
    )
    done = run(app, "dave", r.id)
    assert done.ok and done.summary == "exit 0"
    restarting, path, names = done.output["stdout"].splitlines()
    assert restarting == f"restarting billing in {tmp_path}"
    assert path == "path=/usr/bin:/bin"
    seen = set(names.removeprefix("names:").split())
    assert "SIGNOFF_TEST_SENTINEL" not in seen and "SCRATCH_DSN" not in seen
    assert seen - {"PWD", "SHLVL", "_"} == {"PATH", "TOKEN"}  # what /bin/sh adds aside
    assert "sentinel-value-4b1d" not in done.output["stdout"] + done.output["stderr"]
    assert done.output["stderr"] == "****\n"  # the secret printed by the script is masked


def test_an_http_call_gets_the_target_credentials(gateway, receiver: HttpRecorder) -> None:
    app = gateway
    action = Action(
        "http.request",
        "deploy/api",
        {"method": "POST", "path": "deploys", "body": {"service": "billing", "ref": "v42"}},
    )
    r = ask(app, "dave", action)
    done = run(app, "dave", r.id)
    assert done.ok and done.summary == "HTTP 200"
    [call] = receiver.calls
    assert (call["path"], call["body"]) == ("/api/deploys", {"service": "billing", "ref": "v42"})
    assert call["headers"]["authorization"] == f"Bearer {HTTP_TOKEN}"


def test_secrets_appear_in_no_response_log_or_audit_entry(
    gateway, database_url: str, caplog, receiver: HttpRecorder
) -> None:
    app = gateway
    caplog.set_level(logging.DEBUG)
    server = LiveServer(app).start()
    try:
        seen = []
        with server.client("dave") as c:

            def ask_and_run(type_: str, target: str, params: dict) -> None:
                body = {"action": {"type": type_, "target": target, "params": params}}
                r = c.post("/v1/requests", json=body).json()
                seen.append(json.dumps(r))
                seen.append(c.post(f"/v1/requests/{r['id']}/execute").text)
                seen.append(c.get(f"/v1/requests/{r['id']}/executions").text)
                seen.append(c.get(f"/v1/requests/{r['id']}").text)

            ask_and_run("sql.execute", "pg/scratch", {"sql": "SELECT * FROM missing_table"})
            ask_and_run("sql.execute", "pg/down", {"sql": "SELECT 1"})
            ask_and_run("http.request", "deploy/api", {"method": "GET", "path": "status"})
        assert "missing_table" in seen[1] and '"ok":false' in seen[1]
        with server.client("alice") as c:
            seen.append(c.get("/v1/audit").text)
            metrics = c.get("/metrics").text
            seen.append(metrics)
        for target, outcome in (("pg/scratch", "failed"), ("pg/down", "not_run")):
            line = f'signoff_executions_total{{outcome="{outcome}",target="{target}"}} 1.0'
            assert line in metrics
    finally:
        server.stop()
    with app.engine.connect() as conn:
        seen += [json.dumps(r[0]) for r in conn.execute(sa.select(t.outbox.c.payload))]
        seen += [json.dumps(r[0]) for r in conn.execute(sa.select(t.executions.c.output))]
    seen.append(caplog.text)
    everything = "\n".join(seen)
    for secret in (SECRET, HTTP_TOKEN, "restart-secret-1"):
        assert secret not in everything


def test_the_execute_answer_is_the_output_as_digested_and_stored(gateway) -> None:
    """The HTTP answer carries the output as the bytes digested in the audit log and kept
    with the execution: the same rows, every field of the execution beside them."""
    server = LiveServer(gateway).start()
    try:
        with server.client("dave") as c:
            action = {"type": "sql.execute", "target": "pg/scratch",
                      "params": {"sql": "SELECT id, email, balance, 'é\"' AS t FROM accounts"
                                        " ORDER BY id LIMIT 2"}}  # fmt: skip
            r = c.post("/v1/requests", json={"action": action}).json()
            answer = c.post(f"/v1/requests/{r['id']}/execute")
            [stored] = c.get(f"/v1/requests/{r['id']}/executions").json()
    finally:
        server.stop()
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    done = answer.json()
    assert set(done) == {
        "id", "request_id", "actor", "started_at", "finished_at", "ok", "summary", "output",
        "output_digest", "request_status",
    }  # fmt: skip
    assert done["output"] == {
        "columns": ["id", "email", "balance", "t"],
        "rows": [[1, "****", 100, 'é"'], [2, "****", 100, 'é"']],
        "truncated": False,
    }
    assert done == stored | {"request_status": "executed"}
    assert done["output_digest"] == sha256_hex(canonical_json(done["output"]))


def test_floats_and_other_types_are_digested_as_their_canonical_json(gateway) -> None:
    """Rows without a float are encoded by a faster encoder that writes the same bytes;
    rows with one (where the two differ: 1e-05 against 0.00001) by the canonical one. Either
    way the digest is the canonical JSON's of the output the caller reads."""
    statements = {
        "floats": "SELECT 0.00001::float8 AS f, 1e16::float8 AS g, 1.5::float4 AS h",
        "others": "SELECT 12345678901::int8 AS i, 1.50::numeric AS n, DATE '2026-12-05' AS d,"
        " TIMESTAMPTZ '2026-12-05 10:00:00+00' AS t, INTERVAL '1 day' AS v,"
        " '00000000-0000-0000-0000-000000000001'::uuid AS u, 'é\"'::text AS s, true AS b",
    }
    server = LiveServer(gateway).start()
    answers = {}
    try:
        with server.client("dave") as c:
            for name, sql in statements.items():
                action = {"type": "sql.execute", "target": "pg/scratch", "params": {"sql": sql}}
                r = c.post("/v1/requests", json={"action": action}).json()
                answers[name] = c.post(f"/v1/requests/{r['id']}/execute")
    finally:
        server.stop()
    for name, answer in answers.items():
        assert answer.status_code == 200, answer.text
        done = answer.json()
        assert done["ok"], done
        assert done["output_digest"] == sha256_hex(canonical_json(done["output"])), name
    assert b"1e-05" in answers["floats"].content and b"1e+16" in answers["floats"].content
    assert answers["others"].json()["output"]["rows"] == [
        [12345678901, "1.50", "2026-12-05", "2026-12-05T10:00:00+00:00", "1 day, 0:00:00",
         "00000000-0000-0000-0000-000000000001", 'é"', True]
    ]  # fmt: skip


def test_target_file_problems_are_reported_with_positions(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("NOPE_DSN", raising=False)
    path = tmp_path / "targets.yaml"
    path.write_text(
        "targets:\n"
        "  - name: pg/a\n    executor: postgres\n    dsn: {env: NOPE_DSN}\n"
        "  - name: ops/b\n    executor: command\n    allow: [relative/tool]\n"
        "  - name: c\n    executor: ftp\n"
    )
    with pytest.raises(PolicyError) as info:
        load_targets(path)
    found = [str(p).replace(str(tmp_path) + "/", "") for p in info.value.problems]
    assert found == [
        "targets.yaml:9:15: targets.2.executor: Input should be 'postgres', 'command' or 'http'"
    ]
    path.write_text(
        "targets:\n"
        "  - name: pg/a\n    executor: postgres\n    dsn: {env: NOPE_DSN}\n"
        "  - name: ops/b\n    executor: command\n    allow: [relative/tool]\n"
    )
    with pytest.raises(PolicyError) as info:
        load_targets(path)
    found = [str(p).replace(str(tmp_path) + "/", "") for p in info.value.problems]
    assert found == [
        "targets.yaml:4:10: environment variable NOPE_DSN is not set",
        "targets.yaml:7:13: 'relative/tool': allow-listed executables are absolute paths",
    ]
