"""Test cases written next to the policies: the ``tests:`` lists of a policy folder.

Any file of the folder may hold a ``tests:`` list, beside its ``policies`` and
``default`` or alone (``tests.yaml``, ``20-writes_test.yaml``). The policy loader (the
server, ``policy check``) leaves them alone; here each test is validated, every problem
reported as ``file:line:column`` (unknown keys with the key probably meant, names of
policies, stages and people checked against the set and the directory), then turned into
a domain ``PolicyTest``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from signoff.adapters.policy_files import policy_file_paths, read_policy_file
from signoff.adapters.yaml_positions import (
    Located,
    Salvaged,
    did_you_mean,
    load_located,
    salvage_located,
    validate_located,
)
from signoff.domain.actions import Action
from signoff.domain.errors import ErrorList, PolicyError, SignoffError
from signoff.domain.identity import Directory, User
from signoff.domain.limits import check_json
from signoff.domain.policy import Outcome, PolicySet
from signoff.domain.policy_tests import Expectation, PolicyTest, StageExpectation

MAX_TESTS = 10_000  # in one folder
Text = Annotated[str, Field(min_length=1, max_length=2000)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ActionDoc(_Strict):
    type: Text
    target: Text
    params: dict[str, Any] = {}


def _named(value: Any) -> Any:
    """``dave`` is short for ``{name: dave}``."""
    return {"name": value} if isinstance(value, str) else value


class RequesterDoc(_Strict):
    _short = model_validator(mode="before")(_named)
    name: Annotated[str, Field(min_length=1, max_length=200)]
    email: str | None = None
    admin: bool | None = None
    groups: list[str] | None = None
    claims: dict[str, Any] = {}


class ContextDoc(_Strict):
    """As the API takes it (``ContextIn``)."""

    links: list[Text] = []
    diff: str | None = None
    labels: dict[str, Annotated[str, Field(max_length=200)]] = {}
    risk: Literal["low", "medium", "high", "critical"] | None = None


class StageExpectDoc(_Strict):
    _short = model_validator(mode="before")(_named)
    name: str | None = None
    approvers: list[str] | None = None
    quorum: Annotated[int, Field(ge=1, le=100)] | None = None


class ExpectDoc(_Strict):
    outcome: Literal["allow", "deny", "review"] | None = None
    policy: str | None = None
    stages: list[StageExpectDoc] | None = None
    approvers: list[str] | None = None
    quorum: Annotated[int, Field(ge=1, le=100)] | list[int] | None = None


class TestDoc(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    action: ActionDoc
    requester: RequesterDoc  # or a name: the user of that name in the users file
    context: ContextDoc = ContextDoc()
    ticket: str | None = None
    at: Any = None  # a YAML timestamp or an ISO 8601 string, read below
    expect: ExpectDoc


class TestsDoc(BaseModel):
    model_config = ConfigDict(extra="allow")  # policies and default: the loader's part
    tests: Annotated[list[Any], Field(max_length=MAX_TESTS)] = []


def _time(value: Any) -> datetime | None:
    """``at`` as an aware time (UTC when it names no zone), or None when it is not one."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class _Reader:
    def __init__(self, policies: PolicySet, directory: Directory, errors: ErrorList) -> None:
        self.policies = policies
        self.directory = directory
        self.errors = errors
        self.names: dict[str, str] = {}
        self.policy_names = [p.name for p in (*policies.policies, policies.default)]
        self.stage_names = sorted(
            {s.name for p in (*policies.policies, policies.default) for s in p.stages}
        )

    def err(self, doc: Located, path: tuple[str | int, ...], message: str) -> None:
        line, col = doc.where(path)
        self.errors.add(doc.file, line, col, message)

    def people(self, doc: Located, path: tuple[str | int, ...], names: list[str]) -> frozenset[str]:
        for j, n in enumerate(names):
            if n not in self.directory.users:
                self.err(
                    doc, (*path, j), f"unknown user {n!r}{did_you_mean(n, self.directory.users)}"
                )
        return frozenset(names)

    def requester(self, doc: Located, path: tuple[str | int, ...], r: RequesterDoc) -> User:
        known = self.directory.users
        if isinstance(doc.get(path), str):  # a name: someone in the users file
            if r.name not in known:
                self.err(
                    doc,
                    path,
                    f"unknown user {r.name!r}{did_you_mean(r.name, known)} (a requester who is "
                    "not in the "
                    "users file, such as a workload, is written {name, groups, claims})",
                )
                return User(name=r.name)
            return known[r.name]
        base = known.get(r.name, User(name=r.name))
        return User(
            name=r.name,
            email=r.email if r.email is not None else base.email,
            admin=r.admin if r.admin is not None else base.admin,
            groups=frozenset(r.groups) if r.groups is not None else base.groups,
            claims=dict(r.claims),
        )

    def expectation(
        self, s: Salvaged[TestDoc], path: tuple[str | int, ...], e: ExpectDoc
    ) -> Expectation:
        doc = s.doc
        if all(v is None for v in e.model_dump().values()) and not s.hurt(*path):
            self.err(
                doc,
                path,
                "expect needs at least one of outcome, policy, stages, approvers, quorum",
            )
        if e.policy is not None and e.policy not in self.policy_names:
            self.err(
                doc,
                (*path, "policy"),
                f"unknown policy {e.policy!r}{did_you_mean(e.policy, self.policy_names)}",
            )
        stages = None
        if e.stages is not None:
            found = []
            for i, st in enumerate(e.stages):
                spath = (*path, "stages", i)
                if st.name is not None and st.name not in self.stage_names:
                    at = spath if isinstance(doc.get(spath), str) else (*spath, "name")
                    hint = did_you_mean(st.name, self.stage_names)
                    self.err(doc, at, f"no policy has a stage named {st.name!r}{hint}")
                people = (
                    self.people(doc, (*spath, "approvers"), st.approvers)
                    if st.approvers is not None
                    else None
                )
                found.append(StageExpectation(st.name, people, st.quorum))
            stages = tuple(found)
        approvers = (
            self.people(doc, (*path, "approvers"), e.approvers) if e.approvers is not None else None
        )
        quorum: int | tuple[int, ...] | None = None
        if isinstance(e.quorum, list):
            if not e.quorum or any(not 1 <= q <= 100 for q in e.quorum):
                said = "quorum: one number, or one per stage, each 1 to 100"
                self.err(doc, (*path, "quorum"), said)
            quorum = tuple(e.quorum)
        else:
            quorum = e.quorum
        return Expectation(
            outcome=Outcome(e.outcome) if e.outcome is not None else None,
            policy=e.policy,
            stages=stages,
            approvers=approvers,
            quorum=quorum,
        )

    def test(
        self, s: Salvaged[TestDoc], path: tuple[str | int, ...], t: TestDoc
    ) -> PolicyTest | None:
        doc = s.doc
        before = len(self.errors.problems)
        where = f"{doc.file}:{doc.where(path)[0]}"
        if t.name in self.names:
            self.err(
                doc,
                (*path, "name"),
                f"test name {t.name!r} is already used at {self.names[t.name]}",
            )
        else:
            self.names[t.name] = where
        action = None
        try:
            check_json(t.action.params, "params")
            action = Action(t.action.type, t.action.target, dict(t.action.params))
        except SignoffError as exc:
            self.err(doc, (*path, "action"), f"action: {exc.detail}")
        at = None
        if t.at is not None:
            at = _time(t.at)
            if at is None:
                self.err(
                    doc,
                    (*path, "at"),
                    f"at: {t.at!r} is not a time; write one such as 2026-03-02T10:00:00Z",
                )
        requester = self.requester(doc, (*path, "requester"), t.requester)
        expect = self.expectation(s, (*path, "expect"), t.expect)
        if action is None or len(self.errors.problems) != before:
            return None
        return PolicyTest(
            name=t.name,
            action=action,
            requester=requester,
            expect=expect,
            context=t.context.model_dump(exclude_none=True),
            ticket=t.ticket,
            at=at,
            file=doc.file,
            line=doc.where(path)[0],
        )


def load_policy_tests(
    folder: Path | str, policies: PolicySet, directory: Directory
) -> list[PolicyTest]:
    """Every test case of a policy folder (whose policies loaded as ``policies``), in
    file order; raise PolicyError with every problem in them, by file and position."""
    root = Path(folder)
    errors = ErrorList()
    reader = _Reader(policies, directory, errors)
    files = policy_file_paths(root)
    tests: list[PolicyTest] = []
    for path in files:
        text = read_policy_file(path, errors)
        if text is None:
            continue
        doc = load_located(str(path), text, errors)
        if doc is None or not isinstance(doc.data, dict) or "tests" not in doc.data:
            continue
        top = validate_located(TestsDoc, doc, errors)
        if top is None:
            continue
        for i in range(len(top.tests)):
            # a wrong part is reported and set aside, and the rest still checked
            t = salvage_located(TestDoc, doc, errors, ("tests", i))
            if t.model is not None:
                found = reader.test(t, ("tests", i), t.model)
                if found is not None and not t.damaged:
                    tests.append(found)
    if errors.problems:
        order = {str(p): k for k, p in enumerate(files)}
        raise PolicyError(
            sorted(errors.problems, key=lambda p: (order.get(p.file, -1), p.line, p.column))
        )
    return tests
