"""Signed checkpoints kept outside the database find what the chain alone cannot: a
chain rewritten with every hash recomputed and its head moved along, a tail cut with
the head moved back, a wiped log; and checkpoints not signed by the server's keys."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signoff.adapters.checkpoints import read_checkpoints, sign
from signoff.adapters.db import tables as t
from signoff.bootstrap import build
from signoff.domain.actions import Action
from signoff.domain.audit import GENESIS_HASH, Checkpoint, event_hash
from signoff.domain.errors import InvalidInput
from signoff.services import requests as use_cases
from signoff.services.views import verify_audit

from ..conftest import make_settings


@pytest.fixture
def anchored(database_url: str, tmp_path: Path):
    yield from _anchored(database_url, tmp_path)


@pytest.fixture
def anchored_sqlite(tmp_path: Path, sqlite_template: Path):
    """The command is the same on both databases: it runs once, on SQLite."""
    shutil.copy(sqlite_template, tmp_path / "signoff.db")
    yield from _anchored(f"sqlite:///{tmp_path / 'signoff.db'}", tmp_path)


def _anchored(database_url: str, tmp_path: Path):
    anchors = tmp_path / "elsewhere" / "checkpoints.jsonl"
    app = build(make_settings(database_url, tmp_path, checkpoints=f"file:{anchors}"))
    frank = app.directory.user("frank")
    for n in range(3):
        action = Action("sql.execute", "pg/x", {"sql": f"select {n}"})
        use_cases.submit_request(app.services, frank, action, "", None, {})
    yield app, anchors
    app.close()


def rechain(app, from_seq: int = 1) -> None:
    """What an attacker with the database does: recompute every hash from ``from_seq``
    and move the head along, so the chain verifies again."""
    with app.engine.begin() as conn:
        rows = conn.execute(sa.select(t.audit_events).order_by(t.audit_events.c.seq)).mappings()
        prev = GENESIS_HASH
        for row in list(rows):
            if row["seq"] >= from_seq:
                h = event_hash(
                    row["seq"],
                    row["at"],
                    row["actor"],
                    row["type"],
                    row["request_id"],
                    json.dumps(row["payload"], sort_keys=True, separators=(",", ":"))
                    if not isinstance(row["payload"], str)
                    else row["payload"],
                    prev,
                )
                conn.execute(
                    t.audit_events.update()
                    .where(t.audit_events.c.seq == row["seq"])
                    .values(prev_hash=prev, hash=h)
                )
                prev = h
            else:
                prev = row["hash"]
        seq = conn.execute(sa.select(sa.func.max(t.audit_events.c.seq))).scalar() or 0
        conn.execute(t.audit_head.update().values(seq=seq, hash=prev if seq else GENESIS_HASH))


def test_checkpoints_agree_with_an_untouched_chain(anchored) -> None:
    app, anchors = anchored
    made = app.checkpoint()
    assert made is not None and made.seq == 9
    [stored] = read_checkpoints(anchors)
    assert stored == made
    assert app.check_checkpoints(read_checkpoints(anchors)) == []


def test_a_rewritten_chain_is_found(anchored) -> None:
    app, anchors = anchored
    app.checkpoint()
    with app.engine.begin() as conn:  # edit an event, then recompute everything after it
        conn.execute(
            t.audit_events.update().where(t.audit_events.c.seq == 2).values(actor="mallory")
        )
    rechain(app)
    assert verify_audit(app.services).ok  # the chain alone cannot tell
    [problem] = app.check_checkpoints(read_checkpoints(anchors))
    assert "event 9 differs from its checkpoint: the chain was rewritten" in problem


def test_a_cut_tail_and_a_wiped_log_are_found(anchored) -> None:
    app, anchors = anchored
    app.checkpoint()
    with app.engine.begin() as conn:
        conn.execute(t.audit_events.delete().where(t.audit_events.c.seq > 5))
    rechain(app)
    assert verify_audit(app.services).ok
    [cut] = app.check_checkpoints(read_checkpoints(anchors))
    assert "the log ends at event 5: events were removed" in cut
    with app.engine.begin() as conn:
        conn.execute(t.audit_events.delete())
    rechain(app)
    [wiped] = app.check_checkpoints(read_checkpoints(anchors))
    assert "the log was wiped" in wiped


def test_checkpoints_not_signed_by_the_server_are_refused(anchored) -> None:
    app, _ = anchored
    made = app.checkpoint()
    assert made is not None
    other = sign(Checkpoint(made.seq, made.hash, made.at, made.kid), Ed25519PrivateKey.generate())
    altered = Checkpoint(made.seq, "0" * 64, made.at, made.kid, made.signature)
    problems = app.check_checkpoints([other, altered])
    assert len(problems) == 2 and all("not signed by this server's keys" in p for p in problems)


def test_the_cli_reports_a_cut_chain_against_checkpoints(anchored_sqlite, tmp_path) -> None:
    app, anchors = anchored_sqlite
    app.checkpoint()
    env = {
        **os.environ,
        "SIGNOFF_DATABASE_URL": str(app.engine.url),
        "SIGNOFF_DATA_DIR": str(tmp_path),
        "SIGNOFF_POLICIES_DIR": str(app.settings.policies_dir),
        "SIGNOFF_USERS_FILE": str(app.settings.users_file),
    }
    command = [sys.executable, "-m", "signoff", "audit", "verify", "--checkpoints", str(anchors)]
    ok = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "1 checkpoint(s) agree" in ok.stdout
    with app.engine.begin() as conn:
        conn.execute(t.audit_events.delete().where(t.audit_events.c.seq > 3))
    rechain(app)
    bad = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert "events were removed" in bad.stderr and "Traceback" not in bad.stderr


def test_checkpoints_reach_a_webhook_and_a_bad_sink_is_refused_at_start(
    database_url: str, tmp_path: Path, receiver
) -> None:
    app = build(make_settings(database_url, tmp_path, checkpoints=f"webhook:{receiver.url}/anchor"))
    try:
        frank = app.directory.user("frank")
        use_cases.submit_request(
            app.services, frank, Action("sql.execute", "pg/x", {"sql": "select 1"}), "", None, {}
        )
        made = app.checkpoint()
        assert made is not None
        [posted] = receiver.at("/anchor")
        assert posted == made.as_dict()
        assert app.check_checkpoints([Checkpoint(**posted)]) == []
    finally:
        app.close()
    with pytest.raises(InvalidInput, match="SIGNOFF_CHECKPOINTS"):
        build(make_settings(database_url, tmp_path, checkpoints="s3://bucket"))


def test_the_worker_writes_checkpoints_on_its_own(database_url: str, tmp_path: Path) -> None:
    import time

    anchors = tmp_path / "elsewhere" / "checkpoints.jsonl"
    settings = make_settings(
        database_url,
        tmp_path,
        checkpoints=f"file:{anchors}",
        checkpoint_every="1s",
        worker_interval_seconds=0.05,
    )
    app = build(settings)
    worker = app.worker().start()
    try:
        frank = app.directory.user("frank")
        use_cases.submit_request(
            app.services, frank, Action("sql.execute", "pg/x", {"sql": "select 1"}), "", None, {}
        )
        deadline = time.monotonic() + 10
        while not anchors.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        [written] = read_checkpoints(anchors)
        assert written.seq == 3 and app.check_checkpoints([written]) == []
    finally:
        worker.stop()
        app.close()


def test_only_admins_write_checkpoints_through_the_api(anchored) -> None:
    from ..conftest import LiveServer

    app, anchors = anchored
    server = LiveServer(app).start()
    try:
        for user, status in (("bob", 403), ("alice", 200)):
            with server.client(user) as web:
                resp = web.post("/v1/audit/checkpoints")
            assert resp.status_code == status, resp.text
    finally:
        server.stop()
    [written] = read_checkpoints(anchors)
    assert resp.json()["checkpoint"] == written.as_dict()
