"""Targets: where approved actions run, from a YAML file (``SIGNOFF_TARGETS_FILE``).

```yaml
targets:
  - name: pg/prod
    executor: postgres
    dsn: {env: PROD_PG_DSN}        # or {file: /run/secrets/prod-dsn}
    statement_timeout: 5s
    max_rows: 1000
    pool_size: 4                   # connections kept to the target
    connect_timeout: 10s
    mask: {columns: [email], patterns: ['\\b\\d{16}\\b']}
  - name: ops/restart
    executor: command
    allow: [/usr/local/bin/restart-app]
    cwd: /srv/app
    env: {PATH: /usr/bin:/bin, TOKEN: {env: RESTART_TOKEN}}
    timeout: 60s
  - name: deploy/api
    executor: http
    base_url: https://deploy.internal/api/
    headers: {Authorization: {env: DEPLOY_TOKEN, prefix: "Bearer "}}
```

Secrets are read from environment variables or files when the server starts; a missing
one is a configuration error that names the variable or file, never a value.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from signoff.adapters.executors.masking import Mask
from signoff.adapters.executors.scrubbing import ScrubbedExecutor
from signoff.adapters.yaml_positions import Located, load_model_file
from signoff.domain.actions import Action
from signoff.domain.durations import parse_duration
from signoff.domain.errors import ErrorList, InvalidInput, PolicyError
from signoff.services.ports import Executor


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SecretRef(_Strict):
    env: str | None = None
    file: str | None = None
    prefix: str = ""


Value = str | SecretRef


class MaskDoc(_Strict):
    columns: list[str] = []
    patterns: list[str] = []


class TargetDoc(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=500)]
    executor: Literal["postgres", "command", "http"]
    mask: MaskDoc = MaskDoc()
    timeout: str = "30s"
    max_output: Annotated[int, Field(ge=1, le=10_000_000)] = 1_000_000
    # postgres
    dsn: Value | None = None
    statement_timeout: str = "30s"
    max_rows: Annotated[int, Field(ge=1, le=1_000_000)] = 1000
    read_only: bool = False
    pool_size: Annotated[int, Field(ge=1, le=100)] = 4
    connect_timeout: str = "10s"
    # command
    allow: list[str] = []
    cwd: str | None = None
    env: dict[str, Value] = {}
    # http
    base_url: str | None = None
    headers: dict[str, Value] = {}


class TargetsDoc(_Strict):
    targets: list[TargetDoc] = []
    # Targets of these action types that other enforcement points run (glob patterns):
    # requests for them are not refused as unknown targets.
    external: list[Annotated[str, Field(min_length=1, max_length=500)]] = []


# The action type each kind of executor runs. With targets configured, a request of one
# of these types must name a configured target (or an `external` one): a typo is refused
# when it is asked, not after approvers said yes.
ACTION_TYPES = {"postgres": "sql.execute", "command": "command.run", "http": "http.request"}


@dataclass(frozen=True)
class TargetSet:
    executors: dict[str, Executor]
    external: tuple[str, ...] = ()

    def check(self, action: Action) -> None:
        """Refuse (InvalidInput) an action its target could not run as given, or one of
        an executing type on a target that is not configured, naming the close ones."""
        executor = self.executors.get(action.target)
        if executor is not None:
            executor.check(action)
            return
        same = sorted(
            n for n, e in self.executors.items() if ACTION_TYPES.get(e.kind) == action.type
        )
        if not same or any(fnmatch.fnmatchcase(action.target, p) for p in self.external):
            return
        close = difflib.get_close_matches(action.target, same, n=3, cutoff=0.6)
        hint = (
            f"did you mean {' or '.join(close)}?"
            if close
            else f"configured for {action.type}: {', '.join(same[:10])}"
            + (" …" if len(same) > 10 else "")
        )
        raise InvalidInput(
            f"no target named {action.target!r} is configured to run {action.type}; {hint}",
            field="action.target",
        )


class _Reader:
    def __init__(self, doc: Located, errors: ErrorList) -> None:
        self.doc = doc
        self.errors = errors
        self.secrets: list[str] = []  # of the target being read

    def err(self, path: tuple[str | int, ...], message: str) -> None:
        line, col = self.doc.where(path)
        self.errors.add(self.doc.file, line, col, message)

    def secret(
        self, path: tuple[str | int, ...], value: Value, plain_is_secret: bool = True
    ) -> str:
        """A value that may come from the environment or a file. Values read that way
        are secrets, scrubbed from every output; so are plain values where the field
        is a credential (a header, a DSN), but not a command's plain env (PATH)."""
        found = self._read_secret(path, value)
        if found and (plain_is_secret or not isinstance(value, str)):
            self.secrets.append(found)
        return found

    def _read_secret(self, path: tuple[str | int, ...], value: Value) -> str:
        if isinstance(value, str):
            return value
        if (value.env is None) == (value.file is None):
            self.err(path, "a secret is {env: NAME} or {file: PATH}")
            return ""
        if value.env is not None:
            found = os.environ.get(value.env)
            if found is None:
                self.err(path, f"environment variable {value.env} is not set")
                return ""
            return value.prefix + found
        try:
            return value.prefix + Path(str(value.file)).read_text(encoding="utf-8").strip()
        except OSError as exc:
            self.err(path, f"cannot read secret file {value.file}: {exc.strerror}")
            return ""

    def seconds(self, path: tuple[str | int, ...], text: str) -> float:
        try:
            return parse_duration(text).total_seconds()
        except ValueError as exc:
            self.err(path, str(exc))
            return 0.0

    def mask(self, path: tuple[str | int, ...], m: MaskDoc) -> Mask:
        patterns = []
        for j, p in enumerate(m.patterns):
            try:
                patterns.append(re.compile(p))
            except re.error as exc:
                self.err((*path, "patterns", j), f"invalid pattern: {exc}")
        return Mask(frozenset(c.lower() for c in m.columns), tuple(patterns))

    def target(self, i: int, t: TargetDoc) -> Executor | None:
        """The target's executor, wrapped so that no secret it holds leaves it."""
        self.secrets = []
        executor = self._target(i, t)
        if executor is None:
            return None
        return ScrubbedExecutor(executor, self.secrets)

    def _dsn(self, path: tuple[str | int, ...], value: Value) -> str:
        """A DSN that psycopg can read; a malformed one is a configuration problem that
        names where it came from, never its text (it holds a password)."""
        from psycopg.conninfo import conninfo_to_dict

        dsn = self.secret(path, value)
        try:
            parts = conninfo_to_dict(dsn)
        except Exception:
            source = value if isinstance(value, str) else (value.env or value.file)
            where = "the dsn" if isinstance(value, str) else f"the dsn from {source}"
            self.err(
                path,
                f"{where} is not a valid PostgreSQL connection string (a password with a "
                "space or a % must be percent-encoded in a URL); its text is not shown",
            )
            return ""
        password = parts.get("password")
        if password:
            self.secrets.append(str(password))
        return dsn

    def _target(self, i: int, t: TargetDoc) -> Executor | None:
        path: tuple[str | int, ...] = ("targets", i)
        mask = self.mask((*path, "mask"), t.mask)
        timeout = self.seconds((*path, "timeout"), t.timeout)
        # each kind's module (psycopg and its pool, httpx) loads only when a target needs it
        if t.executor == "postgres":
            from signoff.adapters.executors.postgres import PostgresExecutor

            if t.dsn is None:
                self.err(path, f"target {t.name}: a postgres target needs `dsn`")
                return None
            dsn = self._dsn((*path, "dsn"), t.dsn)
            ms = int(self.seconds((*path, "statement_timeout"), t.statement_timeout) * 1000)
            connect = self.seconds((*path, "connect_timeout"), t.connect_timeout)
            return PostgresExecutor(
                t.name, dsn, ms, t.max_rows, mask, t.read_only, t.pool_size, connect
            )
        if t.executor == "command":
            from signoff.adapters.executors.command import CommandExecutor

            if not t.allow:
                self.err(path, f"target {t.name}: a command target needs `allow`")
            for j, exe in enumerate(t.allow):
                if not os.path.isabs(exe):
                    self.err(
                        (*path, "allow", j), f"{exe!r}: allow-listed executables are absolute paths"
                    )
            env = {k: self.secret((*path, "env", k), v, False) for k, v in t.env.items()}
            cwd = Path(t.cwd or "/")
            if not cwd.is_dir():
                self.err((*path, "cwd"), f"{cwd} is not a directory")
            return CommandExecutor(t.name, t.allow, cwd, env, timeout, t.max_output, mask)
        from signoff.adapters.executors.http import HttpExecutor

        if t.base_url is None:
            self.err(path, f"target {t.name}: an http target needs `base_url`")
            return None
        headers = {k: self.secret((*path, "headers", k), v) for k, v in t.headers.items()}
        return HttpExecutor(t.name, t.base_url, headers, timeout, t.max_output, mask)


def load_targets(path: Path | str | None) -> dict[str, Executor]:
    """The executors by target name; raises PolicyError listing every problem."""
    return load_target_set(path).executors


def load_target_set(path: Path | str | None) -> TargetSet:
    """The targets file read: executors by name, and the external patterns."""
    if path is None or str(path) == "":
        return TargetSet({})
    errors = ErrorList()
    doc, parsed = load_model_file(path, TargetsDoc, "targets file", errors)
    reader = _Reader(doc, errors)
    out: dict[str, Executor] = {}
    for i, t in enumerate(parsed.targets):
        if t.name in out:
            reader.err(("targets", i, "name"), f"duplicate target {t.name!r}")
        executor = reader.target(i, t)
        if executor is not None:
            out[t.name] = executor
    if errors.problems:
        raise PolicyError(errors.problems)
    return TargetSet(out, tuple(parsed.external))
