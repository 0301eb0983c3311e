"""Signing keys live outside the database: a copy of the database can neither sign a
grant nor an approval link, keys rotate without invalidating what was signed, and keys
from before (kept in the database) are moved out once."""

from __future__ import annotations

import shutil
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signoff.adapters.db import tables as t
from signoff.adapters.signing import KeyRing, VoteLinkSigner, _public_jwk, kid_of
from signoff.bootstrap import build
from signoff.domain.actions import Action
from signoff.domain.errors import InvalidInput, LinkRefused
from signoff.services import requests as use_cases

from ..conftest import make_settings

READ = Action("sql.execute", "pg/x", {"sql": "select 1"})


def embedded(tmp_path: Path, sqlite_template: Path, name: str = "a"):
    """An embedded server's settings: SQLite in its data folder, no key given."""
    folder = tmp_path / name
    folder.mkdir()
    shutil.copy(sqlite_template, folder / "signoff.db")
    return make_settings(f"sqlite:///{folder / 'signoff.db'}", folder, signing_keys="")


def test_first_start_writes_a_private_key_file_and_only_public_keys_to_the_database(
    tmp_path: Path, sqlite_template: Path
) -> None:
    settings = embedded(tmp_path, sqlite_template)
    app = build(settings)
    try:
        key_file = settings.effective_signing_keys_file()
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert "PRIVATE KEY" in key_file.read_text()
        with app.engine.connect() as conn:
            rows = conn.execute(sa.select(t.signing_keys)).mappings().all()
        assert [r["private_pem"] for r in rows] == [None]
        assert [k["kid"] for k in app.keys.jwks()["keys"]] == [rows[0]["kid"]]
        frank = app.directory.user("frank")
        r = use_cases.submit_request(app.services, frank, READ, "", None, {})
        assert app.services.signer.verify(app.services.signer.issue(r))["rid"] == r.id
    finally:
        app.close()
    db = (settings.data_dir / "signoff.db").read_bytes()
    assert b"PRIVATE KEY" not in db and key_file.read_bytes()[:20] not in db


def test_a_copy_of_the_database_cannot_sign(tmp_path: Path, sqlite_template: Path) -> None:
    real = embedded(tmp_path, sqlite_template, "real")
    app = build(real)
    app.close()
    stolen = tmp_path / "stolen"
    stolen.mkdir()
    shutil.copy(real.data_dir / "signoff.db", stolen / "signoff.db")  # no key file
    copy = make_settings(f"sqlite:///{stolen / 'signoff.db'}", stolen, signing_keys="")
    with pytest.raises(InvalidInput, match="private keys are not in"):
        build(copy)
    # whoever holds the copy can only make a key of their own, which the real
    # server does not know: a vote link signed with it is refused
    mallory = KeyRing(
        sa.create_engine(f"sqlite:///{stolen / 'signoff.db'}"),
        lambda: datetime.now(UTC),
        stolen / "mallory.pem",
    )
    mallory_key = Ed25519PrivateKey.generate()
    mallory._private = {kid_of(mallory_key): mallory_key}
    mallory.active_kid = kid_of(mallory_key)
    forged = VoteLinkSigner(mallory, lambda: datetime.now(UTC)).issue(
        "bob", "some-request", "approve", datetime.now(UTC) + timedelta(hours=1)
    )
    app = build(real)
    try:
        with pytest.raises(LinkRefused) as refused:
            app.links.verify(forged)
        assert refused.value.reason == "invalid_signature"
    finally:
        app.close()


def test_rotation_signs_with_the_new_key_and_still_verifies_the_old(
    tmp_path: Path, sqlite_template: Path
) -> None:
    settings = embedded(tmp_path, sqlite_template)
    app = build(settings)
    try:
        frank = app.directory.user("frank")
        r = use_cases.submit_request(app.services, frank, READ, "", None, {})
        before = app.services.signer.issue(r)
        old = app.keys.active_kid
        new = app.keys.rotate()
        assert new != old and app.keys.active_kid == new
        after = app.services.signer.issue(r)
        assert after != before
        assert app.services.signer.verify(before)["rid"] == app.services.signer.verify(after)["rid"]
        assert {k["kid"] for k in app.keys.jwks()["keys"]} == {old, new}
    finally:
        app.close()
    again = build(settings)  # a restart signs with the newest key of the file
    try:
        assert again.keys.active_kid == new
    finally:
        again.close()


def test_keys_kept_in_the_database_before_are_moved_out_once(
    tmp_path: Path, sqlite_template: Path
) -> None:
    settings = embedded(tmp_path, sqlite_template)
    legacy = Ed25519PrivateKey.generate()
    pem = legacy.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    engine = sa.create_engine(settings.effective_database_url())
    with engine.begin() as conn:
        conn.execute(
            t.signing_keys.insert().values(
                kid="legacy0123456789",
                private_pem=pem,
                public_jwk=_public_jwk("legacy0123456789", legacy.public_key()),
                created_at=datetime.now(UTC),
            )
        )
    engine.dispose()
    app = build(settings)
    try:
        assert app.keys.active_kid == kid_of(legacy)
        assert "PRIVATE KEY" in settings.effective_signing_keys_file().read_text()
        with app.engine.connect() as conn:
            assert conn.execute(sa.select(t.signing_keys.c.private_pem)).scalars().all() == [
                None,
                None,
            ]
    finally:
        app.close()


@pytest.mark.parametrize(
    "text", ["not a key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"]
)
def test_unreadable_keys_are_named_not_shown(tmp_path: Path, sqlite_template: Path, text) -> None:
    settings = embedded(tmp_path, sqlite_template).model_copy(update={"signing_keys": text})
    with pytest.raises(InvalidInput) as info:
        build(settings)
    assert "SIGNOFF_SIGNING_KEYS" in info.value.detail and "AAAA" not in info.value.detail
