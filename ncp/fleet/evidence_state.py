"""A site's latest acceptance evidence as the promotion gates judge it (evidence.verify): the newest index entry of
each of the site's keys (endpoint, inference service, readiness), believed or refused, passed or failed, and its
age. The fleet reads the index where the site's evidence writes it (ncp/evidence/__main__.py: the bucket's index.yaml,
else sites/<stack>/evidence/index.yaml), or where the fleet file says."""
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Optional

from ncp.evidence.record import index_file, read_index
from ncp.evidence.signing import trusted_keys_path
from ncp.evidence.store import S3, StoreError, open_store
from ncp.evidence.verify import TrustedKeysError, verify_index

__all__ = ["evidence_state", "index_location", "parse_time"]


def index_location(stack: str, site_plan, override: Optional[str]) -> str:
    if override:
        return override
    configured = site_plan.site.validation_evidence
    if configured is not None and configured.path.startswith(S3):
        return open_store(configured.path).location("index.yaml")
    return str(index_file(stack))


def parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@lru_cache(maxsize=8)
def _index_by_stack(location: str, stamp: tuple) -> dict[str, tuple[dict, ...]]:
    """The index's entries grouped by stack, read and grouped once per worker for every site it checks (`stamp`: a
    local file's size and mtime, so a rewritten index is read again). Sites share an index: reading it per site, or
    scanning all of it per site, made the fleet's cost grow with the square of its sites."""
    del stamp
    grouped: dict[str, list[dict]] = {}
    for entry in read_index(location):
        grouped.setdefault(str(entry.get("stack")), []).append(entry)
    return {stack: tuple(entries) for stack, entries in grouped.items()}


def stack_entries(location: str, stack: str) -> tuple[dict, ...]:
    """The index's entries of one stack."""
    path = Path(location)
    stamp = (path.stat().st_size, path.stat().st_mtime_ns) if not location.startswith(S3) and path.is_file() else ()
    return _index_by_stack(location, stamp).get(stack, ())


def _latest(entries: list[dict]) -> list[dict]:
    latest: dict[tuple, dict] = {}
    for entry in entries:
        subject = (entry.get("kind", "endpoint"), entry.get("endpoint") or entry.get("hardwareProfile") or "-")
        if str(entry.get("createdAt", "")) >= str(latest.get(subject, {}).get("createdAt", "")):
            latest[subject] = entry
    return list(latest.values())


def evidence_state(stack: str, site_plan, override: Optional[str], now: datetime) -> dict:
    """{verdict: passed|failed|refused|none|unreadable, age_days, created_at, entries: [...], reason}."""
    settings = site_plan.site.validation_evidence
    try:
        location = index_location(stack, site_plan, override)
        entries = list(stack_entries(location, stack))
        if not entries:
            return {"verdict": "none", "index": location, "entries": [], "age_days": None, "created_at": None}
        keys_file = trusted_keys_path(settings, stack)
        keys_text = keys_file.read_text() if keys_file.is_file() else None
        judged = verify_index(_latest(entries), keys_text, str(keys_file), now)
    except (StoreError, TrustedKeysError, OSError) as error:
        return {"verdict": "unreadable", "reason": str(error), "entries": [], "age_days": None, "created_at": None}
    rows = [{"subject": f"{e.get('kind', 'endpoint')}/{e.get('endpoint') or e.get('hardwareProfile') or '-'}",
             "runId": e.get("runId"), "createdAt": e.get("createdAt"), "passed": bool(e.get("passed")),
             "refused": problem} for e, problem in judged]
    newest = max(parse_time(str(row["createdAt"])) for row in rows)
    refused = [row for row in rows if row["refused"]]
    failed = [row for row in rows if not row["passed"]]
    verdict = "refused" if refused else "failed" if failed else "passed"
    reason = "; ".join(f"{row['subject']}: {row['refused'] or 'failed'}" for row in refused or failed)
    return {"verdict": verdict, "reason": reason, "index": location, "entries": rows,
            "created_at": newest.isoformat(), "age_days": round((now - newest).total_seconds() / 86400, 1)}
