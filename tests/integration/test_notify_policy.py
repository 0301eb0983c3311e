"""A policy chooses where its requests are announced (`notify:`): the server refuses a
channel it does not have. (Routing itself: tests/unit/test_use_cases.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from signoff.bootstrap import build
from signoff.domain.errors import PolicyError

from ..conftest import make_settings

POLICIES = """
policies:
  - name: loud
    match: {type: deploy}
    outcome: review
    notify: [webhook:audit, email]
    review:
      stages: [{approvers: {groups: [dba]}, quorum: 1}]
  - name: quiet
    match: {type: config.change}
    outcome: review
    review:
      stages: [{approvers: {groups: [dba]}, quorum: 1}]
default: {outcome: deny}
"""


def test_the_server_refuses_a_policy_naming_an_unconfigured_channel(
    database_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "p.yaml").write_text(POLICIES)
    with pytest.raises(PolicyError) as info:
        build(make_settings(database_url, tmp_path, policies_dir=folder, channels="log"))
    assert str(info.value.problems[0]).startswith(f"{folder}/p.yaml:3:1: policy 'loud' notifies")


def test_unknown_channel_kinds_are_policy_errors(tmp_path: Path) -> None:
    from signoff.adapters.directory_file import load_directory
    from signoff.adapters.policy_files import load_policy_set

    (tmp_path / "p.yaml").write_text(
        "default: {outcome: deny}\npolicies:\n  - name: a\n    outcome: allow\n"
        "    notify: [pager:ops]\n"
    )
    users = Path(__file__).parent.parent / "fixtures" / "users.yaml"
    with pytest.raises(PolicyError) as info:
        load_policy_set(tmp_path, load_directory(users))
    assert str(info.value.problems[0]).startswith(f"{tmp_path}/p.yaml:5:14: policies.0.notify.0")
