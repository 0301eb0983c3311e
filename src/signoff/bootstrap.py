"""Builds the object graph from settings. The only place that does."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from signoff.adapters.db.engine import create_db_engine, upgrade
from signoff.adapters.db.repositories import DatabaseUnitOfWork
from signoff.adapters.directory_file import load_directory
from signoff.adapters.event_bus import InProcessEventBus
from signoff.adapters.policy_files import load_policy_set
from signoff.adapters.signing import DatabaseKeyStore, Ed25519GrantSigner
from signoff.config import Settings
from signoff.domain.identity import Directory
from signoff.domain.policy import PolicySet
from signoff.services.core import Observer, Services
from signoff.services.ports import Clock, SystemClock


@dataclass
class App:
    settings: Settings
    engine: Engine
    services: Services
    keys: DatabaseKeyStore
    bus: InProcessEventBus
    policy_set: PolicySet
    directory: Directory

    def close(self) -> None:
        self.engine.dispose()


def load_rules(settings: Settings) -> tuple[Directory, PolicySet]:
    """Users, groups and policies; raises PolicyError listing every problem."""
    directory = load_directory(settings.users_file)
    return directory, load_policy_set(settings.policies_dir, directory)


def build(
    settings: Settings,
    clock: Clock | None = None,
    observer: Observer | None = None,
    migrate: bool = True,
) -> App:
    clock = clock or SystemClock()
    directory, policy_set = load_rules(settings)
    engine = create_db_engine(settings.effective_database_url(), settings.db_pool_size)
    if migrate:
        upgrade(engine)
    keys = DatabaseKeyStore(engine, clock.now)
    keys.ensure_key()
    bus = InProcessEventBus()
    holder = [policy_set]

    def uow(write: bool = True, snapshot: bool = False) -> DatabaseUnitOfWork:
        return DatabaseUnitOfWork(engine, write, snapshot)

    services = Services(
        uow=uow,
        clock=clock,
        directory=directory,
        policies=lambda: holder[0],
        signer=Ed25519GrantSigner(keys, clock.now),
        bus=bus,
    )
    if observer is not None:
        services.observer = observer
    return App(settings, engine, services, keys, bus, policy_set, directory)
