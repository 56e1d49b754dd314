"""The owning layer of each evidence phase and check, from data/evidence-owners.yaml (the documented mapping)."""
from functools import lru_cache

import yaml

from ncp.plan.catalog import ROOT

OWNERS_FILE = ROOT / "data" / "evidence-owners.yaml"


@lru_cache(maxsize=1)
def _owners() -> dict:
    return yaml.safe_load(OWNERS_FILE.read_text())


def phase_owner(phase: str) -> str:
    owners = _owners()["phases"]
    if phase not in owners:
        raise KeyError(f"{OWNERS_FILE}: phases has no owner for {phase!r}; add one")
    return owners[phase]


def check_owner(phase: str, metric: str) -> str:
    """The longest prefix of metric (whole dot-separated parts) listed under checks, else the phase's owner."""
    checks, parts = _owners()["checks"], metric.split(".")
    for length in range(len(parts), 0, -1):
        owner = checks.get(".".join(parts[:length]))
        if owner:
            return owner
    return phase_owner(phase)
