"""``signoff mcp proxy`` and ``signoff mcp serve``: Signoff for AI agents over MCP
(entrypoints/mcp). The MCP SDK is imported inside the commands, so other commands start
without it.

Both speak MCP to the agent on stdin/stdout (the agent starts the command; nothing but
MCP is written to stdout) or, with ``--listen``, over streamable HTTP; both reach the
Signoff server as one identity: ``--token-file`` (a workload identity's token, read at
start), else SIGNOFF_TOKEN, else the login.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer

from signoff.entrypoints.cli.output import err, fail, say

ListenOpt = Annotated[
    str | None,
    typer.Option(
        metavar="HOST:PORT",
        help="Serve agents over streamable HTTP at http://HOST:PORT/mcp instead of "
        "stdin/stdout (keep it on a loopback address: whoever reaches it acts as this "
        "identity).",
    ),
]
TokenFileOpt = Annotated[
    Path | None,
    typer.Option(
        metavar="FILE",
        help="Read the token to act as from FILE (e.g. a pipeline's or a pod's workload "
        "identity token) instead of SIGNOFF_TOKEN.",
    ),
]


def _identity(token_file: Path | None) -> tuple[str, str]:
    from signoff.entrypoints.cli.credentials import LoginError
    from signoff.entrypoints.cli.remote import settings_and_renewal

    try:
        cs, _ = settings_and_renewal()
    except LoginError as exc:
        fail(exc.message, exc.code)
    token = cs.token
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            fail(f"--token-file: cannot read {token_file}: {exc.strerror}")
    if not token:
        fail(
            "no identity to act as: set SIGNOFF_TOKEN (an admin makes one with: signoff "
            "token create --user NAME), give --token-file, or run signoff login"
        )
    return cs.url, token


def _seconds(value: str, option: str) -> float:
    from signoff.domain.durations import parse_duration
    from signoff.domain.errors import InvalidInput

    try:
        seconds = parse_duration(value).total_seconds()
    except (InvalidInput, ValueError) as exc:
        fail(f"{option}: {getattr(exc, 'detail', exc)}")
    if seconds <= 0:
        fail(f"{option}: must be longer than 0s")
    return seconds


def _listen(value: str | None) -> tuple[str, int] | None:
    from signoff.entrypoints.mcp.listen import parse_listen

    if value is None:
        return None
    try:
        return parse_listen(value)
    except ValueError as exc:
        fail(f"--listen: {exc}")


def _run(main: Any, url: str, token: str, what: str) -> None:
    """Check the identity with the server, say who this acts as (on stderr: stdout is
    the agent's), then serve until the agent leaves or Ctrl-C."""
    import anyio

    from signoff.domain.errors import SignoffError
    from signoff.sdk.aio import AsyncClient

    async def go() -> None:
        async with AsyncClient(url, token, user_agent=f"signoff-mcp/{what}") as signoff:
            try:
                me = await signoff.me()
            except SignoffError as exc:
                fail(f"{url}: {exc}")
            groups = ", ".join(me.groups) or "none"
            say(f"{what}: acting as {me.name} (groups: {groups}) at {url}", err)
            await main(signoff)

    try:
        anyio.run(go)
    except OSError as exc:
        fail(f"{what}: {exc}")


def proxy(
    command: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="-- COMMAND [ARG...]",
            show_default=False,
            hidden=True,
        ),
    ] = None,
    name: Annotated[
        str,
        typer.Option(
            metavar="NAME",
            help="The upstream's name in targets: a call of TOOL is the action mcp.tool on "
            "mcp/NAME/TOOL.",
        ),
    ] = "",
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            metavar="URL",
            help="A remote upstream over streamable HTTP, instead of a command.",
        ),
    ] = None,
    wait: Annotated[
        str,
        typer.Option(
            metavar="DURATION",
            help="How long a call may wait for approval; then it is denied and the request "
            "cancelled.",
        ),
    ] = "10m",
    progress_every: Annotated[
        str,
        typer.Option(metavar="DURATION", help="Progress notifications while a call waits."),
    ] = "10s",
    reason: Annotated[
        str,
        typer.Option(
            metavar="TEXT",
            help="The reason approvers read (default: says the "
            "agent calls the tool, with the tool's description).",
        ),
    ] = "",
    ticket: Annotated[
        str | None,
        typer.Option(metavar="TICKET", help="A ticket every call is asked with, e.g. OPS-42."),
    ] = None,
    mask_key: Annotated[
        list[str] | None,
        typer.Option(metavar="KEY", help="Hide values under this key in results (repeatable)."),
    ] = None,
    mask_pattern: Annotated[
        list[str] | None,
        typer.Option(
            metavar="REGEX", help="Hide text matching this pattern in results (repeatable)."
        ),
    ] = None,
    listen: ListenOpt = None,
    token_file: TokenFileOpt = None,
) -> None:
    """Put Signoff between an agent and an MCP server: each tool call is judged by the
    policies (mcp.tool on mcp/NAME/TOOL, params = the arguments); allowed calls run,
    denied ones come back as tool errors, reviewed ones wait for approval and run with
    exactly the approved arguments. The upstream is a command (after --) started and
    spoken to over stdio, or --url for one served over streamable HTTP.

    Example: signoff mcp proxy --name files -- npx @modelcontextprotocol/server-filesystem /srv
    """
    from signoff.entrypoints.mcp import proxy as mcp_proxy

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name or ""):
        fail(
            "--name: give the upstream a name of letters, digits, '.', '_' or '-' (it is "
            "the NAME in mcp/NAME/TOOL)"
        )
    if bool(command) == bool(url):
        fail("give the upstream as -- COMMAND [ARG...] or as --url URL (one of them)")
    if url is not None and not re.match(r"https?://", url):
        fail(f"--url: expected an http:// or https:// URL, not {url!r}")
    masks: list[re.Pattern[str]] = []
    for pattern in mask_pattern or []:
        try:
            masks.append(re.compile(pattern))
        except re.error as exc:
            fail(f"--mask-pattern {pattern!r}: {exc}")
    config = mcp_proxy.ProxyConfig(
        name=name,
        upstream=url if url is not None else mcp_proxy.upstream_command(command or []),
        wait=_seconds(wait, "--wait"),
        heartbeat=_seconds(progress_every, "--progress-every"),
        reason=reason,
        ticket=ticket,
        mask=mcp_proxy.ResultMask(frozenset(k.lower() for k in mask_key or []), tuple(masks)),
        listen=_listen(listen),
    )
    server_url, token = _identity(token_file)

    async def main(signoff: Any) -> None:
        await mcp_proxy.run(config, signoff)

    _run(main, server_url, token, f"signoff mcp proxy {name}")


def serve(
    listen: ListenOpt = None,
    token_file: TokenFileOpt = None,
    max_wait: Annotated[
        str,
        typer.Option(metavar="DURATION", help="The longest one wait_for_decision call waits."),
    ] = "1h",
) -> None:
    """Serve Signoff's own tools to an agent over MCP: request_approval, get_request,
    wait_for_decision and list_my_requests, so it can ask before a risky step and act on
    the grant."""
    from signoff.entrypoints.mcp import listen as mcp_listen
    from signoff.entrypoints.mcp import serve as mcp_serve

    where = _listen(listen)
    longest = _seconds(max_wait, "--max-wait")
    server_url, token = _identity(token_file)

    async def main(signoff: Any) -> None:
        await mcp_listen.run(mcp_serve.build(signoff, longest), where, "signoff mcp serve")

    _run(main, server_url, token, "signoff mcp serve")
