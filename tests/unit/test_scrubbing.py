"""The scrubber finds a target's secrets anywhere in an output by searching its canonical
JSON once, and hands that encoding on when there was nothing to hide."""

from __future__ import annotations

import math

from signoff.adapters.executors.scrubbing import HIDDEN, Scrubber
from signoff.domain.actions import canonical_json

SECRET = 'pa"ss\\wörd-7\n'  # escaped in JSON: a quote, a backslash, a newline


def test_an_output_without_secrets_is_kept_with_its_canonical_json() -> None:
    output = {"columns": ["id", "name"], "rows": [[1, "a"], [2, "pa ss"]], "truncated": False}
    kept, encoded = Scrubber([SECRET]).output(output)
    assert kept is output
    assert encoded == canonical_json(output)


def test_a_secret_is_found_in_any_string_or_key_whatever_json_escapes() -> None:
    scrubber = Scrubber([SECRET])
    for output in (
        {"rows": [[1, f"x{SECRET}y"]]},
        {"body": {"nested": [f"{SECRET}"]}},
        {f"k-{SECRET}": 1},
    ):
        kept, encoded = scrubber.output(output)
        text = repr(kept)
        assert encoded is None and HIDDEN in text and "wörd-7" not in text, output


def test_numbers_that_merely_look_like_a_secret_stay_numbers() -> None:
    kept, _ = Scrubber(["12345"]).output({"rows": [[123456, "ok"]]})
    assert kept == {"rows": [[123456, "ok"]]}


def test_an_output_json_cannot_encode_is_still_scrubbed() -> None:
    kept, encoded = Scrubber([SECRET]).output({"rows": [[math.nan, SECRET]]})
    assert encoded is None and kept["rows"][0][1] == HIDDEN
