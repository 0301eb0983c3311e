"""Commands that work on the local installation: they read the server settings, build the
application (migrating the database first) or load the policy files, and never talk HTTP.

``serve``, ``worker``, ``db upgrade``, ``token create``, ``user logout``, ``policy check``,
``policy test``, ``policy explain``, ``outbox list``, ``audit verify``, ``audit export``;
``main.py`` registers them. Everything heavy is imported inside the command that needs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from signoff.entrypoints.cli.options import JsonOpt, LabelOpt, ParamOpt, RiskOpt
from signoff.entrypoints.cli.output import (
    EXIT_DENIED,
    err,
    fail,
    guarded,
    out,
    parse_pairs,
    say,
)

if TYPE_CHECKING:
    from signoff.bootstrap import App
    from signoff.config import Settings


def _settings() -> Settings:
    from signoff.config import Settings

    return Settings()


def _check_free(host: str, port: int) -> None:
    """Stop now, saying what to do, when the address cannot be listened on (another server
    is there), rather than after start-up with uvicorn's log line and exit code 3."""
    import errno
    import socket

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        socket.create_server((host, port), family=family).close()
    except OSError as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else None
        reason = reason or (os.strerror(exc.errno) if exc.errno else str(exc))
        advice = ""
        if exc.errno == errno.EADDRINUSE:
            advice = " (another server?); choose a port: --port, SIGNOFF_PORT, make run PORT=8100"
        fail(f"cannot listen on {host}:{port}: {reason[:1].lower()}{reason[1:]}{advice}")


