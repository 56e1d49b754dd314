"""Whether a piece of evidence may be believed: every evidence index entry, and the record it points to, carries an
ed25519 signature made with a site key whose public half is in the trusted keys file (committed beside the index;
the private half never is), and an entry is fresh until its `expiresAt` (the stack's time-to-live for that kind of
evidence, fixed when it was signed).

The signed bytes are the canonical JSON of the entry or record without its `signature` member: keys sorted, no
insignificant whitespace, UTF-8 (`canonical`). `ncp evidence` signs with the same function (it imports this
module), so the writer and the gate cannot drift apart.
"""
import base64
import binascii
import hashlib
import json
from datetime import datetime, timezone
from typing import Optional

import yaml
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ALGORITHM = "ed25519"
SIGNATURE = "signature"


class TrustedKeysError(Exception):
    """The trusted keys file cannot be read; the message names the file and the fix."""


def canonical(payload: dict) -> bytes:
    unsigned = {key: value for key, value in payload.items() if key != SIGNATURE}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def key_id(public_raw: bytes) -> str:
    """A key's name in signatures and the trusted keys file: the first 16 hex digits of its raw bytes' sha256."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


def parse_trusted_keys(text: Optional[str], source: str) -> dict[str, Ed25519PublicKey]:
    """keyId -> public key from the trusted keys file (`keys: {<keyId>: {publicKey: <base64 raw key>, ...}}`)."""
    try:
        listed = ((yaml.safe_load(text) or {}) if text else {}).get("keys") or {}
        keys = {name: Ed25519PublicKey.from_public_bytes(base64.b64decode(entry["publicKey"], validate=True))
                for name, entry in listed.items()}
    except (yaml.YAMLError, AttributeError, KeyError, TypeError, ValueError, binascii.Error) as error:
        raise TrustedKeysError(f"{source}: not a trusted keys file ({type(error).__name__}: {error})\n  fix: restore "
                               "it from version control; `ncp evidence keygen` adds a site's key") from None
    for name, key in keys.items():
        if key_id(key.public_bytes(Encoding.Raw, PublicFormat.Raw)) != name:
            raise TrustedKeysError(f"{source}: key {name} is listed under another key's id\n  fix: restore the file "
                                   "from version control")
    return keys


def signature_problem(payload: dict, keys: dict[str, Ed25519PublicKey]) -> Optional[str]:
    """None when the payload is signed by a trusted key and unchanged since; else why not."""
    signature = payload.get(SIGNATURE)
    if not isinstance(signature, dict) or not signature.get("value"):
        return "unsigned"
    if signature.get("algorithm") != ALGORITHM:
        return f"signed with {signature.get('algorithm')!r}, not {ALGORITHM}"
    key = keys.get(str(signature.get("keyId")))
    if key is None:
        return f"signed by key {signature.get('keyId')}, which the trusted keys file does not hold"
    try:
        key.verify(base64.b64decode(signature["value"], validate=True), canonical(payload))
    except (InvalidSignature, ValueError, binascii.Error):
        return "tampered: the signature does not match the content"
    return None


def freshness_problem(entry: dict, now: datetime) -> Optional[str]:
    expires = entry.get("expiresAt")
    try:
        deadline = datetime.fromisoformat(str(expires))
    except ValueError:
        return f"stale: no valid expiresAt ({expires!r})"
    if deadline.tzinfo is None:
        deadline = deadline.replace(tzinfo=timezone.utc)
    return f"stale: expired at {expires}" if now >= deadline else None


def record_problem(entry: dict, record_text: Optional[str], keys: dict[str, Ed25519PublicKey]) -> Optional[str]:
    """The record an entry points to: present, the very bytes the entry signed (recordSha256), itself signed."""
    if record_text is None:
        return f"its record {entry.get('record')} cannot be found"
    if hashlib.sha256(record_text.encode()).hexdigest() != entry.get("recordSha256"):
        return f"tampered: its record {entry.get('record')} changed since the entry was signed"
    try:
        record = json.loads(record_text)
    except json.JSONDecodeError:
        return f"its record {entry.get('record')} is not JSON"
    problem = signature_problem(record, keys) if isinstance(record, dict) else "not a JSON object"
    return None if problem is None else f"its record {entry.get('record')}: {problem}"


def entry_problem(entry: dict, keys: dict[str, Ed25519PublicKey], read_record, now: Optional[datetime] = None
                  ) -> Optional[str]:
    """None when the entry may be believed; else the reason it is refused. read_record(location) -> text or None."""
    problem = signature_problem(entry, keys) or freshness_problem(entry, now or datetime.now(timezone.utc))
    return problem or record_problem(entry, read_record(str(entry.get("record", ""))), keys)
