"""Audit use cases: verify the chain, stream it out."""

from __future__ import annotations

from collections.abc import Iterator

from signoff.domain.audit import AuditEvent, ChainReport, verify_chain
from signoff.services.core import Services


def verify_audit(svc: Services) -> ChainReport:
    """Walk the whole chain once, in sequence order, reading in one snapshot."""
    with svc.uow(write=False, snapshot=True) as uow:
        head = uow.audit.head()
        return verify_chain(uow.audit.events(), head)


def export_audit(svc: Services, after: int = 0) -> Iterator[AuditEvent]:
    with svc.uow(write=False) as uow:
        yield from uow.audit.events(after=after)