def serve(
    host: Annotated[
        str | None,
        typer.Option(metavar="ADDRESS", help="Bind address (default: SIGNOFF_HOST, 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None, typer.Option(metavar="PORT", help="Port (default: SIGNOFF_PORT, 8000).")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            metavar="N",
            min=1,
            max=64,
            help="Server processes sharing the port, each with its own deadline worker "
            "(on SQLite their writes take turns; the rest runs side by side).",
        ),
    ] = 1,
) -> None:
    """Run the server.

    It migrates the database first, and prints an admin API token at its first start."""
    import gc

    settings = _settings()
    if (
        port
        and "SIGNOFF_PUBLIC_URL" not in os.environ
        and settings.public_url == (f"http://127.0.0.1:{settings.port}")
    ):
        # links in messages (and passkeys' origin) follow --port unless the URL is set
        settings = settings.model_copy(update={"public_url": f"http://127.0.0.1:{port}"})
    _check_free(host or settings.host, port or settings.port)
    migrating = migrate_apart(settings.effective_database_url())

    import uvicorn

    from signoff.bootstrap import build
    from signoff.entrypoints.api.app import create_app
    from signoff.services import views
    from signoff.services.auth import create_token

    if migrating is not None and migrating.wait() != 0:
        raise typer.Exit(migrating.returncode)  # it said why, on stderr
    signoff_app = guarded(lambda: build(settings))
    admins = [u.name for u in signoff_app.directory.users.values() if u.admin]
    if admins and views.never_signed_in(signoff_app.services, admins):
        token = create_token(signoff_app.services, admins[0], "first start")
        err.print(
            f"Admin API token for {admins[0]} (shown once, keep it safe):\n{token}",
            markup=False,
            highlight=False,
        )
        err.print(
            f"Sign in to the web app as {admins[0]} (one-time link, "
            f"{settings.signin_link_ttl}; later: signoff signin-link --user NAME):\n"
            f"{signoff_app.signin_link(admins[0])}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if workers > 1:
        # each process builds its own application (entrypoints/api/processes.py) from
        # the settings this one used
        signoff_app.close()
        os.environ["SIGNOFF_PUBLIC_URL"] = settings.public_url
        from signoff.entrypoints.api.processes import serve_processes

        status = serve_processes(workers, host or settings.host, port or settings.port)
        if status:
            raise typer.Exit(status)
        return
    api = create_app(signoff_app)
    # What was built to serve lives as long as the server: the garbage collector need
    # not walk it on every full collection (a page's p99 halved: docs/benchmarks.md).
    gc.freeze()
    from signoff.entrypoints.api.processes import UVICORN, running

    with running(signoff_app):
        uvicorn.run(api, host=host or settings.host, port=port or settings.port, **UVICORN)


def migrate_apart(database_url: str) -> subprocess.Popen[bytes] | None:
    """Start the migrations in a child process if the database is behind the newest
    migration (None if it is current, or cannot be read: the server then says why).

    A server that migrated in its own process would hold Alembic, Mako and every migration
    script (about 15 MiB) for its whole life; the child migrates while this process loads
    the web framework, and the server finds the database current."""
    from sqlalchemy import exc as sa_exc

    from signoff.adapters.db.engine import create_db_engine, is_current

    engine = create_db_engine(database_url, 1)
    try:
        if is_current(engine):
            return None
    except sa_exc.DBAPIError:
        return None
    finally:
        engine.dispose()
    return subprocess.Popen([sys.executable, "-m", "signoff.adapters.db.engine", database_url])


def worker(
    once: Annotated[bool, typer.Option("--once", help="One sweep, then exit.")] = False,
) -> None:
    """Run only the deadline worker.

    Reminders, escalations, timeouts and grant expiry, for deployments that separate
    web and background roles."""
    import signal

    from signoff.bootstrap import build
    from signoff.services.scheduler import sweep

    settings = _settings()
    signoff_app = guarded(lambda: build(settings))
    try:
        if once:
            fired = sweep(signoff_app.services, settings.worker_batch)
            sent = signoff_app.dispatch(settings.worker_batch)
            out.print(
                f"fired {fired} event(s); notifications: {sent.delivered} delivered, "
                f"{sent.retried} to retry, {sent.dead} dead-lettered"
            )
            return
        runner = signoff_app.worker()
        signal.signal(signal.SIGTERM, lambda *_: runner.stop())
        err.print("deadline worker running", markup=False)
        runner.run()
    finally:
        signoff_app.close()


def db_upgrade() -> None:
    """Apply Alembic migrations to the configured database."""
    from sqlalchemy import exc as sa_exc

    from signoff.adapters.db.engine import create_db_engine, current_revision, upgrade
    from signoff.bootstrap import database_unavailable

    settings = _settings()
    engine = create_db_engine(settings.effective_database_url(), 1)
    try:
        upgrade(engine)
        out.print(f"database at revision {current_revision(engine)}")
    except sa_exc.DBAPIError as exc:
        fail(database_unavailable(engine, exc).detail)
    except Exception as exc:
        fail(f"migration failed: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    finally:
        engine.dispose()


def signin_link(
    user: Annotated[str, typer.Option(metavar="NAME", help="The person the link signs in.")],
    next_path: Annotated[
        str,
        typer.Option(
            "--next", metavar="PATH", help="A page of this site to open after, e.g. /requests/ID."
        ),
    ] = "",
) -> None:
    """Print a one-time web sign-in link for a person (runs with the server's settings,
    like token create: whoever can run it administers the server)."""
    signoff_app = _local_app()
    try:
        link = guarded(lambda: signoff_app.signin_link(user, next_path))
    finally:
        signoff_app.close()
    out.print(link, markup=False, highlight=False, soft_wrap=True)


def token_create(
    user: Annotated[str, typer.Option(metavar="NAME", help="The user the token acts as.")],
    label: Annotated[str, typer.Option(metavar="TEXT", help="What the token is for.")] = "",
) -> None:
    """Create an API token for a user; it is printed once and stored hashed."""
    from signoff.services.auth import create_token

    signoff_app = _local_app()
    try:
        token = guarded(lambda: create_token(signoff_app.services, user, label))
    finally:
        signoff_app.close()
    out.print(token, markup=False, highlight=False)


def user_logout(
    user: Annotated[str, typer.Option(metavar="NAME", help="The person to sign out.")],
) -> None:
    """End every web session of a person and revoke all their API tokens (audited as
    user.signed_out; runs with the server's settings, like token create)."""
    from signoff.services.auth import sign_out_everywhere

    signoff_app = _local_app()
    try:
        ended = guarded(lambda: sign_out_everywhere(signoff_app.services, user))
    finally:
        signoff_app.close()
    sessions = f"{ended.sessions} session" + ("" if ended.sessions == 1 else "s")
    tokens = f"{len(ended.tokens)} API token" + ("" if len(ended.tokens) == 1 else "s")
    out.print(
        f"{user} is signed out everywhere: {sessions} ended, {tokens} revoked.",
        markup=False,
        highlight=False,
    )


FolderArg = Annotated[
    Path | None,
    typer.Argument(metavar="FOLDER", help="Policy folder (default: SIGNOFF_POLICIES_DIR)."),
]
UsersOpt = Annotated[
    Path | None,
    typer.Option(metavar="FILE", help="Users and groups (default: SIGNOFF_USERS_FILE)."),
]


def _policy_files(directory: Path | None, users: Path | None, doing: str) -> tuple[Path, Path]:
    """The policy folder and users file a command reads, saying on stderr when either is
    not one the caller named (the bundled examples, or the settings)."""
    from signoff.config import EXAMPLES

    settings = _settings()
    folder = directory or settings.policies_dir
    users_file = users or settings.users_file
    examples = _same_path(folder, EXAMPLES / "policies")
    if directory is None:
        what = (
            "the bundled example policies ({}); pass a folder to " + doing + " yours"
            if examples
            else "SIGNOFF_POLICIES_DIR ({})"
        )
        err.print(f"{doing}ing " + what.format(_shown(folder)), markup=False, highlight=False)
    if not examples and _same_path(users_file, EXAMPLES / "users.yaml"):
        err.print(
            f"users and groups from the bundled examples ({_shown(users_file)}); "
            "pass --users FILE or set SIGNOFF_USERS_FILE for yours",
            markup=False,
            highlight=False,
        )
    return folder, users_file


def policy_check(directory: FolderArg = None, users: UsersOpt = None) -> None:
    """Validate a policy folder (by default SIGNOFF_POLICIES_DIR, else the bundled
    examples); print every problem as file:line:column, in file order."""
    from signoff.adapters.directory_file import load_directory
    from signoff.adapters.policy_files import load_policy_set

    folder, users_file = _policy_files(directory, users, "check")

    def load() -> Any:
        return load_policy_set(folder, load_directory(users_file))

    ps = guarded(load)
    out.print(f"ok: {len(ps)} policies, default {ps.default.outcome.value}, digest {ps.digest}")


def policy_test(
    directory: FolderArg = None,
    users: UsersOpt = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="List the tests that pass too.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run the test cases written beside the policies (`tests:` in the folder's files):
    print each failing test as file:line and what differed, then PASS: n/n or FAIL: k/n.
    Exit 0 when all pass, 1 when some fail, 2 on a mistake in the policies or the tests."""
    from signoff.adapters.directory_file import load_directory
    from signoff.adapters.policy_files import load_policy_set
    from signoff.adapters.policy_test_files import load_policy_tests
    from signoff.domain.policy_tests import judge_all

    folder, users_file = _policy_files(directory, users, "test")

    def load() -> Any:
        people = load_directory(users_file)
        ps = load_policy_set(folder, people)
        return people, ps, load_policy_tests(folder, ps, people)

    people, ps, tests = guarded(load)
    if not tests:
        fail(
            f"no tests in {folder}: add a 'tests:' list to a policy file "
            "(docs/policies.md, Testing policies)"
        )
    verdicts = judge_all(ps, people, tests, datetime.now(UTC))
    failed = [v for v in verdicts if not v.passed]
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "passed": len(verdicts) - len(failed),
                    "failed": len(failed),
                    "total": len(verdicts),
                    "tests": [v.as_dict() for v in verdicts],
                }
            )
        )
    else:
        for v in verdicts:
            where = f"{v.test.file}:{v.test.line}: test {v.test.name!r}: "
            if not v.passed:
                say(where + "; ".join(v.differences))
            elif verbose:
                say(where + f"ok ({v.summary()})")
        if failed:
            say(f"FAIL: {len(failed)}/{len(verdicts)}")
        else:
            say(f"PASS: {len(verdicts)}/{len(verdicts)}")
    if failed:
        raise typer.Exit(EXIT_DENIED)


def _same_path(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def _shown(path: Path) -> str:
    """A path relative to the working directory when it is inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def policy_explain(
    action: Annotated[str, typer.Option("--action", "--type", metavar="TYPE", help="Action type.")],
    target: Annotated[str, typer.Option(metavar="TARGET", help="Action target.")],
    param: ParamOpt = None,
    as_user: Annotated[
        str | None,
        typer.Option("--as", metavar="NAME", help="Evaluate as this user (default: an admin)."),
    ] = None,
    ticket: Annotated[str | None, typer.Option(metavar="TICKET", help="Ticket.")] = None,
    label: LabelOpt = None,
    risk: RiskOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show which policy decides an action and why every earlier one did not."""
    from signoff.bootstrap import load_rules
    from signoff.domain.actions import Action
    from signoff.domain.policy import EvaluationInput

    settings = _settings()
    directory, ps = guarded(lambda: load_rules(settings))
    if as_user is None:
        admins = [u for u in directory.users.values() if u.admin]
        as_user = admins[0].name if admins else next(iter(directory.users))
    user = guarded(lambda: directory.user(as_user or ""))
    act = guarded(lambda: Action(action, target, dict(parse_pairs(param, "--param"))))
    context: dict[str, Any] = {"labels": parse_pairs(label, "--label")}
    if risk:
        context["risk"] = risk.value
    decision = ps.explain(EvaluationInput.of(act, user, datetime.now(UTC), context, ticket))
    data = decision.as_dict()
    if as_json:
        out.print_json(json.dumps({"as": user.name, **data}))
        return
    for miss in decision.misses:
        out.print(f"  skip  {miss.policy}: {miss.clause}: {miss.detail}", markup=False)
    where = f" ({decision.policy.file}:{decision.policy.line})" if decision.policy.file else ""
    out.print(
        f"{decision.outcome.value.upper()}  {decision.policy.name}{where}: {decision.reason}",
        markup=False,
    )
    if decision.error:
        out.print(f"  error: {decision.error}", markup=False)
    if ps.uses_history:
        say(
            "  (judged here, from the files: without the requester's record, as a newcomer: "
            "history.* count 0 and requester.first_seen is now; the server's "
            "POST /v1/policies/evaluate and the web app's Explain read the record)"
        )
    for i, s in enumerate(decision.policy.stages, 1):
        people = sorted(directory.resolve(s.users, s.groups) - {user.name})
        out.print(
            f"  stage {i} {s.name}: quorum {s.quorum} of {', '.join(people) or 'nobody'}",
            markup=False,
        )


def _local_app() -> App:
    from signoff.bootstrap import build

    return guarded(lambda: build(_settings()))


def outbox_list(
    dead: Annotated[bool, typer.Option("--dead", help="Only dead-lettered rows.")] = False,
    status: Annotated[
        str | None, typer.Option(metavar="STATUS", help="pending, delivered or dead.")
    ] = None,
    limit: Annotated[int, typer.Option(metavar="N", help="How many, newest first.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List outbox rows (local database)."""
    from signoff.services import views

    signoff_app = _local_app()
    try:
        rows = views.outbox_rows(signoff_app.services, "dead" if dead else status, limit)
        counts = views.outbox_counts(signoff_app.services)
    finally:
        signoff_app.close()
    if as_json:
        out.print_json(json.dumps(rows, default=str))
        return
    out.print(
        ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "the outbox is empty",
        markup=False,
    )
    for r in rows:
        out.print(
            f"#{r['id']} {r['status']} {r['topic']} {r['payload'].get('event')} "
            f"request {r['request_id']} attempts {r['attempts']}"
            + (f" error: {r['last_error']}" if r["last_error"] else ""),
            markup=False,
            highlight=False,
        )


def audit_verify(
    checkpoints: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Signed checkpoints (JSON lines) kept outside the database: finds a "
            "rewritten chain, a cut tail or a wiped log.",
        ),
    ] = None,
) -> None:
    """Check the audit log: the hash chain, every request's state against its history,
    and (with --checkpoints) the chain against checkpoints kept elsewhere."""
    from signoff.adapters.checkpoints import read_checkpoints
    from signoff.services.views import full_audit

    anchors = guarded(lambda: read_checkpoints(checkpoints)) if checkpoints else None
    signoff_app = _local_app()
    try:
        report = full_audit(signoff_app.services)
        anchored = signoff_app.check_checkpoints(anchors) if anchors is not None else []
    finally:
        signoff_app.close()
    problems = []
    if not report.chain.ok:
        problems.append(
            f"audit chain broken at event {report.chain.broken_at}: {report.chain.problem}"
        )
    problems += report.state.mismatches
    problems += anchored
    if not problems:
        against = f", {len(anchors)} checkpoint(s) agree" if anchors else ""
        out.print(
            f"ok: {report.chain.checked} events, chain intact; {report.state.checked} "
            f"requests agree with their history{against}"
        )
        return
    err.print(f"error: {problems[0]}", markup=False, highlight=False)
    for problem in problems[1:]:
        err.print(f"also: {problem}", markup=False, highlight=False)
    raise typer.Exit(EXIT_DENIED)


def audit_checkpoint() -> None:
    """Sign the audit chain's head now and write it to SIGNOFF_CHECKPOINTS."""
    signoff_app = _local_app()
    try:
        made = guarded(signoff_app.checkpoint)
    finally:
        signoff_app.close()
    if made is None:
        out.print("the audit log is empty: nothing to vouch for yet")
        return
    out.print(f"checkpoint: event {made.seq} {made.hash} at {made.at} (key {made.kid})")


def keys_list() -> None:
    """The signing keys the database knows (public), and which one signs now."""
    signoff_app = _local_app()
    try:
        active = signoff_app.keys.active_kid
        for key in signoff_app.keys.jwks()["keys"]:
            mark = "  (signs now)" if key["kid"] == active else ""
            out.print(f"{key['kid']}{mark}", markup=False)
    finally:
        signoff_app.close()


def keys_rotate() -> None:
    """Make a new signing key (appended to the key file); old keys keep verifying what
    they signed. Replicas need the new key file before they sign with it."""
    signoff_app = _local_app()
    try:
        kid = guarded(signoff_app.keys.rotate)
    finally:
        signoff_app.close()
    out.print(f"new signing key {kid}; copy the key file to every replica", markup=False)


def audit_export(
    format_: Annotated[
        str, typer.Option("--format", metavar="FORMAT", help="Only jsonl for now.")
    ] = "jsonl",
    after: Annotated[
        int, typer.Option(metavar="SEQ", help="Start after this sequence number.")
    ] = 0,
) -> None:
    """Stream the audit log as JSON lines."""
    from signoff.services.views import export_audit

    if format_ != "jsonl":
        fail(f"unknown format {format_!r}; supported: jsonl")
    signoff_app = _local_app()
    try:
        for ev in export_audit(signoff_app.services, after):
            sys.stdout.write(json.dumps(ev.as_dict(), ensure_ascii=False) + "\n")
    finally:
        signoff_app.close()
