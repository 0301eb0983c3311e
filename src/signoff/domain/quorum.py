"""Can a review's stages reach their quorums with distinct people?

A person votes once per request, whatever stage, so stage 2 cannot count someone who
approved stage 1. Whether every stage can be staffed is a matching of quorum seats to
people (each seat to one person eligible for its stage, each person to one seat); the
policy loader refuses a policy whose stages cannot be staffed, and a request refuses to
start when its requester's absence leaves a stage short. One rule, used by both."""

from __future__ import annotations

from collections.abc import Sequence


def first_unstaffable(stages: Sequence[tuple[frozenset[str], int]]) -> int | None:
    """The index of the first stage whose quorum cannot be met by people who have not
    already been counted in earlier stages, or None when all can be staffed.

    ``stages`` are (eligible people, quorum), eligible counting escalation."""
    seats: list[int] = []  # seat -> stage
    owner: dict[str, int] = {}  # person -> seat
    for stage, (_, quorum) in enumerate(stages):
        for _ in range(quorum):
            seat = len(seats)
            seats.append(stage)
            if not _assign(seat, seats, stages, owner, set()):
                return stage
    return None


def _assign(
    seat: int,
    seats: list[int],
    stages: Sequence[tuple[frozenset[str], int]],
    owner: dict[str, int],
    tried: set[str],
) -> bool:
    """Kuhn's augmenting path: give ``seat`` a person, moving others if need be."""
    for person in sorted(stages[seats[seat]][0]):
        if person in tried:
            continue
        tried.add(person)
        if person not in owner or _assign(owner[person], seats, stages, owner, tried):
            owner[person] = seat
            return True
    return False
