"""Benchmark: `ncp fleet status` over 1, 10 and 50 synthetic sites (fleet/status.py, offline, in parallel worker
processes), each a stack file over one shared base (ncp/plan/site_base.py) with a signed evidence entry to verify. The
cost per site must stay flat (total linear in sites): the per-site wall time at the largest fleet at most
FLAT_RATIO x the one at 10 sites. Prints where a site's time goes (plan, composing the program under mocks, the
policy pack, evidence verification) and writes tools/bench/results/fleet.json.

    .venv/bin/python tools/bench/fleet.py [--sites 1 10 50] [--jobs N] [--profile hgx-h200] [--environment staging]
"""
import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional, Sequence

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ncp.cli_exit import FAILED_GATE, OK, run_command  # noqa: E402
from ncp.evidence.record import append_index, signed_entry, write_signed  # noqa: E402
from ncp.evidence.signing import Signer, generate  # noqa: E402
from ncp.evidence.store import open_store  # noqa: E402
from ncp.fleet.sites import Site  # noqa: E402
from ncp.fleet.status import StatusOptions, fleet_status  # noqa: E402
from ncp.offline.policy_check import PACK_DIR  # noqa: E402
from tests.support.synthetic import site_config  # noqa: E402
from ncp.plan.catalog import ROOT  # noqa: E402
from ncp.plan.config import ValidationEvidence  # noqa: E402
from ncp.plan.names import PROJECT  # noqa: E402

FLAT_RATIO = 1.25
STEPS = ("plan", "compose", "policy", "evidence")
RESULTS = ROOT / "tools" / "bench" / "results" / "fleet.json"


def _keys(folder: Path) -> tuple[Signer, Path]:
    trusted = folder / "trusted-keys.yaml"
    settings = ValidationEvidence(path="evidence/bench/", owner="bench", signing_key=str(folder / "site.pem"),
                                  trusted_keys=str(trusted))
    generate("bench", settings)
    return Signer.load("bench", settings), trusted


def write_fleet(folder: Path, count: int, profile: str, environment: str) -> tuple[Site, ...]:
    """`count` site stack files over one base (everything but the site's name and tenants), each with one signed
    passing evidence entry in a shared index."""
    config = site_config(profile, environment, tenants=2)
    signer, trusted = _keys(folder)
    shared = {f"{PROJECT}:{key}": value for key, value in config.items() if key not in ("site", "tenants")}
    site = {k: v for k, v in config["site"].items() if k != "name"}
    site["validationEvidence"] = {**site["validationEvidence"], "trustedKeys": str(trusted)}
    (folder / "base.yaml").write_text(yaml.safe_dump({"config": {**shared, f"{PROJECT}:site": site}}))
    index, created = folder / "index.yaml", datetime.now(timezone.utc) - timedelta(hours=1)
    sites = []
    for number in range(count):
        stack = f"site-{number:03d}"
        path = folder / f"Pulumi.{stack}.yaml"
        path.write_text(yaml.safe_dump({"config": {f"{PROJECT}:base": "base.yaml",
                                                   f"{PROJECT}:site": {"name": stack},
                                                   f"{PROJECT}:tenants": config["tenants"]}}))
        fields = {"stack": stack, "endpoint": "chat", "runId": "r1", "createdAt": created.isoformat(), "passed": True}
        location, sha256 = write_signed(open_store(folder / "records"), f"{stack}/r1", dict(fields),
                                        lambda signature: "record", [], "chat", signer)
        append_index(signed_entry(fields, "endpoint", location, sha256, signer), index)
        sites.append(Site(stack, path, evidence_index=str(index)))
    return tuple(sites)


def measure(count: int, jobs: int, profile: str, environment: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="ncp-bench-fleet-") as folder:
        sites = write_fleet(Path(folder), count, profile, environment)
        started = time.perf_counter()
        rows = fleet_status(sites, StatusOptions(PACK_DIR, datetime.now(timezone.utc)), jobs)
        wall = time.perf_counter() - started
    bad = [row["site"] for row in rows if row["status"] != OK or row["evidence"]["verdict"] != "passed"]
    if bad:
        raise RuntimeError(f"synthetic sites did not pass: {bad[:3]}: {rows[0].get('problems') or rows[0]}")
    steps = {step: sum(row["timings"].get(step, 0) for row in rows) / count for step in STEPS}
    return {"sites": count, "jobs": min(jobs, count), "wall_s": round(wall, 2),
            "per_site_wall_s": round(wall / count, 3), "site_cpu_s": round(sum(steps.values()), 3),
            "steps_s": {k: round(v, 3) for k, v in steps.items()}, "resources": rows[0]["resources"]}


def _dispatch(argv: Optional[Sequence[str]]) -> int:
    parser = argparse.ArgumentParser(prog="tools/bench/fleet.py", description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--profile", default="hgx-h200")
    parser.add_argument("--environment", default="staging", choices=["lab", "staging"])
    args = parser.parse_args(argv)
    rows = [measure(count, args.jobs, args.profile, args.environment) for count in args.sites]
    print(f"{'sites':>5} {'jobs':>4} {'wall s':>7} {'s/site':>7} {'site s':>7}  "
          + " ".join(f"{step:>8}" for step in STEPS) + "  resources/site")
    for row in rows:
        print(f"{row['sites']:>5} {row['jobs']:>4} {row['wall_s']:>7.1f} {row['per_site_wall_s']:>7.2f} "
              f"{row['site_cpu_s']:>7.2f}  " + " ".join(f"{row['steps_s'][s]:>8.2f}" for s in STEPS)
              + f"  {row['resources']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"measured": datetime.now(timezone.utc).isoformat(), "cpus": os.cpu_count(),
                                   "rows": rows}, indent=2) + "\n")
    parallel = [row for row in rows if row["sites"] >= 10]
    if len(parallel) >= 2:
        ratio = parallel[-1]["per_site_wall_s"] / parallel[0]["per_site_wall_s"]
        print(f"per-site wall at {parallel[-1]['sites']} sites / at {parallel[0]['sites']}: {ratio:.2f}x "
              f"(target <= {FLAT_RATIO}x)")
        if ratio > FLAT_RATIO:
            return FAILED_GATE
    return OK


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`tools/bench/fleet.py`."""
    return run_command(_dispatch, argv)


if __name__ == "__main__":
    sys.exit(main())
