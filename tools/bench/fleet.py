"""Benchmark: `ncp fleet status` over 1, 10 and 50 synthetic sites (fleet/status.py, offline, in parallel worker
processes), each a stack file over one shared base (ncp/plan/site_base.py) with a signed evidence entry to verify. The
cost per site must stay flat (total linear in sites): the per-site wall time at the largest fleet at most
FLAT_RATIO x the one at 10 sites. Prints where a site's time goes (plan, composing the program under mocks, the
policy pack, evidence verification; wall and CPU seconds, the CPU apart from the machine's load) and writes
tools/bench/results/fleet.json. Each size runs --repeat times, interleaved (1, 10, 50, 1, 10, 50, ...), and the
medians are compared, so a burst of load on the shared machine lands on one run, not on one size.

    .venv/bin/python tools/bench/fleet.py [--sites 1 10 50] [--jobs N] [--repeat 3] [--profile hgx-h200]
                                          [--environment staging]
"""
import argparse
import json
import os
import statistics
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
    """One `fleet_status` run over `count` fresh sites: wall, per-site wall, and where a site's time goes (each
    step's wall and CPU seconds, averaged over the sites); `pool_s` is the wall the sites' own time does not explain
    (worker start-up, hand-over of rows). The load average is read before and after."""
    with tempfile.TemporaryDirectory(prefix="ncp-bench-fleet-") as folder:
        sites = write_fleet(Path(folder), count, profile, environment)
        load = os.getloadavg()[0]
        started = time.perf_counter()
        rows = fleet_status(sites, StatusOptions(PACK_DIR, datetime.now(timezone.utc)), jobs)
        wall = time.perf_counter() - started
    bad = [row["site"] for row in rows if row["status"] != OK or row["evidence"]["verdict"] != "passed"]
    if bad:
        raise RuntimeError(f"synthetic sites did not pass: {bad[:3]}: {rows[0].get('problems') or rows[0]}")
    workers = min(jobs, count)
    steps = {step: sum(row["timings"].get(step, 0) for row in rows) / count for step in STEPS}
    cpu = {step: sum(row["cpu"].get(step, 0) for row in rows) / count for step in STEPS}
    own = sum(row["timings"]["total"] for row in rows)
    return {"sites": count, "jobs": workers, "wall_s": round(wall, 2), "per_site_wall_s": round(wall / count, 3),
            "site_s": round(sum(steps.values()), 3), "site_cpu_s": round(sum(cpu.values()), 3),
            "steps_s": {k: round(v, 3) for k, v in steps.items()},
            "steps_cpu_s": {k: round(v, 3) for k, v in cpu.items()},
            "pool_s": round(max(wall - own / workers, 0.0), 2), "load_before": round(load, 1),
            "load_after": round(os.getloadavg()[0], 1), "resources": rows[0]["resources"]}


def medians(runs: list[dict]) -> dict:
    """Per fleet size, the median of each figure over the repeated runs (with the load averages seen)."""
    figures = ("wall_s", "per_site_wall_s", "site_s", "site_cpu_s", "pool_s")
    row = {"sites": runs[0]["sites"], "jobs": runs[0]["jobs"], "runs": len(runs), "resources": runs[0]["resources"]}
    row.update({key: round(statistics.median(run[key] for run in runs), 3) for key in figures})
    for key in ("steps_s", "steps_cpu_s"):
        row[key] = {step: round(statistics.median(run[key][step] for run in runs), 3) for step in STEPS}
    row["load"] = [min(min(r["load_before"], r["load_after"]) for r in runs),
                   max(max(r["load_before"], r["load_after"]) for r in runs)]
    return row


def flat_misses(rows: list[dict]) -> list[str]:
    """The flatness target: per-site wall and per-site CPU at the largest fleet at most FLAT_RATIO x those at the
    first parallel one (10 sites). Empty when met or when fewer than two parallel sizes were measured."""
    parallel = [row for row in rows if row["sites"] >= 10]
    if len(parallel) < 2:
        return []
    low, high = parallel[0], parallel[-1]
    misses = []
    for key, what in (("per_site_wall_s", "per-site wall"), ("site_cpu_s", "per-site CPU")):
        ratio = high[key] / low[key]
        print(f"{what} at {high['sites']} sites / at {low['sites']}: {ratio:.2f}x (target <= {FLAT_RATIO}x)")
        if ratio > FLAT_RATIO:
            misses.append(f"{what} {ratio:.2f}x")
    return misses


def _dispatch(argv: Optional[Sequence[str]]) -> int:
    parser = argparse.ArgumentParser(prog="tools/bench/fleet.py", description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each size, interleaved; medians reported")
    parser.add_argument("--profile", default="hgx-h200")
    parser.add_argument("--environment", default="staging", choices=["lab", "staging"])
    args = parser.parse_args(argv)
    runs: dict[int, list[dict]] = {count: [] for count in args.sites}
    for repeat in range(args.repeat):
        for count in args.sites:
            run = measure(count, args.jobs, args.profile, environment=args.environment)
            runs[count].append(run)
            print(f"run {repeat + 1}: {count} sites {run['wall_s']:.1f} s ({run['per_site_wall_s']:.2f} s/site, "
                  f"CPU {run['site_cpu_s']:.2f} s/site, load {run['load_before']}->{run['load_after']})",
                  file=sys.stderr, flush=True)
    rows = [medians(runs[count]) for count in args.sites]
    print(table(rows))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"measured": datetime.now(timezone.utc).isoformat(), "cpus": os.cpu_count(),
                                   "rows": rows, "runs": runs}, indent=2) + "\n")
    return FAILED_GATE if flat_misses(rows) else OK


def table(rows: list[dict]) -> str:
    """Markdown: medians per size, each step as wall / CPU seconds per site."""
    lines = ["| sites | jobs | wall s | wall s per site | site CPU s | " + " | ".join(STEPS)
             + " | pool s | load |", "|" + " --- |" * (8 + len(STEPS) - 1)]
    for row in rows:
        cells = " | ".join(f"{row['steps_s'][s]:.2f} / {row['steps_cpu_s'][s]:.2f}" for s in STEPS)
        lines.append(f"| {row['sites']} | {row['jobs']} | {row['wall_s']:.1f} | {row['per_site_wall_s']:.2f} | "
                     f"{row['site_cpu_s']:.2f} | {cells} | {row['pool_s']:.1f} | {row['load'][0]}-{row['load'][1]} |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`tools/bench/fleet.py`."""
    return run_command(_dispatch, argv)


if __name__ == "__main__":
    sys.exit(main())
