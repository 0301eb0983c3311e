"""`signoff policy test` as a subprocess, as a CI step or someone editing policies runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from signoff.config import EXAMPLES

from .conftest import SIGNOFF

FIXTURES = Path(__file__).parent.parent / "fixtures"
USERS = FIXTURES / "users.yaml"


def policy_test(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    return subprocess.run(
        [*SIGNOFF, "policy", "test", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def with_tests(tmp_path: Path, tests: str) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir()
    shutil.copy(FIXTURES / "policy-tests" / "10-policies.yaml", folder)
    (folder / "tests.yaml").write_text(tests)
    return folder


def test_the_bundled_examples_pass_their_tests(tmp_path: Path) -> None:
    result = policy_test(cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        f"testing the bundled example policies ({EXAMPLES / 'policies'}); "
        "pass a folder to test yours"
    ]
    assert result.stdout == "PASS: 10/10\n"


def test_a_folder_whose_tests_pass() -> None:
    result = policy_test("policy-tests", "--users", str(USERS), cwd=FIXTURES)
    assert (result.returncode, result.stdout, result.stderr) == (0, "PASS: 10/10\n", "")


TESTS = """\
tests:
  - name: a person deploys with review
    action: {type: deploy, target: prod/web}
    requester: dave
    expect: {outcome: review, policy: deploy, approvers: [carol]}

  - name: the pipeline needs no review
    action: {type: deploy, target: prod/web}
    requester: {name: ci, claims: {repository: example/web, ref: refs/heads/main}}
    expect: {outcome: review}

  - name: a night change
    action: {type: config.change, target: app/flags}
    requester: bob
    at: 2026-03-07T23:00:00Z
    expect: {policy: office-hours-change, stages: [{name: sre, quorum: 1}]}
"""


def test_failing_tests_are_printed_with_file_line_and_what_differed(tmp_path: Path) -> None:
    folder = with_tests(tmp_path, TESTS)
    result = policy_test("policies", "--users", str(USERS), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        "policies/tests.yaml:7: test 'the pipeline needs no review': "
        "expected outcome review, got allow (policy 'ci-deploy')",
        "policies/tests.yaml:12: test 'a night change': "
        "expected policy 'office-hours-change', got 'night-change'; "
        "expected stage 1 named 'sre', got 'on-call'; expected stage 1 (on-call) quorum 1, got 2",
        "FAIL: 2/3",
    ]
    verbose = policy_test("--verbose", str(folder), "--users", str(USERS), cwd=tmp_path)
    assert verbose.returncode == 1
    assert verbose.stdout.splitlines()[0] == (
        f"{folder}/tests.yaml:2: test 'a person deploys with review': ok (review by 'deploy')"
    )
    assert len(verbose.stdout.splitlines()) == 4


def test_json_for_machines(tmp_path: Path) -> None:
    with_tests(tmp_path, TESTS)
    result = policy_test("policies", "--users", str(USERS), "--json", cwd=tmp_path)
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert (data["passed"], data["failed"], data["total"]) == (1, 2, 3)
    first, second, _ = data["tests"]
    assert first == {
        "name": "a person deploys with review",
        "file": "policies/tests.yaml",
        "line": 2,
        "passed": True,
        "differences": [],
        "outcome": "review",
        "policy": "deploy",
        "error": None,
        "stages": [{"name": "sre", "approvers": ["carol"], "quorum": 1}],
    }
    assert second["differences"] == ["expected outcome review, got allow (policy 'ci-deploy')"]


def test_mistakes_exit_2_with_one_line_each(tmp_path: Path) -> None:
    with_tests(
        tmp_path,
        "tests:\n  - name: x\n    action: {type: deploy, target: prod/web}\n"
        "    requester: dave\n    expect: {outcom: review}\n",
    )
    result = policy_test("policies", "--users", str(USERS), cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        "policies/tests.yaml:5:14: unknown key 'outcom' at tests.0.expect.outcom; "
        "did you mean 'outcome'?"
    ]
    # a policy mistake is reported as `policy check` reports it, before any test runs
    broken = policy_test(str(FIXTURES / "policies-broken"), "--users", str(USERS), cwd=tmp_path)
    assert (broken.returncode, broken.stdout) == (2, "")
    assert broken.stderr.splitlines()[0].endswith(
        "10-sql.yaml:7:19: CEL condition uses unknown variable 'actoin'; did you mean 'action'?"
    )
    missing = policy_test("nowhere", "--users", str(USERS), cwd=tmp_path)
    assert (missing.returncode, missing.stderr) == (
        2,
        "nowhere:1:1: policy folder does not exist\n",
    )


def test_a_folder_without_tests_is_a_mistake(tmp_path: Path) -> None:
    result = policy_test(str(FIXTURES / "staged"), "--users", str(USERS), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        f"error: no tests in {FIXTURES / 'staged'}: add a 'tests:' list to a policy file "
        "(docs/policies.md, Testing policies)\n"
    )
