"""The agent's side of ``signoff mcp proxy`` and ``signoff mcp serve``: stdio (the agent
starts the command) or streamable HTTP on a loopback address (``--listen``)."""

from __future__ import annotations

import ipaddress
import sys
from typing import Any

import mcp_types as types
from mcp.server import MCPServer, Server
from mcp.server.stdio import stdio_server

PATH = "/mcp"


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``PORT`` (on 127.0.0.1) -> (host, port); ValueError says why.

    The host must be a loopback address (or ``localhost``): the agent's side has no
    authentication of its own, so whoever reaches it acts as the proxy's identity."""
    host, _, port = value.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT or PORT, not {value!r}")
    if not _loopback(host):
        raise ValueError(
            f"{host} is not a loopback address: whoever reaches it would act as this "
            "identity, unauthenticated; listen on 127.0.0.1, ::1 or localhost (and reach "
            "it from the agent's machine or pod)"
        )
    return host, int(port)


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tool_error(text: str) -> types.CallToolResult:
    """A failed tool call the agent (and its model) reads: never a protocol error, so the
    model sees why."""
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


async def run(server: Server[Any] | MCPServer, listen: tuple[str, int] | None, what: str) -> None:
    """Serve ``server`` until the agent goes away (stdio) or the process is stopped."""
    if listen is None:
        low = server._lowlevel_server if isinstance(server, MCPServer) else server
        async with stdio_server() as (read, write):
            await low.run(read, write, low.create_initialization_options())
        return
    import uvicorn

    host, port = listen
    app = server.streamable_http_app(streamable_http_path=PATH, host=host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    web = uvicorn.Server(config)
    shown = f"[{host}]" if ":" in host else host
    print(f"{what}: MCP over streamable HTTP at http://{shown}:{port}{PATH}", file=sys.stderr)
    await web.serve()
