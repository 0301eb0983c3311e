"""Policy-as-code: a folder of YAML files becomes a PolicySet, or a list of problems.

Files (``*.yaml``/``*.yml``) are read in name order and their ``policies`` lists are
concatenated; exactly one file declares the ``default``. Every problem is reported
with file, line and column, all at once, never only the first.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from signoff.adapters.yaml_positions import Located, load_located, validate_located
from signoff.domain.actions import canonical_json, sha256_hex
from signoff.domain.durations import parse_duration
from signoff.domain.errors import ErrorList, PolicyError
from signoff.domain.identity import Directory
from signoff.domain.policy import (
    CEL_FUNCTIONS,
    CEL_NAMESPACES,
    CEL_VARIABLES,
    Condition,
    GrantRule,
    Outcome,
    Policy,
    PolicySet,
    RequestRules,
    Stage,
    cel,
)
from signoff.domain.quorum import first_unstaffable

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$"
StrOrList = str | list[str]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ApproversDoc(_Strict):
    users: list[str] = []
    groups: list[str] = []


class EscalationDoc(_Strict):
    users: list[str] = []
    groups: list[str] = []
    timeout: str | None = None


class StageDoc(_Strict):
    name: str | None = None
    approvers: ApproversDoc
    quorum: Annotated[int, Field(ge=1, le=100)] = 1
    timeout: str | None = None
    reminders: Annotated[list[str], Field(max_length=10)] = []
    escalate_to: EscalationDoc | None = None


class ReviewDoc(_Strict):
    stages: Annotated[list[StageDoc], Field(min_length=1, max_length=10)]
    on_timeout: Literal["timed_out", "deny"] = "timed_out"


class GrantDoc(_Strict):
    ttl: str = "15m"
    uses: Annotated[int, Field(ge=1, le=1000)] = 1
    read_only: bool = False
    executors: ApproversDoc = ApproversDoc()  # who besides the requester may execute
    # the enforcement points of the target: services that redeem the grant when the
    # requester uses it (a deploy tool, a proxy), besides the requester and executors
    redeemers: ApproversDoc = ApproversDoc()


class RequestDoc(_Strict):
    reason_required: bool = False
    ticket_pattern: str | None = None


class MatchDoc(_Strict):
    type: StrOrList | None = None
    target: StrOrList | None = None
    condition: str | None = None


_CHANNEL = re.compile(
    r"^(log|email|slack:[#A-Za-z0-9_.-]+|(webhook|teams|apprise):[A-Za-z0-9_.-]+)$"
)


def _channel_name(value: str) -> str:
    if not _CHANNEL.match(value):
        raise ValueError(
            f"unknown channel {value!r}: use log, email, slack:#channel, slack:dm, "
            "teams:NAME, teams:dm, apprise:NAME or webhook:NAME"
        )
    return value


ChannelName = Annotated[str, AfterValidator(_channel_name)]


class DefaultDoc(_Strict):
    outcome: Literal["allow", "deny", "review"]
    notify: list[ChannelName] = []
    notify_mode: Literal["immediate", "digest"] = "immediate"
    every: str | None = None  # digest period
    review: ReviewDoc | None = None
    grant: GrantDoc = GrantDoc()
    request: RequestDoc = RequestDoc()
    # who may see its requests besides the requester, approvers, executors and admins
    visible_to: ApproversDoc = ApproversDoc()


class PolicyDoc(DefaultDoc):
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    description: str = ""
    match: MatchDoc = MatchDoc()


class FileDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")
    default: dict[str, Any] | None = None
    policies: list[dict[str, Any]] = []


_CEL_POS = re.compile(r"<input>:(\d+):(\d+)")


def _as_tuple(value: StrOrList | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


class _Builder:
    def __init__(self, directory: Directory | None, errors: ErrorList) -> None:
        self.directory = directory
        self.errors = errors
        self.names: dict[str, tuple[str, int]] = {}

    def err(self, doc: Located, path: tuple[str | int, ...], message: str) -> None:
        line, col = doc.where(path)
        self.errors.add(doc.file, line, col, message)

    def duration(self, doc: Located, path: tuple[str | int, ...], text: str) -> Any:
        try:
            return parse_duration(text)
        except ValueError as exc:
            self.err(doc, path, str(exc))
            return None

    def condition(self, doc: Located, path: tuple[str | int, ...], source: str) -> Any:
        try:
            program = cel.compile(source)
        except Exception as exc:  # the binding raises ValueError with a rendered message
            text = str(exc)
            found = _CEL_POS.search(text)
            line, col = doc.where(path)
            if found:
                cel_line, cel_col = int(found.group(1)), int(found.group(2))
                quoted = doc.styles.get(path) in ("'", '"')
                if cel_line == 1:
                    col = col + (1 if quoted else 0) + cel_col - 1
                else:
                    line, col = line + cel_line - 1, cel_col
            first = text.split("\n")[0]
            detail = first.split(": ERROR: ")[-1] if ": ERROR: " in first else first
            detail = _CEL_POS.sub("", detail).lstrip(": ")
            self.errors.add(doc.file, line, col, f"CEL syntax error: {detail}")
            return None
        unknown = [
            v
            for v in program.variables()
            if v not in CEL_VARIABLES
            and v not in CEL_NAMESPACES
            and not re.search(
                r"\.\s*(all|exists|exists_one|map|filter)\s*\(\s*" + re.escape(v) + r"\s*,",
                source,
            )
        ]
        unknown_fns = [
            f
            for f in program.functions()
            if f[:1].isalpha() and f not in CEL_FUNCTIONS and f.split(".")[-1] not in CEL_FUNCTIONS
        ]
        if unknown_fns:
            self.err(
                doc,
                path,
                f"CEL condition calls unknown function(s) {', '.join(map(repr, unknown_fns))}",
            )
            return None
        if unknown:
            self.err(
                doc,
                path,
                f"CEL condition uses unknown variable(s) {', '.join(map(repr, unknown))}; "
                f"available: {', '.join(sorted(CEL_VARIABLES))}",
            )
            return None
        return Condition(source, program)

    def check_names(
        self, doc: Located, path: tuple[str | int, ...], users: list[str], groups: list[str]
    ) -> None:
        if self.directory is None:
            return
        for j, u in enumerate(users):
            if u not in self.directory.users:
                self.err(doc, (*path, "users", j), f"unknown user {u!r}")
        for j, g in enumerate(groups):
            if g not in self.directory.groups:
                self.err(doc, (*path, "groups", j), f"unknown group {g!r}")

    def eligible(self, approvers: ApproversDoc, escalation: EscalationDoc | None) -> frozenset[str]:
        """The known people a stage may ask, its escalation included."""
        assert self.directory is not None
        d = self.directory
        users = [*approvers.users, *(escalation.users if escalation else [])]
        groups = [*approvers.groups, *(escalation.groups if escalation else [])]
        return d.resolve([u for u in users if u in d.users], [g for g in groups if g in d.groups])

    def stages(
        self, doc: Located, path: tuple[str | int, ...], outcome: str, review: ReviewDoc | None
    ) -> tuple[Stage, ...]:
        if outcome == "review" and review is None:
            self.err(doc, path, "outcome 'review' needs a 'review' with at least one stage")
            return ()
        if outcome != "review" and review is not None:
            self.err(doc, (*path, "review"), f"outcome {outcome!r} takes no 'review'")
            return ()
        if review is None:
            return ()
        out = []
        staffed: list[tuple[frozenset[str], int]] = []
        reported: set[int] = set()
        for i, s in enumerate(review.stages):
            spath = (*path, "review", "stages", i)
            if not s.approvers.users and not s.approvers.groups:
                self.err(doc, (*spath, "approvers"), "a stage needs at least one user or group")
            if self.directory is not None:
                for j, u in enumerate(s.approvers.users):
                    if u not in self.directory.users:
                        self.err(doc, (*spath, "approvers", "users", j), f"unknown user {u!r}")
                for j, g in enumerate(s.approvers.groups):
                    if g not in self.directory.groups:
                        self.err(doc, (*spath, "approvers", "groups", j), f"unknown group {g!r}")
                esc_doc = s.escalate_to
                staffed.append((self.eligible(s.approvers, esc_doc), s.quorum))
                short = first_unstaffable(staffed)
                if short == i and i not in reported:
                    reported.add(i)
                    people = ", ".join(sorted(staffed[i][0])) or "nobody"
                    earlier = " who have not counted in an earlier stage" if i else ""
                    self.err(
                        doc,
                        (*spath, "quorum"),
                        f"quorum {s.quorum} cannot be met: this stage needs {s.quorum} "
                        f"distinct approvers{earlier}, and its eligible people (escalation "
                        f"counted) are: {people}",
                    )
            timeout = self.duration(doc, (*spath, "timeout"), s.timeout) if s.timeout else None
            reminders = tuple(
                self.duration(doc, (*spath, "reminders", j), r) for j, r in enumerate(s.reminders)
            )
            esc = s.escalate_to
            esc_timeout = None
            if esc is not None:
                epath = (*spath, "escalate_to")
                if not esc.users and not esc.groups:
                    self.err(doc, epath, "escalate_to needs at least one user or group")
                if s.timeout is None:
                    self.err(doc, epath, "escalate_to needs the stage to have a timeout")
                self.check_names(doc, epath, esc.users, esc.groups)
                if esc.timeout:
                    esc_timeout = self.duration(doc, (*epath, "timeout"), esc.timeout)
            if reminders and s.timeout is None:
                self.err(doc, (*spath, "reminders"), "reminders need the stage to have a timeout")
            out.append(
                Stage(
                    name=s.name or f"stage-{i + 1}",
                    users=tuple(s.approvers.users),
                    groups=tuple(s.approvers.groups),
                    quorum=s.quorum,
                    timeout=timeout,
                    reminders=tuple(r for r in reminders if r is not None),
                    escalate_users=tuple(esc.users) if esc else (),
                    escalate_groups=tuple(esc.groups) if esc else (),
                    escalation_timeout=esc_timeout,
                )
            )
        return tuple(out)

    def policy(
        self, doc: Located, path: tuple[str | int, ...], d: DefaultDoc, name: str
    ) -> Policy | None:
        before = len(self.errors.problems)
        stages = self.stages(doc, path, d.outcome, d.review)
        ttl = self.duration(doc, (*path, "grant", "ttl"), d.grant.ttl)
        ex = d.grant.executors
        self.check_names(doc, (*path, "grant", "executors"), ex.users, ex.groups)
        rd = d.grant.redeemers
        self.check_names(doc, (*path, "grant", "redeemers"), rd.users, rd.groups)
        vt = d.visible_to
        self.check_names(doc, (*path, "visible_to"), vt.users, vt.groups)
        digest_every = None
        if d.notify_mode == "digest":
            if d.every is None:
                self.err(doc, (*path, "notify_mode"), "notify_mode: digest needs `every: 30m`")
            else:
                digest_every = self.duration(doc, (*path, "every"), d.every)
        elif d.every is not None:
            self.err(doc, (*path, "every"), "`every` applies only with notify_mode: digest")
        if d.request.ticket_pattern is not None:
            try:
                re.compile(d.request.ticket_pattern)
            except re.error as exc:
                self.err(
                    doc, (*path, "request", "ticket_pattern"), f"invalid ticket_pattern: {exc}"
                )
        match = d.match if isinstance(d, PolicyDoc) else MatchDoc()
        condition = (
            self.condition(doc, (*path, "match", "condition"), match.condition)
            if match.condition
            else None
        )
        if len(self.errors.problems) != before:
            return None
        line, _ = doc.where(path)
        return Policy(
            name=name,
            outcome=Outcome(d.outcome),
            types=_as_tuple(match.type),
            targets=_as_tuple(match.target),
            condition=condition,
            stages=stages,
            on_timeout=d.review.on_timeout if d.review is not None else "timed_out",
            notify=tuple(d.notify),
            digest_every=digest_every,
            grant=GrantRule(
                ttl=ttl,
                uses=d.grant.uses,
                read_only=d.grant.read_only,
                executor_users=tuple(ex.users),
                executor_groups=tuple(ex.groups),
                redeemer_users=tuple(rd.users),
                redeemer_groups=tuple(rd.groups),
            ),
            rules=RequestRules(d.request.reason_required, d.request.ticket_pattern),
            viewer_users=tuple(vt.users),
            viewer_groups=tuple(vt.groups),
            description=d.description if isinstance(d, PolicyDoc) else "default outcome",
            file=doc.file,
            line=line,
        )


def load_policy_set(folder: Path | str, directory: Directory | None) -> PolicySet:
    """Load and check every policy file in a folder; raise PolicyError with all problems."""
    root = Path(folder)
    errors = ErrorList()
    if not root.is_dir():
        errors.add(str(root), 1, 1, "policy folder does not exist")
        raise PolicyError(errors.problems)
    files = sorted(p for p in root.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    if not files:
        errors.add(str(root), 1, 1, "no policy files (*.yaml) in this folder")
        raise PolicyError(errors.problems)
    builder = _Builder(directory, errors)
    policies: list[Policy] = []
    default: Policy | None = None
    default_where: str | None = None
    hashed: list[list[str]] = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            errors.add(str(path), 1, 1, "file is not valid UTF-8")
            continue
        hashed.append([path.name, text])
        doc = load_located(str(path), text, errors)
        if doc is None:
            continue
        if not isinstance(doc.data, dict):
            errors.add(
                str(path), 1, 1, "a policy file is a mapping with 'policies' and/or 'default'"
            )
            continue
        top = validate_located(FileDoc, doc, errors)
        if top is None:
            continue
        if top.default is not None:
            if default_where is not None:
                builder.err(doc, ("default",), f"a default is already declared in {default_where}")
            else:
                dd = validate_located(DefaultDoc, doc, errors, ("default",))
                default_where = f"{path}:{doc.where(('default',), key=True)[0]}"
                if dd is not None:
                    default = builder.policy(doc, ("default",), dd, "default")
        for i, _ in enumerate(top.policies):
            pd = validate_located(PolicyDoc, doc, errors, ("policies", i))
            if pd is None:
                continue
            if pd.name in builder.names or pd.name == "default":
                f, ln = builder.names.get(pd.name, (str(path), 0))
                builder.err(
                    doc,
                    ("policies", i, "name"),
                    f"policy name {pd.name!r} is already used" + (f" at {f}:{ln}" if ln else ""),
                )
                continue
            builder.names[pd.name] = (str(path), doc.where(("policies", i))[0])
            p = builder.policy(doc, ("policies", i), pd, pd.name)
            if p is not None:
                policies.append(p)
    if default_where is None and not any(
        pr.message.startswith("YAML error") for pr in errors.problems
    ):
        errors.add(
            str(files[0]),
            1,
            1,
            "no default outcome: declare 'default: {outcome: deny}' (or allow/review) in one file",
        )
    if errors.problems:
        raise PolicyError(errors.problems)
    assert default is not None
    digest = sha256_hex(canonical_json(hashed))
    return PolicySet(policies, default, digest)
