"""The CLI's help and usage errors, as a newcomer reads them at 80 columns: every option
names what it takes, every command says what it connects to, a mistake is one line
naming the option. Every command is checked, so a new one is held to the same."""

from __future__ import annotations

import re
import subprocess
import sys
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from signoff.entrypoints.api.schemas import ContextIn
from signoff.entrypoints.cli import flow, main, mcp, remote
from signoff.entrypoints.cli.options import Risk

ROOT = Path(__file__).parent.parent.parent


def commands() -> Iterator[tuple[list[str], Callable[..., Any]]]:
    """Every command: its words after ``signoff``, and its function."""

    def named(info: Any) -> str:
        return str(info.name or info.callback.__name__.replace("_", "-"))

    for info in main.app.registered_commands:
        yield [named(info)], info.callback
    for group in main.app.registered_groups:
        for info in group.typer_instance.registered_commands:
            yield [str(group.name), named(info)], info.callback


def help_of(words: list[str]) -> str:
    result = CliRunner().invoke(main.app, [*words, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return result.output


def flat(text: str) -> str:
    return " ".join(text.split())


ALL = list(commands())


@pytest.mark.parametrize(("words", "fn"), ALL, ids=[" ".join(w) for w, _ in ALL])
def test_every_help_names_what_options_take_and_what_the_command_connects_to(
    words: list[str], fn: Callable[..., Any]
) -> None:
    text = help_of(words)
    assert "<bool>" not in text and "<list[" not in text and "``" not in text, text
    assert not re.search(r"--[\w-]+ <", text), text  # a value's placeholder, not its type
    assert all(len(line) <= 80 for line in text.splitlines()), text
    if "--json" in text:
        assert re.search(r"--json +\S", text), text  # described
    if fn.__module__ in (remote.__name__, flow.__name__, mcp.__name__):
        assert "SIGNOFF_URL" in flat(text) and "SIGNOFF_TOKEN" in flat(text), text
    else:
        assert re.search(r"SIGNOFF_(DATABASE_URL|POLICIES_DIR)", text), text


def test_the_top_level_help_says_where_commands_connect() -> None:
    text = flat(help_of([]))
    assert "SIGNOFF_URL (default http://127.0.0.1:8000)" in text and "SIGNOFF_TOKEN" in text


def test_run_asks_with_every_option_request_has() -> None:
    def options(fn: Callable[..., Any]) -> set[str]:
        return set(re.findall(r"^  (--[\w-]+)", help_of([fn.__name__]), re.M))

    assert options(remote.request) - {"--wait"} == options(remote.run)
    assert {"--risk", "--label", "--link"} <= options(remote.run)


def test_the_cli_knows_the_risks_the_api_takes() -> None:
    field = ContextIn.model_fields["risk"].annotation
    (literal,) = [a for a in typing.get_args(field) if a is not type(None)]
    assert set(typing.get_args(literal)) == {r.value for r in Risk}


def usage(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.MonkeyPatch.context() as mp, pytest.raises(SystemExit) as ended:
        mp.setattr(sys, "argv", ["signoff", *argv])
        main.main()
    return int(ended.value.code or 0), capsys.readouterr().err


def test_a_usage_error_is_one_line_naming_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    ask = ["request", "--type", "deploy", "--target", "prod/x"]
    assert usage([*ask, "--risk", "extreme"], capsys) == (
        2,
        "error: --risk: must be one of low, medium, high, critical, not 'extreme'\n",
    )
    assert usage(["request", "--target", "prod/x"], capsys) == (
        2,
        "error: missing option '--type' (see: signoff request --help)\n",
    )
    assert usage(["list", "--limit", "many"], capsys)[1].startswith("error: --limit: ")
    assert usage(["nope"], capsys) == (2, "error: no such command 'nope' (see: signoff --help)\n")
    code, text = usage(["grant"], capsys)  # a group alone: its help, as before
    assert code == 2
    assert text.startswith("Usage: signoff grant [OPTIONS] COMMAND") and "verify" in text


def test_make_run_takes_a_port() -> None:
    dry = subprocess.run(
        ["make", "-n", "run", "PORT=8100"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "signoff serve --port 8100" in dry.stdout
    assert (
        "PORT="
        in subprocess.run(
            ["make", "help"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
    )
