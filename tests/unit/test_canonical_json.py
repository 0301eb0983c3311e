"""The fast canonical JSON (orjson) for values that hold no float writes exactly the bytes
of ``canonical_json``: a digest made either way is the same digest. (Floats are where the
two differ: ``1e-05`` against ``0.00001``; only callers that know their value holds none
may use the fast one.)"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signoff.domain.actions import canonical_json, canonical_json_floatless
from signoff.domain.errors import InvalidInput

TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=30)
LEAVES = st.none() | st.booleans() | st.integers() | TEXT
VALUES = st.recursive(
    LEAVES,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.tuples(inner, inner)
        | st.dictionaries(TEXT | st.integers(), inner, max_size=5)
    ),
    max_leaves=40,
)


def encoded(encode: Any, value: Any) -> bytes | str:
    try:
        return encode(value)  # type: ignore[no-any-return]
    except InvalidInput as exc:
        return f"refused: {type(exc).__name__}"


@settings(max_examples=600, deadline=None)
@given(VALUES)
def test_the_fast_encoding_is_byte_for_byte_the_canonical_one(value: Any) -> None:
    assert encoded(canonical_json_floatless, value) == encoded(canonical_json, value)


@pytest.mark.parametrize(
    "value",
    [
        {"rows": [[1, 'é"\\\n\t\x00\x1f\x7f\u2028😀', None, True]], "b": [], "a": {}},
        2**64,  # past orjson's integers: encoded the other way
        {1: "a", "1": "b"},  # keys that are not strings
        "\ud800",  # a lone surrogate: refused both ways
    ],
)
def test_edges_agree(value: Any) -> None:
    assert encoded(canonical_json_floatless, value) == encoded(canonical_json, value)
