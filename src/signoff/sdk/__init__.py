"""The Python SDK: ``signoff.Client``, ``signoff.AsyncClient`` and ``require_approval``.

Import them from ``signoff`` (``from signoff import Client``); the modules here are
private and may change. This package imports nothing itself, so ``import signoff``
stays cheap: the HTTP client is loaded with the first client made. See docs/sdk.md.
"""
