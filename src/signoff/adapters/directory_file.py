"""Users and groups from a YAML file (embedded mode; OIDC comes later)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from signoff.adapters.policy_files import NAME_PATTERN, ChannelName
from signoff.adapters.yaml_positions import load_model_file
from signoff.domain.errors import ErrorList, PolicyError
from signoff.domain.identity import Directory, User


class UserDoc(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    email: str | None = None
    admin: bool = False
    slack: str | None = None
    teams_webhook: str | None = None
    notify: list[ChannelName] = []
    disabled: bool = False
    github: Annotated[str, Field(pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")] | None = None


class DirectoryDoc(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    users: list[UserDoc]
    groups: dict[str, list[str]] = {}


def load_directory(path: Path | str) -> Directory:
    errors = ErrorList()
    file = Path(path)
    doc, parsed = load_model_file(file, DirectoryDoc, "users file", errors)
    names = {u.name for u in parsed.users}
    seen: set[str] = set()
    logins: set[str] = set()
    for i, u in enumerate(parsed.users):
        if u.name in seen:
            line, col = doc.where(("users", i, "name"))
            errors.add(str(file), line, col, f"duplicate user {u.name!r}")
        seen.add(u.name)
        if u.github is not None:
            login = u.github.casefold()
            if login in logins:
                line, col = doc.where(("users", i, "github"))
                errors.add(str(file), line, col, f"GitHub login {u.github!r} is given twice")
            logins.add(login)
    for g, members in parsed.groups.items():
        for j, m in enumerate(members):
            if m not in names:
                line, col = doc.where(("groups", g, j))
                errors.add(str(file), line, col, f"group {g!r} names unknown user {m!r}")
    if errors.problems:
        raise PolicyError(errors.problems)
    users = (
        User(
            name=u.name,
            email=u.email,
            admin=u.admin,
            slack_id=u.slack,
            teams_webhook=u.teams_webhook,
            notify=tuple(u.notify),
            disabled=u.disabled,
            github=u.github,
        )
        for u in parsed.users
    )
    return Directory.build(users, parsed.groups)
