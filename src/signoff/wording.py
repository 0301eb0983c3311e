"""Small pieces of wording shared by messages, pages and the command line."""

from __future__ import annotations


def plural(n: int, noun: str) -> str:
    """1 session, 2 sessions."""
    return f"{n} {noun}" + ("" if n == 1 else "s")
