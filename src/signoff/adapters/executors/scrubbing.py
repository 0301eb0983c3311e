"""Secrets never leave a target: whatever an executor reports (a summary, rows, a
program's output, an HTTP body that echoes the request's headers, an error message that
quotes a connection string), every secret value the target holds is replaced before
anything is stored, shown, logged or digested. Applied to every target, whatever its
``mask`` settings, by wrapping its executor."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote

from signoff.adapters.executors.masking import map_text
from signoff.domain.actions import Action, canonical_json
from signoff.domain.errors import InvalidInput
from signoff.services.ports import ExecutionOutcome, Executor

HIDDEN = "[secret]"
MIN_LENGTH = 4  # shorter values would hide ordinary text; targets' secrets are longer


def variants(secret: str) -> set[str]:
    """A secret as it may appear in output: as given, percent-encoded or decoded, and
    without an authentication scheme (``Bearer ...``)."""
    found = {secret, quote(secret, safe=""), unquote(secret)}
    scheme, _, rest = secret.partition(" ")
    if rest and scheme.isalpha():
        found |= {rest, quote(rest, safe="")}
    return {s for s in found if len(s) >= MIN_LENGTH}


class Scrubber:
    def __init__(self, secrets: Iterable[str]) -> None:
        every: set[str] = set()
        for s in secrets:
            every |= variants(s)
        self.secrets = sorted(every, key=len, reverse=True)  # longest first
        # each as it appears inside a JSON string (canonical_json escapes per character,
        # so a string holds a secret only if its encoding holds the secret's encoding)
        self._encoded = [json.dumps(s, ensure_ascii=False)[1:-1].encode() for s in self.secrets]

    def text(self, value: str) -> str:
        for s in self.secrets:
            if s in value:
                value = value.replace(s, HIDDEN)
        return value

    def value(self, value: Any) -> Any:
        return map_text(value, self.text, keys=True)

    def output(
        self, value: dict[str, Any], encoded: bytes | None = None
    ) -> tuple[dict[str, Any], bytes | None]:
        """The output scrubbed, and its canonical JSON when it had nothing to scrub.

        The output is encoded once (or comes ``encoded`` by the executor) and searched as
        a whole (in C, not string by string in Python); only an output that holds a secret
        somewhere is walked."""
        try:
            encoded = encoded if encoded is not None else canonical_json(value)
        except InvalidInput:  # not encodable (NaN): left for the use case to report
            return self.value(value), None
        if any(s in encoded for s in self._encoded):
            return self.value(value), None
        return value, encoded


class ScrubbedExecutor:
    """An executor whose every outcome is scrubbed of its target's secrets."""

    def __init__(self, inner: Executor, secrets: Iterable[str]) -> None:
        self.inner = inner
        self.name = inner.name
        self.kind = inner.kind
        self.scrubber = Scrubber(secrets)

    def __repr__(self) -> str:
        return f"ScrubbedExecutor({self.inner!r})"

    def check(self, action: Action) -> None:
        self.inner.check(action)

    def run(self, action: Action, read_only: bool) -> ExecutionOutcome:
        outcome = self.inner.run(action, read_only)
        if not self.scrubber.secrets:
            return outcome
        output, encoded = self.scrubber.output(outcome.output, outcome.encoded)
        return ExecutionOutcome(
            outcome.ok, self.scrubber.text(outcome.summary), output, outcome.ran, encoded
        )

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()
