"""An agent's tool call on the request page: the tool, its server and each argument
exactly as it will be forwarded."""

from __future__ import annotations

from signoff.entrypoints.web.render import action_blocks


def test_a_tool_call_shows_the_tool_its_server_and_each_argument() -> None:
    params = {"path": "deploy/values.yaml", "content": "replicas: 3\n<script>", "n": [1, 2]}
    blocks = action_blocks(params, {}, "mcp.tool", "mcp/files/write_file")
    assert [b.title for b in blocks] == [
        "Tool call (an AI agent, through the MCP proxy)",
        "Argument path",
        "Argument content",
        "Argument n",
    ]
    assert "<b>write_file</b> on the MCP server <code>files</code>, with 3 arguments" in str(
        blocks[0].html
    )
    assert str(blocks[2].html) == "<pre>replicas: 3\n&lt;script&gt;</pre>"  # escaped
    assert str(blocks[3].html) == "<pre>[\n  1,\n  2\n]</pre>"


def test_other_actions_keep_their_rendering() -> None:
    blocks = action_blocks({"path": "x"}, {}, "deploy", "mcp/files/write_file")
    assert [b.title for b in blocks] == ["path"]
