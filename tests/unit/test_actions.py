import pytest
from hypothesis import given
from hypothesis import strategies as st

from signoff.domain.actions import Action
from signoff.domain.errors import InvalidInput

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def test_digest_ignores_key_order() -> None:
    a = Action("sql.execute", "pg/prod", {"sql": "UPDATE t SET x = 1", "db": "main"})
    b = Action("sql.execute", "pg/prod", {"db": "main", "sql": "UPDATE t SET x = 1"})
    assert a.digest == b.digest


def test_one_changed_byte_changes_the_digest() -> None:
    a = Action("sql.execute", "pg/prod", {"sql": "UPDATE t SET x = 1"})
    b = Action("sql.execute", "pg/prod", {"sql": "UPDATE t SET x = 2"})
    c = Action("sql.execute", "pg/prod2", {"sql": "UPDATE t SET x = 1"})
    assert len({a.digest, b.digest, c.digest}) == 3


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_equal_params_equal_digest_and_reordering_never_matters(params: dict) -> None:
    reordered = dict(reversed(list(params.items())))
    assert Action("t", "x", params).digest == Action("t", "x", reordered).digest


def test_empty_type_is_refused() -> None:
    with pytest.raises(InvalidInput):
        Action("", "pg/prod", {})


def test_non_json_values_are_refused() -> None:
    with pytest.raises(InvalidInput):
        _ = Action("t", "x", {"n": float("nan")}).digest
