"""Policy-as-code: a folder of YAML files becomes a PolicySet, or a list of problems.

Files (``*.yaml``/``*.yml``) are read in name order and their ``policies`` lists are
concatenated; exactly one file declares the ``default``. Every problem is reported
with file, line and column, all at once, never only the first, sorted by file and
position.

One run finds them all: each policy (and the default) is validated on its own, and
when part of it is wrong, that part is reported and set aside (``salvage_located``)
while the rest still goes through the checks that need more than a schema (CEL, names
in the directory, durations, quorums). A check that would read a part set aside is
skipped, so a mistake is reported once, not again through its consequences.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from signoff.adapters.yaml_positions import (
    Located,
    Salvaged,
    closest,
    did_you_mean,
    load_located,
    salvage_located,
)
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
    # a vote on this stage counts only with a fresh passkey assertion bound to it
    approve_with: Literal["passkey"] | None = None


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


_CHANNEL_KINDS = ("log", "email", "slack", "teams", "apprise", "webhook")


def _channel_name(value: str) -> str:
    if not _CHANNEL.match(value):
        kind, colon, rest = value.partition(":")
        close = closest(kind, _CHANNEL_KINDS)
        guess = f"{close}{colon}{rest}" if close else ""
        hint = f" (did you mean {guess!r}?)" if guess and _CHANNEL.match(guess) else ""
        raise ValueError(
            f"unknown channel {value!r}{hint}: use log, email, slack:#channel, slack:dm, "
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
    # each item is validated as a PolicyDoc on its own (so one that is not even a
    # mapping keeps its index, and the next policies theirs)
    policies: list[Any] = []
    # test cases (`signoff policy test`, adapters/policy_test_files.py): the server and
    # `policy check` load the same set whatever they say, so they are not read here
    tests: Any = None


_CEL_POS = re.compile(r"<input>:(\d+):(\d+)")
_CEL_CALLS = frozenset(n for n in CEL_FUNCTIONS if "." not in n)

# What stands in for a required value that is wrong or missing, so that the rest of its
# policy is still checked; the checks that would read it are skipped.
_STAND_INS = {"name": "unnamed", "outcome": "deny"}


_HISTORY_CALL = re.compile(r"\bhistory\s*\.\s*(approved|executed|denied)\s*\(([^()]*)\)")
_STRING = re.compile(r"""\s*(?:"([^"\\]*)"|'([^'\\]*)')\s*""")


def _history_call_problems(source: str) -> list[tuple[str, int]]:
    """Calls of the requester's record checked when the policy set loads, as far as
    their arguments are written out: three strings, the third a duration."""
    found = []
    for call in _HISTORY_CALL.finditer(source):
        name, inside = call.group(1), call.group(2)
        usage = (
            f"history.{name}(TYPE, TARGET_GLOB, WINDOW), e.g. "
            f'history.{name}("deploy", "staging/*", "90d"),'
        )
        args = _split_args(inside)
        if len(args) != 3:
            found.append((f"{usage} takes 3 arguments, not {len(args)}", call.start()))
            continue
        literals = [_STRING.fullmatch(a) for a in args]
        if any(a.strip()[:1].isdigit() or a.strip() in ("true", "false") for a in args):
            found.append((f"{usage} takes 3 strings", call.start()))
            continue
        window = literals[2]
        if window is not None:
            try:
                parse_duration(window.group(1) if window.group(1) is not None else window.group(2))
            except ValueError as exc:
                found.append((f"history.{name}: {exc}", call.start()))
    return found


def _split_args(inside: str) -> list[str]:
    """Top-level comma-separated arguments (strings may hold commas)."""
    if not inside.strip():
        return []
    args, current, quote = [], "", ""
    for c in inside:
        if quote:
            current += c
            if c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
            current += c
        elif c == ",":
            args.append(current)
            current = ""
        else:
            current += c
    args.append(current)
    return args


