"""``signoff mcp proxy``: an MCP server in front of another, asking Signoff before each
tool call.

The agent sees the upstream's tools unchanged. Each ``tools/call`` becomes the action
``{type: mcp.tool, target: mcp/NAME/TOOL, params: <the arguments>}``, submitted as the
proxy's identity and judged by the policy set:

- allowed: the grant is redeemed for exactly these arguments (the server checks the
  digest and spends the use; the audit log records it), then the call is forwarded;
- denied: the agent gets a tool error with the reason, the upstream never hears of it;
- review: the approvers are asked through their channels; the proxy waits, telling the
  agent how it goes with progress notifications, and forwards the call once approved,
  redeeming the grant for the arguments it holds (so an approval never runs other
  arguments). No decision within ``wait`` is a denial: the request is cancelled and the
  agent told so. So is the agent giving up on the call.

The upstream's result may be masked (keys and patterns) before the agent sees it.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import mcp_types as types
from mcp import Client as McpClient
from mcp import MCPError, StdioServerParameters
from mcp.server import Server
from mcp.server.context import ServerRequestContext

from signoff import __version__
from signoff.adapters.executors.masking import MASK
from signoff.domain.actions import Action
from signoff.domain.durations import brief
from signoff.domain.errors import GrantRefused, SignoffError
from signoff.domain.requests import Status
from signoff.entrypoints.mcp import listen
from signoff.sdk._errors import TimedOut
from signoff.sdk.aio import AsyncClient
from signoff.sdk.models import Request

TYPE = "mcp.tool"
# the names MCP gives tools (its specification: 1 to 128 of these characters)
TOOL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
# the description a reviewer reads is cut here; the tool's listing is unchanged
DESCRIPTION_CHARS = 2000


def target_of(server: str, tool: str) -> str:
    return f"mcp/{server}/{tool}"


@dataclass(frozen=True)
class ResultMask:
    """What the agent must not see of a tool's result: values under these keys (at any
    depth of JSON, in structured content and in text that is JSON) and text matching
    these patterns."""

    keys: frozenset[str] = frozenset()  # lower-case
    patterns: tuple[re.Pattern[str], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.keys or self.patterns)

    def text(self, value: str) -> str:
        stripped = value.strip()
        if self.keys and stripped[:1] in ("{", "["):
            try:
                parsed = json.loads(stripped)
            except ValueError:
                pass
            else:
                value = json.dumps(self.value(parsed), ensure_ascii=False)
        # the patterns see the whole text, JSON included: its numbers and keys too
        for pattern in self.patterns:
            value = pattern.sub(MASK, value)
        return value

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {
                self.text(str(k)): (
                    MASK if str(k).lower() in self.keys and v is not None else self.value(v)
                )
                for k, v in value.items()
            }
        if isinstance(value, int | float) and not isinstance(value, bool):
            # a number a pattern matches (a card number, a PIN) is hidden as text
            shown = str(value)
            masked = self.text(shown)
            return value if masked == shown else masked
        return value

    def block(self, block: types.ContentBlock) -> types.ContentBlock:
        """One content block, its text masked: a text block, and the text of an embedded
        resource (a file's contents, say). Images, audio and links pass unchanged."""
        if isinstance(block, types.TextContent):
            return block.model_copy(update={"text": self.text(block.text)})
        if isinstance(block, types.EmbeddedResource) and isinstance(
            block.resource, types.TextResourceContents
        ):
            masked = block.resource.model_copy(update={"text": self.text(block.resource.text)})
            return block.model_copy(update={"resource": masked})
        return block

    def result(self, result: types.CallToolResult) -> types.CallToolResult:
        if not self:
            return result
        content = [self.block(c) for c in result.content]
        structured = result.structured_content
        return result.model_copy(
            update={
                "content": content,
                "structured_content": None if structured is None else self.value(structured),
            }
        )


@dataclass(frozen=True)
class ProxyConfig:
    name: str  # the NAME in mcp/NAME/TOOL
    upstream: StdioServerParameters | str  # a command, or a streamable-HTTP URL
    wait: float = 600.0  # seconds to wait for a decision; then deny
    heartbeat: float = 10.0  # seconds between progress notifications while waiting
    reason: str = ""
    ticket: str | None = None  # for policies that want one (request.ticket_pattern)
    mask: ResultMask = field(default_factory=ResultMask)
    listen: tuple[str, int] | None = None  # None: stdio


def upstream_command(
    argv: list[str], environ: Mapping[str, str] | None = None
) -> StdioServerParameters:
    """The upstream as a subprocess: it inherits the environment except Signoff's own
    settings (its token is the proxy's, not the tool's)."""
    env = os.environ if environ is None else environ
    return StdioServerParameters(
        command=argv[0],
        args=argv[1:],
        env={k: v for k, v in env.items() if not k.upper().startswith("SIGNOFF_")},
    )


def _unsendable(arguments: dict[str, Any]) -> str | None:
    """Why these arguments cannot be asked about, else None: the MCP SDK's parser takes
    NaN and Infinity, which JSON (and so Signoff's API) cannot carry."""
    try:
        json.dumps(arguments, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except UnicodeEncodeError:
        return "a string holds a lone surrogate, which is not Unicode text"
    except ValueError:
        return "a number is NaN or infinite, which JSON cannot hold"
    return None


def _said(r: Request, tool: str) -> str:
    """Why the call was not made, in a line the model can act on."""
    why = f" {r.outcome}" if r.outcome else ""
    ref = f" (request {r.id})"
    if r.status is Status.DENIED:
        return f"Signoff denied the call to {tool}; it was not made.{why}{ref}"
    if r.status is Status.CANCELLED:
        return f"The request to call {tool} was cancelled; the call was not made.{why}{ref}"
    if r.status is Status.TIMED_OUT:
        return f"Nobody decided on the call to {tool} in time; it was not made.{why}{ref}"
    return f"The call to {tool} was not made: request {r.id} is {r.status.value}.{why}"


def _waiting(r: Request, waited: float, wait: float) -> str:
    who = ", ".join(r.awaiting) if r.awaiting else "the approvers"
    needed = f"{r.still_needed} more approval{'s' if r.still_needed != 1 else ''}"
    return (
        f"Waiting for approval in Signoff (request {r.id}): {needed} from {who}; "
        f"{brief(waited)} of {brief(wait)}"
    )


class Gate:
    """The proxy's handlers: the tool listing passed through, each call judged."""

    def __init__(self, config: ProxyConfig, signoff: AsyncClient, upstream: McpClient) -> None:
        self.config = config
        self.signoff = signoff
        self.upstream = upstream
        self.tools: dict[str, types.Tool] = {}
        # why the upstream can take no more calls (its connection closed), once it is so
        self.gone: str | None = None
        # calls waiting on each pending request: identical calls fold into one request,
        # and one call giving up must not cancel it under the others
        self.waiters: dict[str, int] = {}

    def server(self) -> Server[Any]:
        return Server(
            f"signoff-proxy-{self.config.name}",
            version=__version__,
            instructions=self.upstream.instructions,
            on_list_tools=self.list_tools,
            on_call_tool=self.call_tool,
        )

    async def list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        result = await self.upstream.list_tools(cursor=params.cursor if params else None)
        self.tools.update((t.name, t) for t in result.tools)
        return result

    async def _tool(self, name: str) -> types.Tool | None:
        if name not in self.tools:
            cursor: str | None = None
            for _ in range(100):
                page = await self.upstream.list_tools(cursor=cursor)
                self.tools.update((t.name, t) for t in page.tools)
                cursor = page.next_cursor
                if cursor is None or name in self.tools:
                    break
        return self.tools.get(name)

    def _reason(self, tool: types.Tool) -> str:
        described = (tool.description or "").strip()
        if len(described) > DESCRIPTION_CHARS:
            described = described[: DESCRIPTION_CHARS - 1] + "…"
        said = self.config.reason or (
            f"An agent calls the tool {tool.name} of the MCP server "
            f"{self.config.name!r} through signoff mcp proxy."
        )
        return f"{said}\n\nWhat the tool does: {described}" if described else said

    async def call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        name = params.name
        arguments: dict[str, Any] = dict(params.arguments or {})
        if self.gone is not None:
            # asking now would spend an approval on a call that cannot be made
            return listen.tool_error(
                f"The MCP server {self.config.name!r} has stopped ({self.gone}); the call "
                f"to {name} was not made and nothing was asked. Restart the proxy."
            )
        if not TOOL_NAME.fullmatch(name):
            # a policy's target glob (`mcp/files/read_*`) would match across a `/`: a
            # tool named `read_x/../delete` must not pass for a read
            return listen.tool_error(
                f"The tool name {name!r} is not one a policy can judge safely (1 to 128 "
                "letters, digits, '_', '-' or '.', as MCP names tools); nothing was asked "
                "and the call was not made."
            )
        unsendable = _unsendable(arguments)
        if unsendable is not None:
            return listen.tool_error(
                f"The arguments of the call to {name} are not valid JSON ({unsendable}); "
                "nothing was asked and the call was not made."
            )
        try:
            tool = await self._tool(name)
        except MCPError as exc:
            return listen.tool_error(f"The upstream server could not list its tools: {exc}")
        if tool is None:
            return listen.tool_error(
                f"The MCP server {self.config.name!r} has no tool named {name!r}; "
                "nothing was asked."
            )
        target = target_of(self.config.name, name)
        try:
            r = await self.signoff.request(
                TYPE,
                target,
                arguments,
                reason=self._reason(tool),
                ticket=self.config.ticket,
                labels={"mcp server": self.config.name, "tool": name},
                redeem=True,  # allowed at once: the use is spent in the same call
            )
        except SignoffError as exc:
            return listen.tool_error(f"Signoff did not take the call to {name}: {exc}")
        if r.pending:
            decided = await self._wait(ctx, r, name)
            if isinstance(decided, str):
                return listen.tool_error(decided)
            r = decided
        if r.status is not Status.APPROVED and not r.redeemed:
            return listen.tool_error(_said(r, name))
        return await self._forward(r, name, target, arguments)

    async def _forward(
        self, r: Request, name: str, target: str, arguments: dict[str, Any]
    ) -> types.CallToolResult:
        # The approval is for the action whose digest the request holds; the grant is
        # redeemed for the arguments this call carries, and the server refuses it when
        # they differ. Checked here too, so a mismatch never reaches the upstream.
        if r.action_digest != Action(TYPE, target, arguments).digest:
            return listen.tool_error(
                f"Request {r.id} approved other arguments than this call's; the call was not made."
            )
        if r.redeemed:  # allowed by policy, and the use taken with the request
            return await self._call(name, arguments)
        token = r.grant.token if r.grant else None
        if not token:
            try:
                r = await self.signoff.get(r.id)
            except SignoffError as exc:
                return listen.tool_error(
                    f"Signoff could not be asked for the grant of request {r.id}, so the "
                    f"call was not made: {exc}"
                )
            token = r.grant.token if r.grant else None
        if not token:
            return listen.tool_error(
                f"Request {r.id} holds no grant for this call; it was not made."
            )
        try:
            await self.signoff.redeem(token, TYPE, target, arguments)
        except SignoffError as exc:
            if isinstance(exc, GrantRefused) and exc.reason == "used_up" and r.fold_count > 0:
                # identical calls folded into one request share its grant's uses
                return listen.tool_error(
                    f"An identical call waiting on the same request ({r.id}) took the "
                    f"approval's last use, so this call to {name} was not made; call again "
                    "to ask anew."
                )
            return listen.tool_error(
                f"Signoff refused the grant of request {r.id} for this call, so it was not "
                f"made: {exc}"
            )
        return await self._call(name, arguments)

    async def _call(self, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        try:
            result = await self.upstream.call_tool(name, arguments)
        except MCPError as exc:
            if exc.code == types.CONNECTION_CLOSED:
                self.gone = exc.error.message
                print(
                    f"signoff mcp proxy {self.config.name}: the upstream server stopped "
                    f"({exc.error.message}); further calls are refused without asking",
                    file=sys.stderr,
                )
            said = self.config.mask.text(str(exc))
            return listen.tool_error(f"The upstream server failed the call to {name}: {said}")
        return self.config.mask.result(result)

    async def _wait(self, ctx: ServerRequestContext[Any], r: Request, name: str) -> Request | str:
        """The decided request; or why the call is not made, when ``wait`` ran out (the
        request is then cancelled: no answer is a denial) or Signoff could not be
        followed. Progress notifications meanwhile, when the agent asked for them: at the
        start, on each change, and every ``heartbeat``."""
        started = time.monotonic()
        wait = self.config.wait
        latest = r

        async def progress(current: Request) -> None:
            nonlocal latest
            latest = current
            waited = min(time.monotonic() - started, wait)
            await ctx.session.report_progress(waited, wait, _waiting(current, waited, wait))

        async def heartbeat() -> None:
            while True:
                await anyio.sleep(self.config.heartbeat)
                await progress(latest)

        decided: Request | str = ""
        self.waiters[r.id] = self.waiters.get(r.id, 0) + 1
        try:
            async with anyio.create_task_group() as tasks:
                await progress(r)
                tasks.start_soon(heartbeat)
                try:
                    decided = await self.signoff.wait(r, timeout=wait, on_update=progress)
                except TimedOut:
                    left = await self._give_up(r, f"no decision within {brief(wait)}")
                    decided = (
                        f"Nobody approved the call to {name} within {brief(wait)}, so it "
                        f"was not made (no answer is a denial); {left}."
                    )
                except SignoffError as exc:
                    left = await self._give_up(r, f"Signoff could not be followed: {exc}")
                    decided = (
                        f"The call to {name} was not made: following request {r.id} in "
                        f"Signoff failed ({exc}); {left}."
                    )
                finally:
                    tasks.cancel_scope.cancel()
            return decided
        except anyio.get_cancelled_exc_class():
            # the agent gave up on the call (or the proxy is stopping): ask nobody further
            with anyio.CancelScope(shield=True):
                await self._give_up(r, "the agent cancelled the call")
            raise
        finally:
            others = self.waiters.pop(r.id, 1) - 1
            if others > 0:
                self.waiters[r.id] = others

    async def _give_up(self, r: Request, why: str) -> str:
        """This call will not be made: cancel the request, unless an identical call still
        waits on it (identical calls fold into one request, and one giving up, by its
        own cancellation or its own deadline, must not decide for the others); what
        became of the request, in words."""
        if self.waiters.get(r.id, 0) > 1:
            return f"request {r.id} stays open for an identical call still waiting on it"
        try:
            await self.signoff.cancel(r.id, f"signoff mcp proxy {self.config.name}: {why}")
        except SignoffError as exc:
            # unreachable, or decided meanwhile: the call is not made either way
            return (
                f"request {r.id} could not be cancelled ({exc}), but this call will not "
                "be made whatever is decided"
            )
        return f"request {r.id} was cancelled"


async def run(config: ProxyConfig, signoff: AsyncClient) -> None:
    """Connect to the upstream, then serve the agent until it leaves."""
    info = types.Implementation(name="signoff-mcp-proxy", version=__version__)
    async with McpClient(config.upstream, client_info=info) as upstream:
        gate = Gate(config, signoff, upstream)
        await listen.run(gate.server(), config.listen, f"signoff mcp proxy {config.name}")
