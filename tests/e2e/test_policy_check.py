"""`signoff policy check` as a subprocess, as someone editing policies runs it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from signoff.adapters.directory_file import load_directory
from signoff.adapters.policy_files import load_policy_set
from signoff.config import EXAMPLES
from signoff.domain.errors import PolicyError

from .conftest import SIGNOFF

FIXTURES = Path(__file__).parent.parent / "fixtures"
USERS = FIXTURES / "users.yaml"


def check(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNOFF_")}
    return subprocess.run(
        [*SIGNOFF, "policy", "check", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_every_mistake_in_a_folder_is_printed_in_one_run(tmp_path: Path) -> None:
    broken = FIXTURES / "policies-broken"
    result = check(str(broken), "--users", str(USERS), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    with pytest.raises(PolicyError) as info:
        load_policy_set(broken, load_directory(USERS))
    # the same report as the loader's (pinned line by line in tests/unit/test_policy_files)
    printed = result.stderr.splitlines()
    assert printed == [str(p) for p in info.value.problems]
    assert len(printed) >= 8
    assert printed[0] == (
        f"{broken}/10-sql.yaml:7:19: CEL condition uses unknown variable 'actoin'; "
        "did you mean 'action'?"
    )
    assert printed[-1].startswith(f"{broken}/30-reports.yaml:6:15: YAML error: this '['")


def test_a_valid_folder_passes(tmp_path: Path) -> None:
    result = check(str(FIXTURES / "policies"), "--users", str(USERS), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: 10 policies, default deny, digest ")
    assert result.stderr == ""


def test_without_a_folder_it_says_it_checks_the_bundled_examples(tmp_path: Path) -> None:
    result = check(cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"checking the bundled example policies ({EXAMPLES / 'policies'}); "
        "pass a folder to check yours"
    ]
    assert result.stdout.startswith("ok: 6 policies")


def test_a_folder_checked_against_the_example_users_says_so(tmp_path: Path) -> None:
    result = check(str(FIXTURES / "policies"), cwd=tmp_path)
    assert result.stderr.splitlines()[0] == (
        f"users and groups from the bundled examples ({EXAMPLES / 'users.yaml'}); "
        "pass --users FILE or set SIGNOFF_USERS_FILE for yours"
    )
