"""Policy replay over the known history of ``test_analytics``: a candidate that changes
nothing, one that widens (allows what was reviewed, adds approvers, lowers a quorum) and
one that narrows, each counted exactly; the requester is judged as they were then; the
CLI's --fail-on for a policy repository's CI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from signoff.adapters.db import tables as t
from signoff.bootstrap import App
from signoff.services.ports import FixedClock
from tests.conftest import FIXTURES, LiveServer
from tests.integration.test_analytics import T0, make_history

from ..conftest import fixed_app

CURRENT = (FIXTURES / "policies" / "10-main.yaml").read_text()
WINDOW = {"since": "2026-11-02", "until": "2026-11-03"}

ESCALATING = CURRENT[
    CURRENT.index("  - name: escalating-change") : CURRENT.index("  - name: flag-deny-on-timeout")
]
ALLOW_CHANGES = """  - name: escalating-change
    match: {type: config.change}
    outcome: allow

"""
READ_ONLY = """      condition: 'action.sql.kind == "read"'
    outcome: allow"""
PROD_WRITE_APPROVERS = """          approvers: {groups: [dba]}
          quorum: 2
          timeout: 30m"""


@pytest.fixture
def site(database_url: str, tmp_path: Path) -> Iterator[tuple[App, LiveServer]]:
    clock = FixedClock(T0)
    app = fixed_app(database_url, tmp_path, clock)
    make_history(app, clock)
    server = LiveServer(app).start()
    yield app, server
    server.stop()
    app.close()


def replay(server: LiveServer, text: str, user: str = "alice") -> Any:
    body = {"files": {"10-main.yaml": text}, **WINDOW}
    return server.client(user).post("/v1/policies/replay", json=body)


def test_an_unchanged_set_changes_nothing(site) -> None:
    _, server = site
    r = replay(server, CURRENT).json()
    assert (r["requests"], r["changed"], r["widening"], r["narrowing"]) == (49, 0, 0, 0)
    assert r["approximate"] == 0  # every ask was stored with its requester as judged


def test_allowing_what_was_always_approved_widens_and_spares_asks(site) -> None:
    _, server = site
    candidate = CURRENT.replace(ESCALATING, ALLOW_CHANGES)
    r = replay(server, candidate).json()
    assert r["outcomes"] == {"review -> allow": 25}
    assert (r["changed"], r["widening"], r["narrowing"]) == (25, 25, 0)
    assert (r["asks_spared"], r["asks_given"]) == (50, 0)  # bob and carol, 25 times
    example = r["examples"]["review -> allow"][0]
    assert example["current"] == "review (escalating-change): 1 of bob, carol"
    assert example["candidate"] == "allow (escalating-change)"


def test_more_approvers_and_a_lower_quorum_widen(site) -> None:
    _, server = site
    candidate = CURRENT.replace(
        PROD_WRITE_APPROVERS,
        "          approvers: {groups: [dba, sre]}\n          quorum: 1\n          timeout: 30m",
    )
    r = replay(server, candidate).json()
    assert (r["changed"], r["quorum_changes"], r["approver_changes"]) == (14, 14, 14)
    assert r["widening"] == 14 and r["asks_given"] == 14  # dave is asked too
    assert r["examples"]["approvals needed 2 -> 1 (1 -> 1 stages)"][0]["what"] == [
        "approvals needed 2 -> 1 (1 -> 1 stages)",
        "approvers +dave",
    ]


def test_reviewing_what_was_allowed_narrows_and_gives_asks(site) -> None:
    _, server = site
    candidate = CURRENT.replace(
        READ_ONLY,
        """      condition: 'action.sql.kind == "read"'
    outcome: review
    review:
      stages:
        - {approvers: {groups: [dba]}, quorum: 1}""",
    )
    r = replay(server, candidate).json()
    assert r["outcomes"] == {"allow -> review": 5}
    assert (r["widening"], r["narrowing"], r["asks_given"]) == (0, 5, 10)


def test_the_requester_is_judged_as_they_were_then(site) -> None:
    app, server = site
    # frank is in no group today; say he was in sre when he asked for the first 10
    # changes: a candidate that allows sre's changes allows those 10, not the rest
    with app.engine.begin() as conn:
        ids = (
            conn.execute(
                sa.select(t.requests.c.id)
                .where(t.requests.c.policy_name == "escalating-change")
                .order_by(t.requests.c.created_at)
                .limit(10)
            )
            .scalars()
            .all()
        )
        conn.execute(
            t.requests.update()
            .where(t.requests.c.id.in_(ids))
            .values(requester_snapshot={"groups": ["sre"], "admin": False, "claims": {}})
        )
    candidate = CURRENT.replace(
        "  - name: escalating-change",
        """  - name: sre-changes
    match: {type: config.change, condition: '"sre" in requester.groups'}
    outcome: allow

  - name: escalating-change""",
    )
    r = replay(server, candidate).json()
    assert r["outcomes"] == {"review -> allow": 10}
    assert {e["id"] for e in r["examples"]["review -> allow"]} <= set(ids)


def test_refusals(site) -> None:
    _, server = site
    broken = replay(server, CURRENT.replace("outcome: deny\n", "outcome: maybe\n", 1))
    assert broken.status_code == 422
    problem = broken.json()["problems"][0]
    assert problem["file"] == "10-main.yaml" and problem["line"] > 1
    assert replay(server, CURRENT, user="bob").status_code == 403
    bad = server.client("alice").post(
        "/v1/policies/replay", json={"files": {"../x.yaml": CURRENT}, **WINDOW}
    )
    assert bad.status_code == 422 and bad.json()["problems"][0]["file"] == "../x.yaml"


def _cli(server: LiveServer, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SIGNOFF_URL": server.url, "SIGNOFF_TOKEN": server.tokens["alice"]}
    return subprocess.run(
        [sys.executable, "-m", "signoff", "policy", "replay", str(folder), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_cli_fails_a_widening_candidate_for_ci(site, tmp_path: Path) -> None:
    _, server = site
    window = ("--since", WINDOW["since"], "--until", WINDOW["until"])
    same = tmp_path / "same"
    same.mkdir()
    (same / "10-main.yaml").write_text(CURRENT)
    ok = _cli(server, same, *window, "--fail-on", "widening")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[0] == (
        "Replayed 49 stored asks of 2026-11-02 00:00 to 2026-11-03 00:00 UTC: 0 would change"
    )
    wide = tmp_path / "wide"
    wide.mkdir()
    (wide / "10-main.yaml").write_text(CURRENT.replace(ESCALATING, ALLOW_CHANGES))
    refused = _cli(server, wide, *window, "--fail-on", "widening")
    assert refused.returncode == 1
    assert "  review -> allow: 25" in refused.stdout.splitlines()
    assert refused.stderr.strip() == "error: the candidate widens 25 asks"
    assert _cli(server, wide, *window).returncode == 0  # without --fail-on: a report
    missing = _cli(server, tmp_path / "nowhere")
    assert missing.returncode == 2 and "not a folder" in missing.stderr
