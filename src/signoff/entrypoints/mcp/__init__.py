"""Signoff for AI agents over the Model Context Protocol (the official ``mcp`` SDK).

- ``proxy.py``: ``signoff mcp proxy``, a gate between an agent and an upstream MCP
  server: every ``tools/call`` is an action (``mcp.tool`` on ``mcp/NAME/TOOL``) judged
  by the policies, forwarded only as allowed or approved, with exactly the approved
  arguments.
- ``serve.py``: ``signoff mcp serve``, Signoff's own tools for an agent that asks first
  (request_approval, get_request, wait_for_decision, list_my_requests).
- ``listen.py``: what both share: the agent's side over stdio or streamable HTTP.

Both talk to a Signoff server with the Python SDK (``signoff.sdk``), as the identity its
token names (``SIGNOFF_TOKEN``, a token file for workload identity, or the login).
"""
