"""People and groups, as the domain sees them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from signoff.domain.errors import Forbidden, NotFound, Refused


@dataclass(frozen=True)
class User:
    name: str
    email: str | None = None
    admin: bool = False
    groups: frozenset[str] = field(default_factory=frozenset)
    slack_id: str | None = None  # else found by email (users.lookupByEmail)
    teams_webhook: str | None = None  # a webhook that posts to this person's Teams chat
    notify: tuple[str, ...] = ()  # where they prefer news of their own requests
    disabled: bool = False  # signs in, authenticates and acts nowhere (users.yaml)
    github: str | None = None  # their GitHub login (deployments they trigger are theirs)
    # A workload's token claims (policies read them as requester.claims); empty for people.
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def require_admin(self, to: str) -> None:
        """Admins read the audit log and the outbox, and act for others."""
        if not self.admin:
            raise Forbidden(f"only an admin may {to}")

    def require_enabled(self, to: str) -> None:
        """A disabled person does nothing: votes, asks, cancels, redeems, gets tokens."""
        if self.disabled:
            raise Refused("disabled", f"user {self.name} is disabled, and may not {to}")


@dataclass(frozen=True)
class Directory:
    """Users and group memberships; the source of truth for who is who."""

    users: Mapping[str, User]
    groups: Mapping[str, frozenset[str]]

    @classmethod
    def build(
        cls,
        users: Iterable[User],
        groups: Mapping[str, Iterable[str]],
    ) -> Directory:
        members = {g: frozenset(m) for g, m in groups.items()}
        table: dict[str, User] = {}
        for user in users:
            mine = frozenset(g for g, m in members.items() if user.name in m)
            table[user.name] = replace(user, groups=mine)
        return cls(users=table, groups=members)

    def user(self, name: str) -> User:
        try:
            return self.users[name]
        except KeyError:
            raise NotFound(f"no user named {name!r}") from None

    def by_github(self, login: str) -> User | None:
        """The person whose GitHub login this is (GitHub logins ignore case)."""
        wanted = login.casefold()
        for user in self.users.values():
            if user.github is not None and user.github.casefold() == wanted:
                return user
        return None

    def resolve(self, users: Iterable[str], groups: Iterable[str]) -> frozenset[str]:
        """The distinct people named directly or through a group."""
        people: set[str] = set(users)
        for g in groups:
            people |= self.groups.get(g, frozenset())
        return frozenset(people)
