"""Passkeys (WebAuthn) with py_webauthn: the options a browser is given to make or use a
passkey, and the checks of what it answers (the challenge, the origin, the relying party
id, user verification, the signature and the sign count).

The relying party is the server's public URL: its host is the rp id (a passkey made for
``signoff.example.com`` works only there) and its scheme, host and port the one origin
accepted. Browsers offer WebAuthn only in a secure context: an https URL, or
``http://localhost`` (and 127.0.0.1) for trying it out.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any
from urllib.parse import urlsplit

from signoff.domain.errors import PasskeyRefused

# py_webauthn (and the CBOR, ASN.1 and OpenSSL modules under it, a quarter of a second)
# is imported by the first ceremony, not at start-up.

# The longest answer from a browser we read (a credential id is at most 1023 bytes; an
# attestation with certificates a few kilobytes).
MAX_ANSWER = 32_000
TIMEOUT_MS = 120_000


def _b64url(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


class WebAuthnPasskeys:
    """The relying party ``public_url`` stands for."""

    def __init__(self, public_url: str, rp_name: str = "Signoff") -> None:
        parts = urlsplit(public_url)
        self.rp_id = parts.hostname or "localhost"
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.rp_name = rp_name

    def registration_options(
        self, user: str, challenge: bytes, exclude: list[bytes]
    ) -> dict[str, Any]:
        from webauthn import generate_registration_options
        from webauthn.helpers import options_to_json_dict
        from webauthn.helpers.structs import (
            AuthenticatorSelectionCriteria,
            PublicKeyCredentialDescriptor,
            ResidentKeyRequirement,
            UserVerificationRequirement,
        )

        options = generate_registration_options(
            rp_id=self.rp_id,
            rp_name=self.rp_name,
            user_name=user,
            user_display_name=user,
            # the user handle: stable per person, and not their name
            user_id=hashlib.sha256(f"signoff-user:{user}".encode()).digest()[:32],
            challenge=challenge,
            timeout=TIMEOUT_MS,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.PREFERRED,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            exclude_credentials=[PublicKeyCredentialDescriptor(id=c) for c in exclude],
        )
        return options_to_json_dict(options)

    def verify_registration(self, credential: str, challenge: bytes) -> tuple[bytes, bytes, int]:
        from webauthn import verify_registration_response
        from webauthn.helpers.exceptions import WebAuthnException

        try:
            found = verify_registration_response(
                credential=_bounded(credential),
                expected_challenge=challenge,
                expected_rp_id=self.rp_id,
                expected_origin=self.origin,
                require_user_verification=True,
            )
        except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
            raise PasskeyRefused("invalid", f"the new passkey does not verify: {exc}") from None
        return found.credential_id, found.credential_public_key, found.sign_count

    def authentication_options(self, challenge: bytes, allow: list[bytes]) -> dict[str, Any]:
        from webauthn import generate_authentication_options
        from webauthn.helpers import options_to_json_dict
        from webauthn.helpers.structs import (
            PublicKeyCredentialDescriptor,
            UserVerificationRequirement,
        )

        options = generate_authentication_options(
            rp_id=self.rp_id,
            challenge=challenge,
            timeout=TIMEOUT_MS,
            allow_credentials=[PublicKeyCredentialDescriptor(id=c) for c in allow],
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        return options_to_json_dict(options)

    def verify_authentication(
        self, credential: str, challenge: bytes, public_key: bytes, sign_count: int
    ) -> int:
        from webauthn import verify_authentication_response
        from webauthn.helpers.exceptions import WebAuthnException

        try:
            found = verify_authentication_response(
                credential=_bounded(credential),
                expected_challenge=challenge,
                expected_rp_id=self.rp_id,
                expected_origin=self.origin,
                credential_public_key=public_key,
                credential_current_sign_count=sign_count,
                require_user_verification=True,
            )
        except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
            raise PasskeyRefused(
                "invalid", f"the passkey's answer does not verify: {exc}"
            ) from None
        return found.new_sign_count

    def challenge_of(self, credential: str) -> tuple[str, bytes]:
        try:
            answer = json.loads(_bounded(credential))
            client_data = json.loads(_b64url(answer["response"]["clientDataJSON"]))
            challenge = client_data["challenge"]
            raw_id = _b64url(answer["rawId"])
        except (ValueError, KeyError, TypeError, RecursionError):
            raise PasskeyRefused("invalid", "the passkey's answer cannot be read") from None
        if not isinstance(challenge, str) or len(challenge) > 100 or not raw_id:
            raise PasskeyRefused("invalid", "the passkey's answer cannot be read")
        return challenge, raw_id


def _bounded(credential: str) -> str:
    if len(credential) > MAX_ANSWER:
        raise PasskeyRefused("invalid", "the passkey's answer is too long")
    return credential
