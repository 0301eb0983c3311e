"""Stages reach their quorums with distinct people, or they are refused (the loader and
the request use the same rule: signoff.domain.quorum)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from signoff.domain.quorum import first_unstaffable


def test_the_same_two_people_cannot_staff_two_stages_of_two_and_one() -> None:
    bob_carol = frozenset({"bob", "carol"})
    assert first_unstaffable([(bob_carol, 2), (bob_carol, 1)]) == 1
    assert first_unstaffable([(bob_carol, 1), (bob_carol, 1)]) is None
    assert first_unstaffable([(bob_carol, 1), (frozenset({"bob"}), 1)]) is None  # carol first
    assert first_unstaffable([(bob_carol, 3)]) == 0


people = st.frozensets(st.sampled_from(["a", "b", "c", "d", "e"]), max_size=5)


@given(st.lists(st.tuples(people, st.integers(0, 3)), max_size=4))
def test_matches_an_exhaustive_search(stages) -> None:
    def brute(i: int, used: frozenset[str]) -> bool:
        if i == len(stages):
            return True
        eligible, quorum = stages[i]
        free = sorted(eligible - used)

        def choose(start: int, left: int, taken: frozenset[str]) -> bool:
            if left == 0:
                return brute(i + 1, used | taken)
            return any(choose(j + 1, left - 1, taken | {free[j]}) for j in range(start, len(free)))

        return choose(0, quorum, frozenset())

    found = first_unstaffable(stages)
    assert (found is None) == brute(0, frozenset())
    if found is not None:  # the stages before it can be staffed on their own
        assert first_unstaffable(stages[:found]) is None
