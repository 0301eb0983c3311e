"""How the approval flow behaves, from the command line: ``signoff report`` (a server's
``/v1/analytics/report``), as tables, JSON or CSV."""

from __future__ import annotations

import csv
import io
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from signoff.domain.durations import brief
from signoff.entrypoints.cli.options import JsonOpt
from signoff.entrypoints.cli.output import EXIT_DENIED, fail, out, say
from signoff.entrypoints.cli.remote import client, show_rows
from signoff.wording import plural


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


POLICY_COLUMNS = (
    ("policy", "name"),
    ("requests", "requests"),
    ("allowed", "allowed"),
    ("denied by policy", "denied_by_policy"),
    ("reviewed", "reviewed"),
    ("approved", "approved"),
    ("denied", "denied"),
    ("timed out", "timed_out"),
    ("cancelled", "cancelled"),
    ("escalated", "escalated"),
    ("approval rate", "approval_rate"),
    ("decision p50", "decision_p50_s"),
    ("decision p90", "decision_p90_s"),
    ("first look p50", "first_look_p50_s"),
)
APPROVER_COLUMNS = (
    ("approver", "name"),
    ("asks", "asks"),
    ("votes", "votes"),
    ("approval rate", "approval_rate"),
    ("look to decision p50", "look_to_decision_p50_s"),
    ("quick approvals", "quick_approvals"),
    ("notifications a day", "notifications_per_day"),
    ("busiest day", "busiest_day"),
)
CHANNEL_COLUMNS = (
    ("channel", "name"),
    ("votes", "votes"),
    ("approvals", "approvals"),
    ("denials", "denials"),
    ("decision p50", "decision_p50_s"),
)


def report(
    since: Annotated[
        str,
        typer.Option(
            metavar="WHEN", help="From this long ago (30d, 12h) or this date (2026-11-01)."
        ),
    ] = "30d",
    until: Annotated[
        str | None, typer.Option(metavar="DATE", help="Up to this date (default: now).")
    ] = None,
    policy: Annotated[str | None, typer.Option(metavar="NAME", help="Only this policy.")] = None,
    fmt: Annotated[
        Format,
        typer.Option(
            "--format",
            metavar="[table|json|csv]",
            case_sensitive=False,
            help="Tables (default), JSON, or CSV with one figure a line.",
        ),
    ] = Format.TABLE,
) -> None:
    """How the approval flow behaved: per policy, approver and channel, the queue now,
    and findings (rubber-stamping, rules that only make noise, who is asked too often).

    Admins see everything; anyone else their own figures as an approver."""
    params = {"since": since}
    if until:
        params["until"] = until
    if policy:
        params["policy"] = policy
    with client() as c:
        rep = c.report(params)
    if fmt is Format.JSON:
        out.print_json(json.dumps(rep))
    elif fmt is Format.CSV:
        out.print(to_csv(rep), end="", markup=False, highlight=False, soft_wrap=True)
    else:
        _tables(rep)


class FailOn(StrEnum):
    WIDENING = "widening"
    CHANGE = "change"


