"""Audit checkpoints: signed (sequence, hash, time) of the audit chain, kept outside the
database, so a rewritten chain, a cut tail or a wiped log shows against them.

A checkpoint is signed with the server's Ed25519 signing key (which lives outside the
database too) over its canonical JSON. Sinks: ``file:PATH`` appends JSON lines to a file
(on another disk, a mounted bucket, a WORM volume: somewhere the database's keepers
cannot rewrite), ``webhook:URL`` posts each checkpoint, ``syslog:`` (or
``syslog:HOST:PORT``) logs it to syslog. Verification reads JSON lines.
"""

from __future__ import annotations

import base64
import json
import logging
import logging.handlers
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from signoff.domain.audit import Checkpoint
from signoff.domain.errors import InvalidInput
from signoff.services.anchoring import CheckpointSink


def sign(checkpoint: Checkpoint, key: Ed25519PrivateKey) -> Checkpoint:
    sig = base64.urlsafe_b64encode(key.sign(checkpoint.body())).decode().rstrip("=")
    return Checkpoint(checkpoint.seq, checkpoint.hash, checkpoint.at, checkpoint.kid, sig)


def signature_ok(checkpoint: Checkpoint, keys: Mapping[str, Ed25519PublicKey]) -> bool:
    key = keys.get(checkpoint.kid)
    if key is None:
        return False
    try:
        raw = base64.urlsafe_b64decode(
            checkpoint.signature + "=" * (-len(checkpoint.signature) % 4)
        )
        key.verify(raw, checkpoint.body())
    except (InvalidSignature, ValueError):
        return False
    return True


def read_checkpoints(path: Path) -> list[Checkpoint]:
    """Checkpoints from a JSON-lines file; a line that is not one is an error naming it."""
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidInput(f"cannot read checkpoints from {path}: {exc.strerror}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            out.append(
                Checkpoint(
                    int(d["seq"]), str(d["hash"]), str(d["at"]), str(d["kid"]), str(d["signature"])
                )
            )
        except (ValueError, KeyError, TypeError):
            raise InvalidInput(f"{path}:{number}: not a checkpoint") from None
    return out


class FileCheckpointSink:
    def __init__(self, path: Path) -> None:
        self.name = f"file:{path}"
        self.path = path

    def write(self, checkpoint: Checkpoint) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(checkpoint.as_dict(), sort_keys=True) + "\n")


class WebhookCheckpointSink:
    def __init__(self, url: str) -> None:
        self.name = f"webhook:{url}"
        self.url = url

    def write(self, checkpoint: Checkpoint) -> None:
        import httpx

        httpx.post(self.url, json=checkpoint.as_dict(), timeout=10).raise_for_status()


class SyslogCheckpointSink:
    def __init__(self, address: str) -> None:
        self.name = f"syslog:{address}"
        host, _, port = address.rpartition(":")
        target: str | tuple[str, int] = (host, int(port)) if host and port.isdigit() else "/dev/log"
        self.logger = logging.getLogger("signoff.checkpoints.syslog")
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        if not self.logger.handlers:
            self.logger.addHandler(logging.handlers.SysLogHandler(address=target))

    def write(self, checkpoint: Checkpoint) -> None:
        self.logger.info("signoff audit checkpoint %s", json.dumps(checkpoint.as_dict()))


def build_sinks(spec: str) -> list[CheckpointSink]:
    """``SIGNOFF_CHECKPOINTS``: comma-separated ``file:PATH``, ``webhook:URL``,
    ``syslog:`` or ``syslog:HOST:PORT``."""
    sinks: list[CheckpointSink] = []
    for item in (part.strip() for part in spec.split(",") if part.strip()):
        kind, _, rest = item.partition(":")
        if kind == "file" and rest:
            sinks.append(FileCheckpointSink(Path(rest)))
        elif kind == "webhook" and rest.startswith(("http://", "https://")):
            sinks.append(WebhookCheckpointSink(rest))
        elif kind == "syslog":
            sinks.append(SyslogCheckpointSink(rest))
        else:
            raise InvalidInput(
                f"SIGNOFF_CHECKPOINTS: {item!r} is not 'file:PATH', 'webhook:URL' or 'syslog:'"
            )
    return sinks
