"""A pure ASGI middleware that bounds every HTTP request before any route sees it:

- headers: more than ``max_header_bytes`` in all is 431;
- the path and the query: a NUL character (raw or ``%00``) is 400;
- the body: more than ``max_bytes`` is 413, whether or not Content-Length was sent (a
  chunked body is read up to the limit, then refused); a JSON body must be UTF-8
  without a byte-order mark (400), as the API documents.
Each answer is problem+json."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_HEADER_BYTES = 32 * 1024


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
        headers = scope.get("headers", [])
        if sum(len(k) + len(v) for k, v in headers) > self.max_header_bytes:
            await _refuse(
                send,
                431,
                "headers-too-large",
                "Request headers too large",
                f"the request headers are larger than {self.max_header_bytes} bytes",
            )
            return
        raw_path = scope.get("raw_path") or scope.get("path", "").encode()
        query = scope.get("query_string", b"")
        if b"\x00" in raw_path or b"%00" in raw_path or b"\x00" in query or b"%00" in query:
            await _refuse(
                send,
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
            await self._too_large(send)
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
                await self._too_large(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if b"json" in content_type and body and not _utf8_json(body):
            await _refuse(
                send,
                400,
                "invalid-body",
                "Bad request",
                "the request body could not be read: it must be UTF-8 JSON, with no "
                "byte-order mark",
            )
            return
        await self.app(scope, _replay(body, None, receive), send)

    async def _too_large(self, send: Send) -> None:
        await _refuse(
            send,
            413,
            "too-large",
            "Request body too large",
            f"the request body is larger than {self.max_bytes} bytes",
        )


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


async def _refuse(send: Send, status: int, code: str, title: str, detail: str) -> None:
    body: dict[str, Any] = {
        "type": f"https://signoff.dev/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
