"""The options several commands share, declared once: name, placeholder and help.

Every option that takes a value names what it takes (``KEY=VALUE``, ``URL``, ``TEXT``);
flags take none. ``request`` and ``run`` ask with the same options, and ``policy explain``
judges an ask described by them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer


class Risk(StrEnum):
    """The requester's own estimate of an action's risk (``context.risk`` in the API)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


RISKS = "[" + "|".join(Risk) + "]"

TypeOpt = Annotated[
    str, typer.Option("--type", metavar="TYPE", help="Action type, e.g. sql.execute.")
]
TargetOpt = Annotated[str, typer.Option(metavar="TARGET", help="Action target, e.g. pg/prod.")]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option(metavar="KEY=VALUE", help="An action parameter (repeatable)."),
]
ArgOpt = Annotated[
    list[str] | None,
    typer.Option(metavar="ARG", help="One argv element of a command action (repeatable)."),
]
ReasonOpt = Annotated[str, typer.Option(metavar="TEXT", help="Why you need this.")]
TicketOpt = Annotated[str | None, typer.Option(metavar="TICKET", help="Ticket, e.g. OPS-42.")]
LinkOpt = Annotated[
    list[str] | None,
    typer.Option(metavar="URL", help="A link approvers should see, e.g. a PR (repeatable)."),
]
LabelOpt = Annotated[
    list[str] | None,
    typer.Option(metavar="KEY=VALUE", help="A label policies can match on (repeatable)."),
]
RiskOpt = Annotated[
    Risk | None,
    typer.Option(metavar=RISKS, case_sensitive=False, help="Your estimate of the risk."),
]
CommentOpt = Annotated[str, typer.Option(metavar="TEXT", help="Why; kept in the audit log.")]
RequestIdArg = Annotated[
    str, typer.Argument(metavar="ID", help="A request id, or its first 8 or more characters.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON, every field (for scripts).")]
