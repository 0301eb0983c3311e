"""``http``: performs the approved method, path, headers and body against the target's
base URL with httpx, with the target's credentials added to the headers."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import unquote

import httpx

from signoff.adapters.executors.masking import Mask
from signoff.domain.actions import Action
from signoff.domain.errors import InvalidInput
from signoff.services.ports import ExecutionOutcome

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})

# httpcore's debug trace logs every request's headers, the target's credentials
# included: it never logs below INFO in a process that holds them.
logging.getLogger("httpcore").setLevel(max(logging.INFO, logging.getLogger("httpcore").level))


class HttpExecutor:
    kind = "http"

    def __init__(
        self,
        name: str,
        base_url: str,
        secret_headers: dict[str, str],
        timeout_s: float,
        max_output: int,
        mask: Mask,
    ) -> None:
        self.name = name
        self.base = httpx.URL(base_url.rstrip("/") + "/")
        self._headers = secret_headers  # secrets
        self.timeout_s = timeout_s
        self.max_output = max_output
        self.mask = mask

    def __repr__(self) -> str:
        return f"HttpExecutor({self.name!r})"

    def url(self, path: str) -> httpx.URL:
        """The URL an approved path reaches, confined to the target's base URL.

        Many servers decode a path before routing it, so a path is judged as decoded:
        encoded dots, separators and NULs (``%2e``, ``%2f``, ``%5c``, ``%00``),
        backslashes, dot segments (``.``, ``..``) and fragments are refused, and what is
        left must stay under the base path."""
        route, _, _query = path.partition("?")
        lowered = route.lower()
        for encoded in ("%2e", "%2f", "%5c", "%00"):
            if encoded in lowered:
                raise InvalidInput(
                    f"path {path!r} may not contain {encoded!r} (an encoded dot, separator or NUL)"
                )
        if "\\" in route or "#" in path:
            raise InvalidInput(f"path {path!r} may not contain a backslash or '#'")
        decoded = unquote(route)
        if any(segment in (".", "..") for segment in decoded.split("/")):
            raise InvalidInput(f"path {path!r} may not contain '.' or '..' segments")
        url = self.base.join(path.lstrip("/"))
        if (
            url.host != self.base.host
            or url.port != self.base.port
            or url.scheme != self.base.scheme
            or not url.path.startswith(self.base.path)
        ):
            raise InvalidInput(f"path {path!r} leaves the base URL of target {self.name}")
        return url

    def check(self, action: Action) -> None:
        p = action.params
        extra = set(p) - {"method", "path", "headers", "body"}
        if extra:
            raise InvalidInput(
                f"target {self.name} takes method, path, headers, body; not {sorted(extra)}"
            )
        if str(p.get("method", "")).upper() not in METHODS:
            raise InvalidInput(f"params.method must be one of {sorted(METHODS)}")
        if not isinstance(p.get("path"), str):
            raise InvalidInput("params.path must be a string")
        headers = p.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise InvalidInput("params.headers must be an object of strings")
        clash = {h.lower() for h in headers} & {h.lower() for h in self._headers}
        if clash:
            raise InvalidInput(f"params.headers may not set {sorted(clash)}: the target does")
        self.url(p["path"])

    def run(self, action: Action, read_only: bool) -> ExecutionOutcome:
        p = action.params
        method = str(p["method"]).upper()
        body = p.get("body")
        headers: dict[str, Any] = {**p.get("headers", {}), **self._headers}
        content: bytes | None = None
        if isinstance(body, str):
            content = body.encode()
        elif body is not None:
            content = json.dumps(body, separators=(",", ":")).encode()
            headers.setdefault("Content-Type", "application/json")
        try:
            with httpx.Client(timeout=self.timeout_s, follow_redirects=False) as client:
                resp = client.request(method, self.url(p["path"]), headers=headers, content=content)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # nothing was sent
            return ExecutionOutcome(
                False, f"not run: could not connect ({type(exc).__name__})", {}, ran=False
            )
        except httpx.TimeoutException:
            return ExecutionOutcome(False, f"timed out after {self.timeout_s:g} s", {})
        except httpx.HTTPError as exc:
            return ExecutionOutcome(False, f"HTTP error: {type(exc).__name__}", {})
        raw = resp.content
        text = self.mask.text(raw[: self.max_output].decode("utf-8", "replace"))
        output = {
            "status": resp.status_code,
            "content_type": resp.headers.get("content-type", ""),
            "body": text,
            "truncated": len(raw) > self.max_output,
        }
        return ExecutionOutcome(resp.status_code < 400, f"HTTP {resp.status_code}", output)
