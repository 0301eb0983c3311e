"""Policy-as-code loading: every problem reported with file, line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from signoff.adapters.directory_file import load_directory
from signoff.adapters.policy_files import load_policy_set
from signoff.domain.errors import PolicyError

FIXTURES = Path(__file__).parent.parent / "fixtures"


@pytest.fixture
def directory():
    return load_directory(FIXTURES / "users.yaml")


def problems(tmp_path: Path, directory, text: str, default: bool = True) -> list[str]:
    (tmp_path / "p.yaml").write_text(text)
    if default:
        (tmp_path / "z-default.yaml").write_text("default: {outcome: deny}\n")
    with pytest.raises(PolicyError) as info:
        load_policy_set(tmp_path, directory)
    return [str(p).replace(str(tmp_path) + "/", "") for p in info.value.problems]


def test_the_fixture_and_example_sets_load(directory) -> None:
    ps = load_policy_set(FIXTURES / "policies", directory)
    assert len(ps) == 10
    assert ps.default.outcome.value == "deny"


def test_yaml_syntax_error_has_position(tmp_path, directory) -> None:
    found = problems(tmp_path, directory, "policies:\n  - name: a\n    outcome: [allow\n")
    # the parser gives up at the end of the file; the mistake is the '[' left open
    assert found == [
        "p.yaml:3:14: YAML error: this '[' is never closed (expected ',' or ']', but got "
        "'<stream end>')"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a '{' left open, found out on the next line: the '{' is the mistake
        (
            "policies:\n  - name: a\n    grant: {ttl: 5m\n    outcome: allow\n",
            "p.yaml:3:12: YAML error: this '{' is never closed (expected ',' or '}', but "
            "got ':' at line 4)",
        ),
        # a quote left open: the parser reads to the end of the file
        (
            "policies:\n  - name: a\n    match: {condition: 'x == 1}\n    outcome: allow\n",
            "p.yaml:3:24: YAML error: this quoted string is never closed (found unexpected "
            "end of stream)",
        ),
        # one space too few: the parser is right about where
        (
            "policies:\n  - name: a\n    outcome: allow\n   grant: {ttl: 5m}\n",
            "p.yaml:4:4: YAML error: expected <block end>, but found '<block mapping start>' "
            "(check this line's indentation; quote a value that contains ': ')",
        ),
        # a second ': ' on one line, within the same '{'
        (
            "policies:\n  - name: a\n    match: {condition: a: b}\n    outcome: allow\n",
            "p.yaml:3:25: YAML error: expected ',' or '}', but got ':'",
        ),
    ],
)
def test_yaml_errors_point_at_the_mistake(tmp_path, directory, text, expected) -> None:
    assert problems(tmp_path, directory, text) == [expected]


def test_unknown_key_points_at_the_key(tmp_path, directory) -> None:
    text = "policies:\n  - name: a\n    outcome: allow\n    grnat: {ttl: 5m}\n"
    assert problems(tmp_path, directory, text) == [
        "p.yaml:4:5: unknown key 'grnat' at policies.0.grnat; did you mean 'grant'?"
    ]


def test_cel_syntax_error_points_into_the_expression(tmp_path, directory) -> None:
    text = 'policies:\n  - name: a\n    match: {condition: "action.type == "}\n    outcome: allow\n'
    found = problems(tmp_path, directory, text)
    assert len(found) == 1
    # the condition's quote is at column 25; CEL reports column 16 of the expression
    assert found[0].startswith("p.yaml:3:40: CEL syntax error")


def test_unknown_cel_variable_and_function(tmp_path, directory) -> None:
    text = (
        "policies:\n"
        "  - name: a\n"
        "    match: {condition: 'actoin.type == \"x\"'}\n"
        "    outcome: allow\n"
        "  - name: b\n"
        "    match: {condition: 'action.type.shout()'}\n"
        "    outcome: allow\n"
        "  - name: c\n"
        "    match: {condition: 'action.params.all(k, k != \"x\")'}\n"
        "    outcome: allow\n"
    )
    # each name pointed at inside the expression (the quote is at column 24)
    assert problems(tmp_path, directory, text) == [
        "p.yaml:3:25: CEL condition uses unknown variable 'actoin'; did you mean 'action'?",
        "p.yaml:6:37: CEL condition calls unknown function 'shout'",
    ]


def test_every_unknown_cel_name_is_reported(tmp_path, directory) -> None:
    text = (
        "policies:\n"
        "  - name: a\n"
        "    match:\n"
        "      condition: >\n"
        '        requester.name.startswith("x")\n'
        '        && rsk == "high"\n'
        "    outcome: allow\n"
    )
    assert problems(tmp_path, directory, text) == [
        "p.yaml:5:24: CEL condition calls unknown function 'startswith'; did you mean "
        "'startsWith'?",
        "p.yaml:6:12: CEL condition uses unknown variable 'rsk'; did you mean 'risk'?",
    ]


def test_unknown_group_user_and_quorum_too_large(tmp_path, directory) -> None:
    text = (
        "policies:\n"
        "  - name: a\n"
        "    outcome: review\n"
        "    review:\n"
        "      stages:\n"
        "        - approvers: {groups: [dba, nope], users: [zed]}\n"
        "          quorum: 4\n"
    )
    assert problems(tmp_path, directory, text) == [
        "p.yaml:6:37: unknown group 'nope'",
        "p.yaml:6:52: unknown user 'zed'",
        "p.yaml:7:19: stage 1 needs 4 approvals but only 2 people can approve: bob, carol",
    ]


def test_names_say_what_was_probably_meant(tmp_path, directory) -> None:
    text = (
        "policies:\n"
        "  - name: a\n"
        "    outcome: allow\n"
        "    grant: {executors: {users: [alcie], groups: [sre, securty]}}\n"
        "    notify: [emial, 'slak:#ops']\n"
    )
    assert problems(tmp_path, directory, text) == [
        "p.yaml:4:33: unknown user 'alcie'; did you mean 'alice'?",
        "p.yaml:4:55: unknown group 'securty'; did you mean 'security'?",
        "p.yaml:5:14: policies.0.notify.0: unknown channel 'emial' (did you mean 'email'?): "
        "use log, email, slack:#channel, slack:dm, teams:NAME, teams:dm, apprise:NAME or "
        "webhook:NAME",
        "p.yaml:5:21: policies.0.notify.1: unknown channel 'slak:#ops' (did you mean "
        "'slack:#ops'?): use log, email, slack:#channel, slack:dm, teams:NAME, teams:dm, "
        "apprise:NAME or webhook:NAME",
    ]


def test_the_quorum_counts_escalation_and_names_who_can_approve(tmp_path, directory) -> None:
    """dba is bob and carol; escalate_to adds erin: three people, not four."""
    text = (
        "policies:\n"
        "  - name: a\n"
        "    outcome: review\n"
        "    review:\n"
        "      stages:\n"
        "        - name: dba\n"
        "          approvers: {groups: [dba]}\n"
        "          quorum: 4\n"
        "          timeout: 1h\n"
        "          escalate_to: {users: [erin]}\n"
        "  - name: b\n"
        "    outcome: review\n"
        "    review:\n"
        "      stages:\n"
        "        - approvers: {users: [frank]}\n"
        "          quorum: 2\n"
        "        - approvers: {users: [frank, alice]}\n"
        "          quorum: 2\n"
        "        - approvers: {users: [dave]}\n"
        "          quorum: 2\n"
    )
    assert problems(tmp_path, directory, text) == [
        "p.yaml:8:19: stage 1 (dba) needs 4 approvals but only 3 people can approve: bob, "
        "carol, erin (escalate_to counted)",
        "p.yaml:16:19: stage 1 needs 2 approvals but only 1 person can approve: frank",
        # stage 1 counted as getting what it can (frank), so stage 2 is short as well
        "p.yaml:18:19: stage 2 needs 2 approvals but those who can approve (alice, frank) "
        "cannot give them once stage 1 has its 1 approval: each person counts once per request",
        "p.yaml:20:19: stage 3 needs 2 approvals but only 1 person can approve: dave",
    ]


def test_stages_that_cannot_be_staffed_by_distinct_people_are_refused(tmp_path, directory) -> None:
    """stage 1 {bob, carol} quorum 2 then stage 2 the same people quorum 1: after stage
    1 nobody is left to vote, so such a request could only time out."""
    text = (
        "policies:\n"
        "  - name: stuck\n"
        "    outcome: review\n"
        "    review:\n"
        "      stages:\n"
        "        - {approvers: {groups: [dba]}, quorum: 2}\n"
        "        - {approvers: {users: [bob, carol]}, quorum: 1}\n"
        "  - name: escalation-counts\n"
        "    outcome: review\n"
        "    review:\n"
        "      stages:\n"
        "        - approvers: {users: [bob]}\n"
        "          quorum: 2\n"
        "          timeout: 1h\n"
        "          escalate_to: {users: [erin]}\n"
    )
    found = problems(tmp_path, directory, text)
    assert found == [
        "p.yaml:7:54: stage 2 needs 1 approval but those who can approve (bob, carol) cannot "
        "give it once stage 1 has its 2 approvals: each person counts once per request"
    ]


def test_bad_duration_regex_and_missing_review(tmp_path, directory) -> None:
    text = (
        "policies:\n"
        "  - name: a\n"
        "    outcome: review\n"
        "  - name: b\n"
        "    outcome: allow\n"
        "    grant: {ttl: soon}\n"
        "    request: {ticket_pattern: '(unclosed'}\n"
    )
    found = problems(tmp_path, directory, text)
    assert found[0] == "p.yaml:2:5: outcome 'review' needs a 'review' with at least one stage"
    assert found[1].startswith("p.yaml:6:18: invalid duration 'soon'")
    # at the '(' the regex compiler complains about (the quote is at column 31)
    assert found[2] == (
        "p.yaml:7:32: invalid ticket_pattern: missing ), unterminated subpattern at position 0"
    )


def test_duplicate_names_and_missing_default(tmp_path, directory) -> None:
    text = "policies:\n  - {name: a, outcome: allow}\n  - {name: a, outcome: deny}\n"
    found = problems(tmp_path, directory, text, default=False)
    assert found[0].startswith("p.yaml:1:1: no default outcome")
    assert found[1].startswith("p.yaml:3:12: policy name 'a' is already used at")


def test_wrong_types_are_reported_with_the_field(tmp_path, directory) -> None:
    text = "policies:\n  - name: a\n    outcome: maybe\n    grant: {uses: many}\n"
    found = problems(tmp_path, directory, text)
    assert found[0].startswith("p.yaml:3:14: policies.0.outcome: Input should be 'allow'")
    assert found[1].startswith("p.yaml:4:19: policies.0.grant.uses: Input should be a valid int")


def test_missing_folder(tmp_path, directory) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy_set(tmp_path / "nope", directory)
    assert "policy folder does not exist" in str(info.value)


def test_a_duration_too_long_to_be_a_date_is_a_problem_not_a_crash(tmp_path, directory) -> None:
    found = problems(
        tmp_path,
        directory,
        "policies:\n  - name: a\n    outcome: allow\n    grant: {ttl: 99999999999d}\n",
    )
    assert found == [
        "p.yaml:4:18: invalid duration '99999999999d': must be at most 100 years (36500d)"
    ]


def test_calls_of_the_requesters_record_are_checked_when_the_set_loads(tmp_path, directory) -> None:
    found = problems(
        tmp_path,
        directory,
        "policies:\n"
        "  - name: two\n"
        '    match: {type: a, condition: \'history.approved("deploy", "s/*") >= 3\'}\n'
        "    outcome: allow\n"
        "  - name: window\n"
        '    match: {type: b, condition: \'history.denied("deploy", "s/*", "90x") == 0\'}\n'
        "    outcome: allow\n"
        "  - name: numbers\n"
        "    match: {type: c, condition: 'history.executed(1, 2, 3) > 0'}\n"
        "    outcome: allow\n"
        "  - name: commas-in-a-glob-are-fine\n"
        '    match: {type: d, condition: \'history.executed("x", "a/*, b", "1d") > 0\'}\n'
        "    outcome: allow\n",
    )
    usage = (
        'history.{0}(TYPE, TARGET_GLOB, WINDOW), e.g. history.{0}("deploy", "staging/*", "90d"),'
    )
    assert found == [
        f"p.yaml:3:34: {usage.format('approved')} takes 3 arguments, not 2",
        "p.yaml:6:34: history.denied: invalid duration '90x': write a number and a unit, "
        "e.g. 90s, 15m, 2h, 7d, 1h30m",
        f"p.yaml:9:34: {usage.format('executed')} takes 3 strings",
    ]


def test_digest_mode_needs_a_period(tmp_path, directory) -> None:
    found = problems(
        tmp_path,
        directory,
        "policies:\n"
        "  - name: a\n    outcome: allow\n    notify_mode: digest\n"
        "  - name: b\n    outcome: allow\n    every: 30m\n"
        "  - name: c\n    outcome: allow\n    notify_mode: digest\n    every: soon\n"
        "  - name: d\n    outcome: allow\n    notify: [teams:ops, 'slack:#x', chat:y]\n",
    )
    assert found == [
        "p.yaml:4:18: notify_mode: digest needs `every: 30m`",
        "p.yaml:7:12: `every` applies only with notify_mode: digest",
        "p.yaml:11:12: invalid duration 'soon': write a number and a unit, e.g. 90s, 15m, "
        "2h, 7d, 1h30m",
        "p.yaml:14:37: policies.3.notify.2: unknown channel 'chat:y': use log, email, "
        "slack:#channel, slack:dm, teams:NAME, teams:dm, apprise:NAME or webhook:NAME",
    ]


# tests/fixtures/policies-broken: three files with mistakes of every kind `policy check`
# knows, several in one policy (a structural mistake beside a CEL one, a wrong outcome
# beside a short quorum), so none hides another. Each is reported once, in file order.
BROKEN_REPORT = [
    "10-sql.yaml:7:19: CEL condition uses unknown variable 'actoin'; did you mean 'action'?",
    "10-sql.yaml:9:5: unknown key 'grnat' at policies.0.grnat; did you mean 'grant'?",
    "10-sql.yaml:13:14: policies.1.outcome: Input should be 'allow', 'deny' or 'review'",
    "10-sql.yaml:17:46: unknown user 'alcie'; did you mean 'alice'?",
    "10-sql.yaml:18:19: stage 1 (dba) needs 4 approvals but only 3 people can approve: "
    "bob, carol, dave (escalate_to counted)",
    "10-sql.yaml:21:28: invalid duration 'soon': write a number and a unit, e.g. 90s, 15m, "
    "2h, 7d, 1h30m",
    "10-sql.yaml:24:80: CEL syntax error: the expression ends too soon",
    "10-sql.yaml:26:14: policies.2.notify.0: unknown channel 'slak:#deploys' (did you mean "
    "'slack:#deploys'?): use log, email, slack:#channel, slack:dm, teams:NAME, teams:dm, "
    "apprise:NAME or webhook:NAME",
    "10-sql.yaml:27:27: unknown group 'auditors'",
    "10-sql.yaml:29:11: policy name 'prod-read' is already used at {dir}/10-sql.yaml:4",
    "10-sql.yaml:31:37: invalid ticket_pattern: missing ), unterminated subpattern at position 5",
    "20-secrets.yaml:4:66: CEL condition calls unknown function 'getHour'; did you mean "
    "'getHours'?",
    "20-secrets.yaml:6:18: notify_mode: digest needs `every: 30m`",
    "20-secrets.yaml:13:19: stage 2 needs 1 approval but those who can approve (erin) "
    "cannot give it once stage 1 has its 1 approval: each person counts once per request",
    "20-secrets.yaml:17:16: default.grant.ttl: Input should be a valid string",
    "30-reports.yaml:6:15: YAML error: this '[' is never closed (expected ',' or ']', but "
    "got ':' at line 7)",
]


def test_a_folder_full_of_mistakes_reports_every_one_in_one_run(directory) -> None:
    broken = FIXTURES / "policies-broken"
    with pytest.raises(PolicyError) as info:
        load_policy_set(broken, directory)
    found = [str(p).removeprefix(f"{broken}/") for p in info.value.problems]
    assert found == [line.replace("{dir}", str(broken)) for line in BROKEN_REPORT]


def test_a_policy_with_a_wrong_key_still_has_its_condition_and_names_checked(
    tmp_path, directory
) -> None:
    """The issue: structural mistakes used to hide CEL and name mistakes until fixed."""
    text = (
        "policies:\n"
        "  - name: a\n"
        "    match: {type: 7, condition: 'reqester.admin'}\n"
        "    outcome: review\n"
        "    review:\n"
        "      stages:\n"
        "        - approvers: {users: [bbo]}\n"
        "          quorom: 1\n"
        "          timeout: 1hour\n"
    )
    assert problems(tmp_path, directory, text) == [
        "p.yaml:3:19: policies.0.match.type: should be a string or a list of strings",
        "p.yaml:3:34: CEL condition uses unknown variable 'reqester'; did you mean 'requester'?",
        "p.yaml:7:31: unknown user 'bbo'; did you mean 'bob'?",
        "p.yaml:8:11: unknown key 'quorom' at policies.0.review.stages.0.quorom; did you mean "
        "'quorum'?",
        "p.yaml:9:20: invalid duration '1hour': write a number and a unit, e.g. 90s, 15m, 2h, "
        "7d, 1h30m",
    ]


def test_a_wrong_part_is_reported_once_not_again_through_its_consequences(
    tmp_path, directory
) -> None:
    text = (
        "policies:\n"
        "  - name: a\n"
        "    outcome: reviw\n"  # so no complaint that 'allow' takes no review
        "    review:\n"
        "      stages:\n"
        "        - approvers: {users: [bob, 3]}\n"  # so the approvers are not all known
        "          quorum: 2\n"
        "          timeout: 30\n"  # so no complaint that reminders need a timeout
        "          reminders: [10m]\n"
        "  - name: b\n"
        "    outcome: allow\n"
        "    notify_mode: digets\n"  # so `every` is not reported as out of place
        "    every: 10m\n"
        "  - just words\n"  # a policy that is not a mapping: the next keeps its index
        "  - {name: c, outcome: allow, grant: {ttl: 5}}\n"
    )
    assert problems(tmp_path, directory, text) == [
        "p.yaml:3:14: policies.0.outcome: Input should be 'allow', 'deny' or 'review'",
        "p.yaml:6:36: policies.0.review.stages.0.approvers.users.1: Input should be a valid string",
        "p.yaml:8:20: policies.0.review.stages.0.timeout: Input should be a valid string",
        "p.yaml:12:18: policies.1.notify_mode: Input should be 'immediate' or 'digest'",
        "p.yaml:14:5: policies.2: Input should be a mapping",
        "p.yaml:15:44: policies.3.grant.ttl: Input should be a valid string",
    ]


def test_a_default_that_is_wrong_still_counts_as_declared(tmp_path, directory) -> None:
    (tmp_path / "p.yaml").write_text("default: deny\n")
    (tmp_path / "q.yaml").write_text("default: {outcome: deny, grant: {ttl: soon}}\n")
    with pytest.raises(PolicyError) as info:
        load_policy_set(tmp_path, directory)
    found = [str(p).replace(f"{tmp_path}/", "") for p in info.value.problems]
    assert found == [
        "p.yaml:1:10: default: Input should be a mapping",
        "q.yaml:1:10: a default is already declared in p.yaml:1",
        "q.yaml:1:39: invalid duration 'soon': write a number and a unit, e.g. 90s, 15m, 2h, "
        "7d, 1h30m",
    ]


def test_an_alias_bomb_a_deep_nest_and_a_huge_file_are_refused(tmp_path, directory) -> None:
    """No policy file can hang or crash `policy check`, `policy test` or the server."""
    bomb = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    bomb += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    # an alias is the node it names: the position is where that node is written
    assert problems(tmp_path, directory, "\n".join(bomb) + "\n") == [
        "p.yaml:1:34: YAML error: more than 200000 values (an alias repeated too often?)"
    ]
    assert problems(tmp_path, directory, "x: " + "[" * 2000 + "]" * 2000 + "\n") == [
        "p.yaml:1:1: YAML error: nested deeper than 64 levels"
    ]
    assert problems(tmp_path, directory, "x: " + "[" * 70 + "]" * 70 + "\n") == [
        "p.yaml:1:68: YAML error: nested deeper than 64 levels"
    ]
    assert problems(tmp_path, directory, "# " + "x" * 2_000_000 + "\n") == [
        "p.yaml:1:1: file is larger than 2000000 bytes"
    ]
