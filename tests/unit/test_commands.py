"""The command lines messages print are the CLI's own: every path is a registered
command, and a printed redeem line names exactly the approved action, whatever its
parameters hold."""

from __future__ import annotations

import shlex

import typer
from hypothesis import given
from hypothesis import strategies as st

from signoff import commands
from signoff.domain.actions import Action
from signoff.entrypoints.cli.main import app


def test_every_printed_command_is_a_registered_command() -> None:
    root = typer.main.get_command(app)
    for path in commands.NAMES:
        node = root
        for name in path:
            assert hasattr(node, "get_command"), path  # a group
            found = node.get_command(type(root.context_class(root))(node), name)
            assert found is not None, f"{' '.join(path)} is printed but not a command"
            node = found


def _parsed(line: str) -> Action:
    """The action a shell and the CLI's options make of a printed redeem line."""
    words = shlex.split(line.split(')" ', 1)[1])
    params: dict[str, object] = {}
    kind = target = ""
    while words:
        flag, value = words.pop(0), words.pop(0)
        if flag == "--type":
            kind = value
        elif flag == "--target":
            target = value
        elif flag == "--arg":
            params.setdefault("argv", []).append(value)  # type: ignore[union-attr]
        else:
            key, _, text = value.partition("=")
            params[key] = text
    return Action(kind, target, params)


text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=30)


@given(
    params=st.dictionaries(
        st.text("abcdefgh_", min_size=1, max_size=8).filter(lambda k: k != "argv"), text, max_size=3
    ),
    argv=st.none() | st.lists(text, min_size=1, max_size=3),
)
def test_a_redeem_line_names_exactly_the_approved_action(
    params: dict[str, str], argv: list[str] | None
) -> None:
    action = Action("secret.read", "vault/app one", {**params, **({"argv": argv} if argv else {})})
    line = commands.redeem("r-1", action.type, action.target, action.params)
    assert line is not None
    assert line.startswith('signoff grant redeem "$(signoff grant token r-1)" ')
    assert _parsed(line).digest == action.digest


def test_an_action_the_cli_cannot_state_gets_no_line() -> None:
    assert commands.redeem("r-1", "http.call", "api", {"retries": 3}) is None
    assert commands.redeem("r-1", "http.call", "api", {"headers": {"a": "b"}}) is None
