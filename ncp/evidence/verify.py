"""`ncp evidence verify`: every entry of the evidence index checked as the promotion gates check it: signed by a
trusted site key, unchanged since (entry and record), not expired. One line per entry; exit 1 when any is refused."""
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from ncp.evidence.signing import TrustedKeysError, parse_trusted_keys
from ncp.evidence.store import S3, split
from ncp_guardrails.evidence_trust import entry_problem
from ncp.plan.catalog import ROOT

__all__ = ["TrustedKeysError", "verify_index"]


def read_location(location: str) -> Optional[str]:
    """A record's text from its location (local path or s3:// URI), None when it is not there."""
    if not location:
        return None
    if not location.startswith(S3) and not Path(location).is_absolute():
        location = str(ROOT / location)  # project-relative, as the promotion gate reads it
    store, key = split(location)
    return store.get(key)


def verify_index(entries: list[dict], trusted_keys_text: Optional[str], trusted_keys_source: str,
                 now: Optional[datetime] = None) -> list[tuple[dict, Optional[str]]]:
    """(entry, None when believed else the reason) per entry. Raises TrustedKeysError for an unreadable keys file."""
    keys = parse_trusted_keys(trusted_keys_text, trusted_keys_source)
    now = now or datetime.now(timezone.utc)
    return [(entry, entry_problem(entry, keys, read_location, now)) for entry in entries]


def describe(entry: dict) -> str:
    subject = entry.get("endpoint") or entry.get("hardwareProfile") or "-"
    return (f"{entry.get('kind', 'endpoint')} {entry.get('stack')}/{subject} run {entry.get('runId')} "
            f"({'passed' if entry.get('passed') else 'failed'}, expires {entry.get('expiresAt', '-')})")
