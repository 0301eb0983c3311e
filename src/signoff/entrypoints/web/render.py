"""An action as an approver should read it, by kind: SQL highlighted exactly as written
with its analysis and banners, a command as its argv, an HTTP call as method, path and
body, a unified diff (``context.diff``) coloured, a GitHub deployment's commits.
Highlighting is Pygments with CSS classes (the stylesheet is served from
``/assets/code.css``; no inline style, so the pages' Content-Security-Policy holds).
Pygments is imported at the first highlight: an idle server does not hold it."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from markupsafe import Markup

from signoff.domain.sql import analyse

if TYPE_CHECKING:
    from pygments.formatters import HtmlFormatter

MAX_HIGHLIGHT = 200_000  # characters; longer text is shown plain


@functools.cache
def _formatter() -> HtmlFormatter[str]:
    from pygments.formatters import HtmlFormatter

    return HtmlFormatter(cssclass="code", nowrap=False)


def code_css() -> str:
    return str(_formatter().get_style_defs(".code")) + "\n" + _DARK  # type: ignore[no-untyped-call]


_DARK = """@media (prefers-color-scheme: dark) { .code, .code pre { background: #222428; }
.code .k, .code .kn, .code .kd { color: #7aa7ff; }
.code .s1, .code .s2, .code .s { color: #9fd38a; }
.code .gi { color: #4cc38a; } .code .gd { color: #ff6b7d; } .code .gu, .code .gh { color: #a0a4aa; }
.code .mi, .code .mf { color: #e5b567; } }"""


def _code(text: str, language: Literal["sql", "json", "diff"]) -> Markup:
    if len(text) > MAX_HIGHLIGHT:
        return Markup("<pre>{}</pre>").format(text)
    from pygments import highlight
    from pygments.lexers import DiffLexer, JsonLexer, SqlLexer

    lexer = {"sql": SqlLexer, "json": JsonLexer, "diff": DiffLexer}[language]()
    return Markup(highlight(text, lexer, _formatter()))


@dataclass(frozen=True)
class Shown:
    """One block of the action's rendering."""

    title: str
    html: Markup
    banners: list[str] = field(default_factory=list)


def action_blocks(
    params: dict[str, Any], context: dict[str, Any], type: str = "", target: str = ""
) -> list[Shown]:
    out: list[Shown] = []
    rest = dict(params)
    tool = target.split("/", 2) if type == "mcp.tool" else []
    if len(tool) == 3:
        # an agent's tool call through `signoff mcp proxy`: the params are its arguments
        out.append(
            Shown(
                "Tool call (an AI agent, through the MCP proxy)",
                Markup(
                    "<p class='http'><b>{}</b> on the MCP server <code>{}</code>, "
                    "with {} argument{}:</p>"
                ).format(tool[2], tool[1], len(rest), "" if len(rest) == 1 else "s"),
            )
        )
        for key, value in rest.items():
            text = (
                value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
            )
            out.append(Shown(f"Argument {key}", Markup("<pre>{}</pre>").format(text)))
        return out
    found = analyse(params)
    if "sql" in found and isinstance(rest.get("sql"), str):
        sql = str(rest.pop("sql"))
        c = found["sql"]
        banners = []
        if c.get("unbounded_write"):
            banners.append("Writes to every row: UPDATE or DELETE without WHERE")
        if c.get("kind") == "ddl":
            banners.append("Changes the schema (DDL)")
        if c.get("kind") == "multiple":
            banners.append("Several statements in one action")
        if c.get("kind") == "unknown":
            banners.append("SQL that could not be parsed: read it closely")
        # exactly as it will run: a pretty-printer rewrites functions and literals
        out.append(Shown("SQL", _code(sql, "sql"), banners))
    argv = rest.get("argv")
    if isinstance(argv, list) and all(isinstance(a, str) for a in argv):
        rest.pop("argv")
        items = Markup("").join(Markup("<li><code>{}</code></li>").format(a) for a in argv)
        out.append(
            Shown(
                "Command (each argument as given, no shell)",
                Markup("<ol class='argv'>{}</ol>").format(items),
            )
        )
    if isinstance(rest.get("method"), str) and isinstance(rest.get("path"), str):
        method, path = str(rest.pop("method")).upper(), str(rest.pop("path"))
        head = Markup("<p class='http'><b>{}</b> <code>{}</code></p>").format(method, path)
        body = rest.pop("body", None)
        headers = rest.pop("headers", None)
        parts = [head]
        if headers:
            parts.append(_code(json.dumps(headers, indent=2, ensure_ascii=False), "json"))
        if body is not None:
            text = body if isinstance(body, str) else json.dumps(body, indent=2, ensure_ascii=False)
            parts.append(_code(text, "json"))
        out.append(Shown("HTTP call", Markup("").join(parts)))
    for key, value in rest.items():
        text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
        out.append(Shown(str(key), Markup("<pre>{}</pre>").format(text)))
    diff = context.get("diff")
    if isinstance(diff, str) and diff.strip():
        out.append(Shown("Change (diff)", _code(diff, "diff")))
    commits = context.get("commits")  # a GitHub deployment's (services/github.py)
    if isinstance(commits, list) and commits:
        lines = [
            f"{str(c.get('sha', ''))[:12]}  {c.get('message', '')}"
            for c in commits
            if isinstance(c, dict)
        ]
        out.append(Shown("Commits", Markup("<pre>{}</pre>").format("\n".join(lines))))
    return out
