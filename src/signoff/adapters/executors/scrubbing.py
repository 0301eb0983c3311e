"""Secrets never leave a target: whatever an executor reports (a summary, rows, a
program's output, an HTTP body that echoes the request's headers, an error message that
quotes a connection string), every secret value the target holds is replaced before
anything is stored, shown, logged or digested. Applied to every target, whatever its
``mask`` settings, by wrapping its executor."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote

from signoff.adapters.executors.masking import map_text
from signoff.domain.actions import Action
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

    def text(self, value: str) -> str:
        for s in self.secrets:
            if s in value:
                value = value.replace(s, HIDDEN)
        return value

    def value(self, value: Any) -> Any:
        return map_text(value, self.text, keys=True)


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
        return ExecutionOutcome(
            outcome.ok,
            self.scrubber.text(outcome.summary),
            self.scrubber.value(outcome.output),
            outcome.ran,
        )

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()