def policy_replay(
    folder: Annotated[
        Path,
        typer.Argument(metavar="DIR", help="The candidate policy folder (*.yaml files)."),
    ],
    since: Annotated[
        str,
        typer.Option(metavar="WHEN", help="Replay the asks from this long ago (30d) or this date."),
    ] = "30d",
    until: Annotated[
        str | None, typer.Option(metavar="DATE", help="Up to this date (default: now).")
    ] = None,
    fail_on: Annotated[
        FailOn | None,
        typer.Option(
            metavar="[widening|change]",
            case_sensitive=False,
            help="Exit 1 when the candidate allows or softens anything the current set did "
            "not (widening), or changes anything (change): for a policy repository's CI.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """What a candidate policy set would have changed: the server judges every stored
    ask of the window (as it was judged: the requester's groups and claims then) with the
    current set and the candidate, and says which outcomes, approvers and quorums differ,
    with examples. Admins only."""
    files = _policy_texts(folder)
    body: dict[str, Any] = {"files": files, "since": since}
    if until:
        body["until"] = until
    with client() as c:
        result = c.replay(body)
    if as_json:
        out.print_json(json.dumps(result))
    else:
        _say_replay(result)
    if fail_on is FailOn.WIDENING and result["widening"]:
        fail(f"the candidate widens {plural(result['widening'], 'ask')}", EXIT_DENIED)
    if fail_on is FailOn.CHANGE and result["changed"]:
        fail(f"the candidate changes {plural(result['changed'], 'ask')}", EXIT_DENIED)


def _policy_texts(folder: Path) -> dict[str, str]:
    if not folder.is_dir():
        fail(f"{folder}: not a folder")
    paths = sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    if not paths:
        fail(f"{folder}: no policy files (*.yaml) in this folder")
    texts = {}
    for p in paths:
        try:
            texts[p.name] = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"{p}: cannot be read ({type(exc).__name__})")
    return texts


def _minute(iso: str) -> str:
    """An ISO time from the API to the minute: 2026-11-02 17:00."""
    return iso[:16].replace("T", " ")


def _say_replay(r: dict[str, Any]) -> None:
    window = f"{_minute(r['since'])} to {_minute(r['until'])} UTC"
    say(f"Replayed {plural(r['requests'], 'stored ask')} of {window}: {r['changed']} would change")
    if r["approximate"]:
        say(
            f"  ({r['approximate']} stored before requesters' groups were recorded: judged "
            "with their groups of today)"
        )
    for move, n in r["outcomes"].items():
        say(f"  {move}: {n}")
    if r["quorum_changes"]:
        say(f"  approvals needed changed: {r['quorum_changes']}")
    if r["approver_changes"]:
        say(f"  approvers changed: {r['approver_changes']}")
    for move, n in r["policies"].items():
        say(f"  matched by another policy ({move}): {n}")
    say(
        f"Asks approvers would be spared: {r['asks_spared']}; given: {r['asks_given']}. "
        f"Widening: {r['widening']}; narrowing: {r['narrowing']}."
    )
    for kind, examples in r["examples"].items():
        say(f"Examples of {kind}:")
        for e in examples:
            say(f"  {e['id']}: {e['current']}  =>  {e['candidate']}")


def to_csv(rep: dict[str, Any]) -> str:
    """One figure a line, ``section,subject,figure,value``: every table of the report in
    one file a spreadsheet or a script reads without knowing its shape."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["section", "subject", "figure", "value"])
    for section in ("policies", "approvers", "channels"):
        for row in rep[section]:
            for key, value in row.items():
                if key != "name":
                    w.writerow([section, row["name"], key, "" if value is None else value])
    for f in rep["findings"]:
        w.writerow(["findings", f["subject"], f["kind"], f["evidence"]])
    return buf.getvalue()


def _cell(key: str, value: Any) -> str:
    if key.endswith("_s"):
        return brief(value)
    if key.endswith("rate"):
        return "-" if value is None else f"{value:.0%}"
    return str(value)


def _tables(rep: dict[str, Any]) -> None:
    window = f"{_minute(rep['since'])} to {_minute(rep['until'])} UTC"
    if rep["policies"] or rep["channels"] or rep.get("queue"):  # the queue is an admin's
        say(f"Approval flow, {window}: {rep['requests']} requests")
    else:
        say(f"Your figures as an approver, {window}")
    for title, columns, rows in (
        ("Policies", POLICY_COLUMNS, rep["policies"]),
        ("Approvers", APPROVER_COLUMNS, rep["approvers"]),
        ("Channels where decisions are made", CHANNEL_COLUMNS, rep["channels"]),
    ):
        if not rows and title != "Approvers":
            continue
        say("")
        say(title)
        if not rows:
            say("  none in this window")
            continue
        show_rows(
            [c for c, _ in columns], [[_cell(k, r[k]) for _, k in columns] for r in rows], True
        )
    queue = rep.get("queue") or {}
    if queue:
        say("")
        say(f"Queue: {queue['pending']} pending now")
        for q in queue["oldest"][:10]:
            say(
                f"  {q['id']}  {q['type']} on {q['target']}  by {q['requester']}, "
                f"waiting {brief(q['waiting_s'])} ({q['policy']})"
            )
        due = queue["due_within_hour"]
        say(f"Deadlines within the hour: {len(due) or 'none'}")
        for q in due[:10]:
            say(f"  {q['id']}  {q['policy']}, deadline {_minute(q['deadline_at'])}")
    say("")
    from signoff.services.analytics import FINDING_KINDS

    findings = rep["findings"]
    say(f"Findings: {len(findings) or 'none'}")
    for f in findings:
        title = FINDING_KINDS.get(f["kind"], f["kind"])
        say(f"- {title}: {f['subject']}: {f['evidence']}")
        say(f"  suggestion: {f['suggestion']}")
