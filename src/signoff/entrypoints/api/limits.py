"""A pure ASGI middleware that bounds every HTTP request before any route sees it:

- headers: more than ``max_header_bytes`` in all is 431;
- the path and the query: a NUL character (raw or ``%00``) is 400;
- the body: more than ``max_bytes`` is 413, whether or not Content-Length was sent (a
  chunked body is read up to the limit, then refused); a JSON body must be UTF-8
  without a byte-order mark (400), as the API documents.
Each answer is problem+json, or a small page on the paths meant for people (the pages
behind links in messages, and the web app to come)."""

from __future__ import annotations

import html
import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_HEADER_BYTES = 32 * 1024
# Paths of the API and of machines; everything else is a page for people.
MACHINE_PATHS = (
    "/v1/",
    "/slack/",
    "/integrations/",
    "/.well-known/",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/docs",
)


class BodySizeLimit:
    def __init__(
        self, app: ASGIApp, max_bytes: int, max_header_bytes: int = MAX_HEADER_BYTES
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        people = not str(scope.get("path", "")).startswith(MACHINE_PATHS)

        async def refuse(status: int, code: str, title: str, detail: str) -> None:
            await _refuse(send, status, code, title, detail, page=people)

        headers = scope.get("headers", [])
        if sum(len(k) + len(v) for k, v in headers) > self.max_header_bytes:
            await refuse(
                431,
                "headers-too-large",
                "Request headers too large",
                f"the request headers are larger than {self.max_header_bytes} bytes",
            )
            return
        raw_path = scope.get("raw_path") or scope.get("path", "").encode()
        query = scope.get("query_string", b"")
        if b"\x00" in raw_path or b"%00" in raw_path or b"\x00" in query or b"%00" in query:
            await refuse(
                400,
                "invalid-characters",
                "Invalid characters",
                "the path or query contains a NUL character, which is not allowed",
            )
            return
        declared = None
        content_type = b""
        for name, value in headers:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
            elif name == b"content-type":
                content_type = value.lower()
        if declared is not None and declared > self.max_bytes:
            await refuse(413, "too-large", "Request body too large", self._too_large_detail())
            return
        if scope.get("method") in ("GET", "HEAD", "OPTIONS", "DELETE") and not declared:
            await self.app(scope, receive, send)
            return
        # Read the whole body first (bounded), then hand it on in one message.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay(b"", message, receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await refuse(413, "too-large", "Request body too large", self._too_large_detail())
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if b"json" in content_type and body and not _utf8_json(body):
            await refuse(
                400,
                "invalid-body",
                "Bad request",
                "the request body could not be read: it must be UTF-8 JSON, with no "
                "byte-order mark",
            )
            return
        await self.app(scope, _replay(body, None, receive), send)

    def _too_large_detail(self) -> str:
        return f"the request body is larger than {self.max_bytes} bytes"


def _utf8_json(body: bytes) -> bool:
    if body.startswith(b"\xef\xbb\xbf"):
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _replay(body: bytes, then: Message | None, receive: Receive) -> Receive:
    """A receive() that gives the buffered body (or ``then``) once, then passes on to
    the client's own receive (which tells of a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            if then is not None:
                return then
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _refuse(
    send: Send, status: int, code: str, title: str, detail: str, page: bool = False
) -> None:
    if page:
        e = html.escape
        data = (
            "<!doctype html><html><head><meta charset=utf-8>"
            "<meta name=viewport content='width=device-width'>"
            f"<title>{e(title)} · Signoff</title><style>body{{font-family:system-ui,"
            "sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem}</style></head>"
            f"<body><h1>{e(title)}</h1><p>{e(detail)}</p><p>Nothing was changed.</p>"
            "</body></html>"
        ).encode()
        kind = b"text/html; charset=utf-8"
    else:
        body: dict[str, Any] = {
            "type": f"https://signoff.dev/problems/{code}",
            "title": title,
            "status": status,
            "detail": detail,
        }
        data = json.dumps(body).encode()
        kind = b"application/problem+json"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", kind), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})
