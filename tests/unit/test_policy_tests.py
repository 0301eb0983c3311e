"""Policy tests (`tests:` beside the policies): how they are read, and how they are judged."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from signoff.adapters.directory_file import load_directory
from signoff.adapters.policy_files import load_policy_set
from signoff.adapters.policy_test_files import load_policy_tests
from signoff.config import EXAMPLES
from signoff.domain.errors import PolicyError
from signoff.domain.policy_tests import Verdict, judge_all

FIXTURES = Path(__file__).parent.parent / "fixtures"
DIRECTORY = load_directory(FIXTURES / "users.yaml")
NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)  # a Wednesday, noon


def folder_with(tmp_path: Path, tests: str) -> Path:
    """The fixture policies with these tests beside them, in their own file."""
    shutil.copy(FIXTURES / "policy-tests" / "10-policies.yaml", tmp_path)
    (tmp_path / "20-more_test.yaml").write_text(tests)
    return tmp_path


def run(folder: Path) -> list[Verdict]:
    ps = load_policy_set(folder, DIRECTORY)
    return judge_all(ps, DIRECTORY, load_policy_tests(folder, ps, DIRECTORY), NOW)


def failures(folder: Path) -> list[str]:
    """Each failing test as the CLI prints it, relative to the folder."""
    return [
        f"{Path(v.test.file).name}:{v.test.line}: test {v.test.name!r}: " + "; ".join(v.differences)
        for v in run(folder)
        if not v.passed
    ]


def problems(folder: Path) -> list[str]:
    ps = load_policy_set(folder, DIRECTORY)
    with pytest.raises(PolicyError) as info:
        load_policy_tests(folder, ps, DIRECTORY)
    return [str(p).replace(str(folder) + "/", "") for p in info.value.problems]


def test_the_fixture_tests_pass() -> None:
    verdicts = run(FIXTURES / "policy-tests")
    assert len(verdicts) == 10
    assert [v.test.name for v in verdicts if not v.passed] == []


def test_the_bundled_examples_tests_pass() -> None:
    people = load_directory(EXAMPLES / "users.yaml")
    folder = EXAMPLES / "policies"
    ps = load_policy_set(folder, people)
    verdicts = judge_all(ps, people, load_policy_tests(folder, ps, people), NOW)
    assert len(verdicts) >= 10
    assert [v.test.name for v in verdicts if not v.passed] == []
    # every example policy and the default decide at least one test
    assert {v.decision.policy.name for v in verdicts} == {
        *(p.name for p in ps.policies),
        "default",
    }


ASK = "action: {type: deploy, target: prod/web}\n    requester: dave\n"


def test_each_expectation_that_differs_is_said(tmp_path: Path) -> None:
    folder = folder_with(
        tmp_path,
        "tests:\n"
        f"  - name: outcome\n    {ASK}    expect: {{outcome: allow}}\n"
        f"  - name: policy\n    {ASK}    expect: {{policy: ci-deploy}}\n"
        f"  - name: approvers\n    {ASK}    expect: {{approvers: [carol, dave]}}\n"
        f"  - name: quorum\n    {ASK}    expect: {{quorum: 2}}\n"
        f"  - name: stage count\n    {ASK}    expect: {{stages: [sre, security]}}\n"
        f"  - name: stage\n    {ASK}    expect: {{stages: [{{name: on-call, approvers: [bob],"
        " quorum: 2}]}\n"
        f"  - name: right\n    {ASK}    expect: {{outcome: review, policy: deploy}}\n",
    )
    assert failures(folder) == [
        "20-more_test.yaml:2: test 'outcome': expected outcome allow, got review (policy 'deploy')",
        "20-more_test.yaml:6: test 'policy': expected policy 'ci-deploy', got 'deploy'",
        # the requester never approves their own request
        "20-more_test.yaml:10: test 'approvers': expected approvers [carol, dave], got [carol]",
        "20-more_test.yaml:14: test 'quorum': expected quorum 2, got 1",
        "20-more_test.yaml:18: test 'stage count': expected 2 stages, got sre",
        "20-more_test.yaml:22: test 'stage': expected stage 1 named 'on-call', got 'sre'; "
        "expected stage 1 (sre) approvers [bob], got [carol]; "
        "expected stage 1 (sre) quorum 2, got 1",
    ]


def test_several_stages_compare_quorum_per_stage(tmp_path: Path) -> None:
    ask = (
        "action: {type: deploy, target: prod/web}\n    requester: dave\n    context: {risk: high}\n"
    )
    folder = folder_with(
        tmp_path,
        "tests:\n"
        f"  - name: one number\n    {ask}    expect: {{quorum: 1}}\n"
        f"  - name: per stage\n    {ask}    expect: {{quorum: [1, 2]}}\n"
        f"  - name: allowed\n    action: {{type: deploy, target: prod/web}}\n"
        "    requester: {name: ci, claims: {repository: example/web, ref: refs/heads/main}}\n"
        "    expect: {quorum: 1, approvers: [carol]}\n",
    )
    assert failures(folder) == [
        "20-more_test.yaml:2: test 'one number': expected quorum 1, got 1, 2 (one per stage)",
        "20-more_test.yaml:12: test 'allowed': expected approvers [carol], got []; "
        "expected quorum 1, got none (no stages)",
    ]


def test_time_decides_with_at_and_the_run_time_without(tmp_path: Path) -> None:
    change = "action: {type: config.change, target: app/flags}\n    requester: bob\n"
    folder = folder_with(
        tmp_path,
        "tests:\n"
        f"  - name: morning\n    {change}    at: 2026-03-02T09:00:00Z\n"
        "    expect: {policy: office-hours-change}\n"
        f"  - name: before nine\n    {change}    at: 2026-03-02T08:59:59Z\n"
        "    expect: {policy: office-hours-change}\n"
        f"  - name: in another zone\n    {change}    at: '2026-03-02T10:00:00+02:00'\n"
        "    expect: {policy: office-hours-change}\n"
        f"  - name: no time given\n    {change}    expect: {{policy: night-change}}\n",
    )
    assert failures(folder) == [
        "20-more_test.yaml:7: test 'before nine': expected policy 'office-hours-change', "
        "got 'night-change'",
        # 08:00 UTC
        "20-more_test.yaml:12: test 'in another zone': expected policy 'office-hours-change', "
        "got 'night-change'",
        # NOW is a Wednesday noon
        "20-more_test.yaml:17: test 'no time given': expected policy 'night-change', "
        "got 'office-hours-change'",
    ]


def test_claims_and_groups_of_a_requester_outside_the_users_file(tmp_path: Path) -> None:
    folder = folder_with(
        tmp_path,
        "tests:\n"
        "  - name: another repository\n"
        "    action: {type: deploy, target: prod/web}\n"
        "    requester: {name: ci-api, claims: {repository: example/api, ref: refs/heads/main}}\n"
        "    expect: {policy: ci-deploy}\n"
        "  - name: groups given replace the users file's\n"
        "    action: {type: deploy, target: prod/web}\n"
        "    requester: {name: carol, groups: []}\n"
        "    expect: {approvers: [dave]}\n",
    )
    assert failures(folder) == [
        "20-more_test.yaml:2: test 'another repository': expected policy 'ci-deploy', got 'deploy'",
    ]


def test_a_condition_that_fails_is_said_with_its_error(tmp_path: Path) -> None:
    folder = folder_with(
        tmp_path,
        "tests:\n"
        "  - name: pages\n"
        "    action: {type: report.publish, target: reports/q3}\n"
        "    requester: erin\n"
        "    expect: {outcome: allow}\n",
    )
    assert failures(folder) == [
        "20-more_test.yaml:2: test 'pages': expected outcome allow, got deny "
        "(policy 'broken-condition': its condition failed: KeyError: 'pages')"
    ]


def test_malformed_tests_are_reported_with_positions_and_the_name_meant(tmp_path: Path) -> None:
    folder = folder_with(
        tmp_path,
        "tests:\n"
        "  - name: misspelt\n"
        "    acton: {type: deploy, target: prod/web}\n"
        "    requester: dave\n"
        "    expect: {outcome: review}\n"
        "  - name: wrong values\n"
        "    action: {type: deploy, target: prod/web, parms: {}}\n"
        "    requester: {name: dave, grops: [sre]}\n"
        "    context: {risk: huge}\n"
        "    at: yesterday\n"
        "    expect: {outcome: maybe, polcy: deploy}\n"
        "  - name: unknown names\n"
        "    action: {type: deploy, target: prod/web}\n"
        "    requester: dvae\n"
        "    expect: {policy: deplyo, stages: [sre, securty, {approvers: [carl]}],"
        " approvers: [erni]}\n"
        "  - name: nothing expected\n"
        "    action: {type: deploy, target: prod/web}\n"
        "    requester: dave\n"
        "    expect: {}\n"
        "  - name: nothing expected\n"
        "    action: {type: deploy, target: prod/web}\n"
        "    requester: dave\n"
        "    expect: {quorum: []}\n"
        "  - just a string\n",
    )
    f = "20-more_test.yaml"
    assert problems(folder) == [
        f"{f}:2:5: missing key 'action' in tests.0",
        f"{f}:3:5: unknown key 'acton' at tests.0.acton; did you mean 'action'?",
        f"{f}:7:46: unknown key 'parms' at tests.1.action.parms; did you mean 'params'?",
        f"{f}:8:29: unknown key 'grops' at tests.1.requester.grops; did you mean 'groups'?",
        f"{f}:9:21: tests.1.context.risk: Input should be 'low', 'medium', 'high' or 'critical'",
        f"{f}:10:9: at: 'yesterday' is not a time; write one such as 2026-03-02T10:00:00Z",
        f"{f}:11:23: tests.1.expect.outcome: Input should be 'allow', 'deny' or 'review'",
        f"{f}:11:30: unknown key 'polcy' at tests.1.expect.polcy; did you mean 'policy'?",
        f"{f}:14:16: unknown user 'dvae'; did you mean 'dave'? (a requester who is not in the "
        "users file, such as a workload, is written {name, groups, claims})",
        f"{f}:15:22: unknown policy 'deplyo'; did you mean 'deploy'?",
        f"{f}:15:44: no policy has a stage named 'securty'; did you mean 'security'?",
        f"{f}:15:66: unknown user 'carl'; did you mean 'carol'?",
        f"{f}:15:87: unknown user 'erni'; did you mean 'erin'?",
        f"{f}:19:13: expect needs at least one of outcome, policy, stages, approvers, quorum",
        f"{f}:20:11: test name 'nothing expected' is already used at {f}:16",
        f"{f}:23:22: quorum: one number, or one per stage, each 1 to 100",
        f"{f}:24:5: tests.5: Input should be a mapping",
    ]


def test_tests_must_be_a_list(tmp_path: Path) -> None:
    folder = folder_with(tmp_path, "tests: {name: x}\n")
    assert problems(folder) == ["20-more_test.yaml:1:8: tests: Input should be a valid list"]


def test_the_loader_ignores_tests_and_still_refuses_other_unknown_keys(tmp_path: Path) -> None:
    """The server and `policy check` load the same set with or without tests (even wrong
    ones: those are `policy test`'s to report), and still name a misspelt top-level key."""
    folder = folder_with(tmp_path, "tests:\n  - name: [not, a, name]\n")
    with_tests = load_policy_set(folder, DIRECTORY)
    assert [p.name for p in with_tests.policies] == [
        p.name for p in load_policy_set(FIXTURES / "policy-tests", DIRECTORY).policies
    ]
    (tmp_path / "30-typo.yaml").write_text("test:\n  - name: x\n")
    with pytest.raises(PolicyError) as info:
        load_policy_set(folder, DIRECTORY)
    assert [str(p).replace(str(folder) + "/", "") for p in info.value.problems] == [
        "30-typo.yaml:1:1: unknown key 'test'; did you mean 'tests'?"
    ]
