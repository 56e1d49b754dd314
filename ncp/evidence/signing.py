"""The site's evidence signing key: where it lives (never in the repository), how it is made, and signing.

The private key is a PEM (PKCS#8) file outside the project: NCP_EVIDENCE_SIGNING_KEY, else the stack's
`site.validationEvidence.signingKey`, else ~/.config/ncp-inference/<site>.signing-key.pem. Its public half goes into
the trusted keys file (`validationEvidence.trustedKeys`, default sites/<stack>/evidence/trusted-keys.yaml), which is
committed and which the promotion gates and `ncp evidence verify` read. The signature format and the check are the
policy pack's (ncp_guardrails.evidence_trust), so writer and gate share one definition.
"""
import base64
import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ncp.cli_exit import BadInput
from ncp.offline.policy_check import PACK_DIR
from ncp.plan.catalog import ROOT
from ncp.plan.config import EvidenceTtl, ValidationEvidence
from ncp.plan.names import TRUSTED_KEYS, site_file

if str(PACK_DIR) not in sys.path:  # the pack's package, as its language host imports it
    sys.path.insert(0, str(PACK_DIR))
from ncp_guardrails.evidence_trust import (  # noqa: E402
    ALGORITHM, SIGNATURE, TrustedKeysError, canonical, key_id, parse_trusted_keys)

KEY_ENV = "NCP_EVIDENCE_SIGNING_KEY"
DEFAULT_KEY_DIR = Path("~/.config/ncp-inference")
TRUSTED_KEYS_HEADER = "# Public evidence signing keys the promotion gates trust (ncp evidence keygen adds one)\n"
__all__ = ["TrustedKeysError", "parse_trusted_keys"]


class SigningKeyError(BadInput):
    """The signing key is missing, unreadable or inside the repository; the message names the path and the fix."""


def key_path(site: str, settings: Optional[ValidationEvidence]) -> Path:
    configured = os.environ.get(KEY_ENV) or (settings.signing_key if settings else None)
    path = Path(configured or DEFAULT_KEY_DIR / f"{site}.signing-key.pem").expanduser()
    path = path if path.is_absolute() else (ROOT / path)
    if path.resolve().is_relative_to(ROOT.resolve()):
        raise SigningKeyError(f"{path}: the evidence signing key must not live inside the repository\n  fix: point "
                              f"{KEY_ENV} or site.validationEvidence.signingKey at a path outside it")
    return path


def trusted_keys_path(settings: Optional[ValidationEvidence], stack: str) -> Path:
    """validationEvidence.trustedKeys, else the stack's own sites/<stack>/evidence/trusted-keys.yaml."""
    configured = settings.trusted_keys if settings else None
    return ROOT / (configured or site_file(TRUSTED_KEYS, stack))


class Signer:
    """Signs evidence with the site's private key; entries it signs expire after the kind's time-to-live."""

    def __init__(self, private_key: Ed25519PrivateKey, ttl_days: dict[str, int]):
        self.private_key, self.ttl_days = private_key, ttl_days
        raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id = key_id(raw)

    @classmethod
    def load(cls, site: str, settings: Optional[ValidationEvidence]) -> "Signer":
        path = key_path(site, settings)
        if not path.is_file():
            raise SigningKeyError(f"{path}: no evidence signing key\n  fix: `ncp evidence keygen --stack "
                                  f"<stack>` makes one (or set {KEY_ENV} to the site's key)")
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError) as error:
            raise SigningKeyError(f"{path}: not an unencrypted PEM private key ({error})\n  fix: point {KEY_ENV} at "
                                  "the key `ncp evidence keygen` made") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningKeyError(f"{path}: a {type(key).__name__}, not an ed25519 key\n  fix: use the key "
                                  "`ncp evidence keygen` made")
        ttl = settings.ttl_days if settings else EvidenceTtl()
        return cls(key, ttl.model_dump(by_alias=True))

    def sign(self, payload: dict) -> dict:
        value = base64.b64encode(self.private_key.sign(canonical(payload))).decode()
        return {**{k: v for k, v in payload.items() if k != SIGNATURE},
                SIGNATURE: {"algorithm": ALGORITHM, "keyId": self.key_id, "value": value}}

    def expires_at(self, kind: str, created_at: str) -> str:
        """created_at plus the kind's time-to-live (validationEvidence.ttlDays)."""
        if kind not in self.ttl_days:
            raise SigningKeyError(f"no time-to-live for evidence kind {kind!r} (validationEvidence.ttlDays has "
                                  f"{', '.join(self.ttl_days)})")
        created = datetime.fromisoformat(created_at)
        return (created + timedelta(days=self.ttl_days[kind])).isoformat(timespec="seconds")


def generate(site: str, settings: Optional[ValidationEvidence], now: Optional[datetime] = None,
             stack: Optional[str] = None) -> tuple[Path, str]:
    """A new private key at the site's key path (mode 0600; never overwritten) and its public half added to the
    trusted keys file. Returns (private key path, key id)."""
    path = key_path(site, settings)
    if path.exists():
        raise SigningKeyError(f"{path}: a signing key is already there\n  fix: keep it, or move it away first "
                              "(evidence it signed stays verifiable while its public key stays trusted)")
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    trusted = trusted_keys_path(settings, stack or site)
    listed = (yaml.safe_load(trusted.read_text()) or {}) if trusted.is_file() else {}
    listed.setdefault("keys", {})[key_id(raw)] = {
        "publicKey": base64.b64encode(raw).decode(), "site": site,
        "addedAt": (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")}
    trusted.parent.mkdir(parents=True, exist_ok=True)
    trusted.write_text(TRUSTED_KEYS_HEADER + yaml.safe_dump(listed, sort_keys=False))
    return path, key_id(raw)