def _as_tuple(value: StrOrList | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _offset(source: str, line: int, column: int) -> int | None:
    """The index in ``source`` of a 1-based line and column (as CEL reports them)."""
    start = 0
    for _ in range(line - 1):
        start = source.find("\n", start) + 1
        if start == 0:
            return None
    return start + column - 1


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _stage_label(i: int, stage: StageDoc) -> str:
    return f"stage {i + 1}" + (f" ({stage.name})" if stage.name else "")


class _Builder:
    def __init__(self, directory: Directory | None, errors: ErrorList) -> None:
        self.directory = directory
        self.errors = errors
        self.names: dict[str, tuple[str, int]] = {}

    def err(
        self, doc: Located, path: tuple[str | int, ...], message: str, at: int | None = None
    ) -> None:
        """A problem at a path; with ``at``, at that character of the path's string."""
        line, col = doc.where(path) if at is None else doc.where_in(path, at)
        self.errors.add(doc.file, line, col, message)

    def duration(self, doc: Located, path: tuple[str | int, ...], text: str) -> Any:
        try:
            return parse_duration(text)
        except ValueError as exc:
            self.err(doc, path, str(exc))
            return None

    def condition(self, doc: Located, path: tuple[str | int, ...], source: str) -> Any:
        """The compiled condition, or None after reporting every problem in it."""
        try:
            program = cel.compile(source)
        except Exception as exc:  # the binding raises ValueError with a rendered message
            text = str(exc)
            found = _CEL_POS.search(text)
            at = _offset(source, int(found.group(1)), int(found.group(2))) if found else None
            first = text.split("\n")[0]
            detail = first.split(": ERROR: ")[-1] if ": ERROR: " in first else first
            detail = _CEL_POS.sub("", detail).lstrip(": ").removeprefix("Syntax error: ")
            # not the parser's list of every token that could have come next
            unexpected = re.match(r"(?:mismatched|extraneous) input '(.*)' expecting ", detail)
            if unexpected:
                token = unexpected.group(1)
                detail = (
                    "the expression ends too soon" if token == "<EOF>" else f"unexpected '{token}'"
                )
            self.err(doc, path, f"CEL syntax error: {detail}", at)
            return None
        ok = True
        for v in program.variables():
            if (
                v in CEL_VARIABLES
                or v in CEL_NAMESPACES
                or re.search(
                    r"\.\s*(all|exists|exists_one|map|filter)\s*\(\s*" + re.escape(v) + r"\s*,",
                    source,
                )
            ):
                continue
            found_at = re.search(r"(?<![\w.])" + re.escape(v) + r"\b", source)
            hint = did_you_mean(v, CEL_VARIABLES) or (
                f"; available: {', '.join(sorted(CEL_VARIABLES))}"
            )
            self.err(
                doc,
                path,
                f"CEL condition uses unknown variable {v!r}{hint}",
                found_at.start() if found_at else None,
            )
            ok = False
        for f in program.functions():
            if not f[:1].isalpha() or f in CEL_FUNCTIONS or f.split(".")[-1] in CEL_FUNCTIONS:
                continue
            found_at = re.search(r"\b" + re.escape(f) + r"\s*\(", source)
            self.err(
                doc,
                path,
                f"CEL condition calls unknown function {f!r}{did_you_mean(f, _CEL_CALLS)}",
                found_at.start() if found_at else None,
            )
            ok = False
        for problem, offset in _history_call_problems(source):
            self.err(doc, path, problem, offset)
            ok = False
        return Condition(source, program) if ok else None

    def check_names(
        self, doc: Located, path: tuple[str | int, ...], users: list[str], groups: list[str]
    ) -> None:
        if self.directory is None:
            return
        known_users, known_groups = self.directory.users, self.directory.groups
        for j, u in enumerate(users):
            if u not in known_users:
                hint = did_you_mean(u, known_users)
                self.err(doc, (*path, "users", j), f"unknown user {u!r}{hint}")
        for j, g in enumerate(groups):
            if g not in known_groups:
                hint = did_you_mean(g, known_groups)
                self.err(doc, (*path, "groups", j), f"unknown group {g!r}{hint}")

    def eligible(self, approvers: ApproversDoc, escalation: EscalationDoc | None) -> frozenset[str]:
        """The known people a stage may ask, its escalation included."""
        assert self.directory is not None
        d = self.directory
        users = [*approvers.users, *(escalation.users if escalation else [])]
        groups = [*approvers.groups, *(escalation.groups if escalation else [])]
        return d.resolve([u for u in users if u in d.users], [g for g in groups if g in d.groups])

    def stages(
        self,
        s: Salvaged[Any],
        path: tuple[str | int, ...],
        outcome: str,
        review: ReviewDoc | None,
    ) -> tuple[Stage, ...]:
        doc = s.doc
        if review is None:
            if outcome == "review" and not s.hurt(*path, "outcome") and not s.hurt(*path, "review"):
                self.err(doc, path, "outcome 'review' needs a 'review' with at least one stage")
            return ()
        if outcome != "review" and not s.hurt(*path, "outcome"):
            self.err(doc, (*path, "review"), f"outcome {outcome!r} takes no 'review'")
        out = []
        staffed: list[tuple[frozenset[str], int]] = []
        # whether the stages so far are whole, so their quorums can be checked
        staffing = self.directory is not None and (*path, "review", "stages") not in s.damaged
        for i, st in enumerate(review.stages):
            spath = (*path, "review", "stages", i)
            if (
                not st.approvers.users
                and not st.approvers.groups
                and not s.hurt(*spath, "approvers")
            ):
                self.err(doc, (*spath, "approvers"), "a stage needs at least one user or group")
            self.check_names(doc, (*spath, "approvers"), st.approvers.users, st.approvers.groups)
            esc = st.escalate_to
            # a stage with a part set aside (a misspelt escalate_to, say) may have more
            # people than it seems: the quorums are checked up to the stage before it
            staffing = staffing and not s.hurt(*spath)
            if staffing:
                staffed.append((self.eligible(st.approvers, esc), st.quorum))
                if first_unstaffable(staffed) == i:
                    self.err(doc, (*spath, "quorum"), self.unstaffable(review.stages, staffed, i))
                    # check the later stages as if this one got what it can
                    while staffed[i][1] > 0 and first_unstaffable(staffed) is not None:
                        staffed[i] = (staffed[i][0], staffed[i][1] - 1)
            timeout = self.duration(doc, (*spath, "timeout"), st.timeout) if st.timeout else None
            reminders = tuple(
                self.duration(doc, (*spath, "reminders", j), r) for j, r in enumerate(st.reminders)
            )
            no_timeout = st.timeout is None and not s.hurt(*spath, "timeout")
            esc_timeout = None
            if esc is not None:
                epath = (*spath, "escalate_to")
                if not esc.users and not esc.groups and not s.hurt(*epath):
                    self.err(doc, epath, "escalate_to needs at least one user or group")
                if no_timeout:
                    self.err(doc, epath, "escalate_to needs the stage to have a timeout")
                self.check_names(doc, epath, esc.users, esc.groups)
                if esc.timeout:
                    esc_timeout = self.duration(doc, (*epath, "timeout"), esc.timeout)
            if reminders and no_timeout:
                self.err(doc, (*spath, "reminders"), "reminders need the stage to have a timeout")
            out.append(
                Stage(
                    name=st.name or f"stage-{i + 1}",
                    users=tuple(st.approvers.users),
                    groups=tuple(st.approvers.groups),
                    quorum=st.quorum,
                    timeout=timeout,
                    reminders=tuple(r for r in reminders if r is not None),
                    escalate_users=tuple(esc.users) if esc else (),
                    escalate_groups=tuple(esc.groups) if esc else (),
                    escalation_timeout=esc_timeout,
                    approve_with=st.approve_with,
                )
            )
        return tuple(out)

    @staticmethod
    def unstaffable(
        stages: list[StageDoc], staffed: list[tuple[frozenset[str], int]], i: int
    ) -> str:
        """Why stage ``i`` cannot reach its quorum, naming who can approve it."""
        stage, eligible = stages[i], staffed[i][0]
        needs = f"{_stage_label(i, stage)} needs {_count(stage.quorum, 'approval', 'approvals')}"
        people = ", ".join(sorted(eligible))
        counted = "escalate_to counted" if stage.escalate_to is not None else ""
        earlier = [j for j in range(i) if staffed[j][0] & eligible and staffed[j][1]]
        if len(eligible) < stage.quorum or not earlier:
            if not eligible:
                who = "nobody can approve"
            else:
                who = f"only {_count(len(eligible), 'person', 'people')} can approve: {people}"
            return f"{needs} but {who}" + (f" ({counted})" if counted else "")
        taken = sum(staffed[j][1] for j in earlier)
        labels = [_stage_label(j, stages[j]) for j in earlier]
        named = (
            labels[0] + " has its"
            if len(labels) == 1
            else ", ".join(labels[:-1]) + f" and {labels[-1]} have their"
        )
        return (
            f"{needs} but those who can approve ({people}{'; ' + counted if counted else ''}) "
            f"cannot give {'it' if stage.quorum == 1 else 'them'} once {named} "
            f"{_count(taken, 'approval', 'approvals')}: each person counts once per request"
        )

    def policy(
        self, s: Salvaged[Any], d: DefaultDoc, path: tuple[str | int, ...], name: str
    ) -> Policy | None:
        """Check a policy or the default (``d``, salvaged as ``s``); the Policy when it
        is whole and right."""
        doc = s.doc
        before = len(self.errors.problems)
        stages = self.stages(s, path, d.outcome, d.review)
        ttl = self.duration(doc, (*path, "grant", "ttl"), d.grant.ttl)
        ex = d.grant.executors
        self.check_names(doc, (*path, "grant", "executors"), ex.users, ex.groups)
        rd = d.grant.redeemers
        self.check_names(doc, (*path, "grant", "redeemers"), rd.users, rd.groups)
        vt = d.visible_to
        self.check_names(doc, (*path, "visible_to"), vt.users, vt.groups)
        digest_every = None
        if d.notify_mode == "digest":
            if d.every is not None:
                digest_every = self.duration(doc, (*path, "every"), d.every)
            elif not s.hurt(*path, "every"):
                self.err(doc, (*path, "notify_mode"), "notify_mode: digest needs `every: 30m`")
        elif d.every is not None and not s.hurt(*path, "notify_mode"):
            self.err(doc, (*path, "every"), "`every` applies only with notify_mode: digest")
        if d.request.ticket_pattern is not None:
            try:
                re.compile(d.request.ticket_pattern)
            except re.error as exc:
                self.err(
                    doc,
                    (*path, "request", "ticket_pattern"),
                    f"invalid ticket_pattern: {exc}",
                    exc.pos,
                )
        match = d.match if isinstance(d, PolicyDoc) else MatchDoc()
        condition = (
            self.condition(doc, (*path, "match", "condition"), match.condition)
            if match.condition
            else None
        )
        if s.damaged or len(self.errors.problems) != before:
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


def policy_file_paths(root: Path) -> list[Path]:
    """The files of a policy folder, in the order they are read."""
    return sorted(p for p in root.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


MAX_FILE_BYTES = 2_000_000  # one policy file (the bundled ones are a few kilobytes)


def read_policy_file(path: Path, errors: ErrorList) -> str | None:
    """A policy file's text, or None after recording why it cannot be read."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            errors.add(str(path), 1, 1, f"file is larger than {MAX_FILE_BYTES} bytes")
            return None
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        errors.add(str(path), 1, 1, "file is not valid UTF-8")
    except OSError as exc:
        errors.add(str(path), 1, 1, f"cannot read the file: {exc.strerror or exc}")
    return None


def load_policy_set(folder: Path | str, directory: Directory | None) -> PolicySet:
    """Load and check every policy file in a folder; raise PolicyError with all problems,
    in file order and, within a file, by position."""
    root = Path(folder)
    errors = ErrorList()
    if not root.is_dir():
        errors.add(str(root), 1, 1, "policy folder does not exist")
        raise PolicyError(errors.problems)
    files = policy_file_paths(root)
    if not files:
        errors.add(str(root), 1, 1, "no policy files (*.yaml) in this folder")
        raise PolicyError(errors.problems)
    builder = _Builder(directory, errors)
    policies: list[Policy] = []
    default: Policy | None = None
    default_where: str | None = None
    hashed: list[list[str]] = []
    for path in files:
        text = read_policy_file(path, errors)
        if text is None:
            continue
        hashed.append([path.name, text])
        parsed = load_located(str(path), text, errors)
        if parsed is None:
            continue
        if not isinstance(parsed.data, dict):
            errors.add(
                str(path),
                1,
                1,
                "a policy file is a mapping with 'policies', 'default' and/or 'tests'",
            )
            continue
        top = salvage_located(FileDoc, parsed, errors)
        if top.model is None:
            continue
        doc = top.doc  # without what was wrong at the top (positions unchanged)
        if top.model.default is not None or top.hurt("default"):  # declared, if wrong
            first = default_where is None
            if first:
                default_where = f"{path}:{parsed.where(('default',), key=True)[0]}"
            else:
                builder.err(
                    parsed, ("default",), f"a default is already declared in {default_where}"
                )
            if top.model.default is not None:  # checked even when it is one too many
                dd = salvage_located(DefaultDoc, doc, errors, ("default",), _STAND_INS)
                if dd.model is not None:
                    built = builder.policy(dd, dd.model, ("default",), "default")
                    default = built if first else default
        for i in range(len(top.model.policies)):
            pd = salvage_located(PolicyDoc, doc, errors, ("policies", i), _STAND_INS)
            if pd.model is None:
                continue
            name = pd.model.name
            duplicate = False
            if not pd.hurt("policies", i, "name"):
                if name in builder.names or name == "default":
                    f, ln = builder.names.get(name, (str(path), 0))
                    builder.err(
                        pd.doc,
                        ("policies", i, "name"),
                        f"policy name {name!r} is already used" + (f" at {f}:{ln}" if ln else ""),
                    )
                    duplicate = True
                else:
                    builder.names[name] = (str(path), pd.doc.where(("policies", i))[0])
            p = builder.policy(pd, pd.model, ("policies", i), name)
            if p is not None and not duplicate:
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
        order = {str(p): k for k, p in enumerate(files)}
        raise PolicyError(
            sorted(errors.problems, key=lambda p: (order.get(p.file, -1), p.line, p.column))
        )
    assert default is not None
    digest = sha256_hex(canonical_json(hashed))
    return PolicySet(policies, default, digest)


SENT_NAME = re.compile(r"[^./\\\x00][^/\\\x00]{0,95}\.ya?ml")
MAX_SENT_FILES = 500


def load_sent_policy_set(files: Mapping[str, str], directory: Directory | None) -> PolicySet:
    """A policy set sent as ``{file name: text}`` (a candidate to replay), loaded exactly
    as a folder is; problems name the files as they were sent."""
    import tempfile

    errors = ErrorList()
    if not files:
        errors.add("(sent)", 1, 1, "no policy files were sent")
    if len(files) > MAX_SENT_FILES:
        errors.add("(sent)", 1, 1, f"more than {MAX_SENT_FILES} policy files")
    for name in files:
        if not SENT_NAME.fullmatch(name):
            errors.add(
                name[:100],
                1,
                1,
                "a policy file is named NAME.yaml or NAME.yml (no folder, not hidden, "
                "at most 100 characters)",
            )
    if errors.problems:
        raise PolicyError(errors.problems)
    with tempfile.TemporaryDirectory(prefix="signoff-candidate-") as folder:
        for name, text in files.items():
            (Path(folder) / name).write_text(text, encoding="utf-8")
        try:
            return load_policy_set(folder, directory)
        except PolicyError as exc:
            prefix = folder.rstrip("/") + "/"
            raise PolicyError(
                [replace(p, file=p.file.removeprefix(prefix)) for p in exc.problems]
            ) from None
