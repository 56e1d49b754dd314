"""`ncp fleet status`: every site checked offline in parallel with the project's own checks (the plan, the program
composed under mocks, the environment's policy pack: ncp/offline/site_ci.py's steps), its versions against the
compatibility matrix (pins listed, expired ones flagged), its latest evidence as the promotion gates judge it, and,
with a kubeconfig, its drift (fleet/drift.py). One row per site; the worst site decides the exit code."""
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import pulumi

from ncp.cli_exit import BAD_INPUT, FAILED_GATE, OK
from ncp.fleet.drift import gpu_drift, preview_drift
from ncp.fleet.evidence_state import evidence_state
from ncp.fleet.sites import Site
from ncp.offline.policy_check import PackConfigError, evaluate, read_pack_config
from ncp.readmodel.recorder import run_stack_config
from ncp.plan.catalog import ROOT, load_matrix
from ncp.plan.errors import ConfigError
from ncp.plan.site_base import resolved_config
from ncp.plan.site_plan import build_plan
from ncp.plan.sources import config_of_document, local_overlay


@dataclass(frozen=True)
class StatusOptions:
    pack_dir: Path
    now: datetime
    drift: bool = True
    root: Path = ROOT  # the fleet's repository: where a drift preview runs the program


def site_plan_of(site: Site):
    """(config for the program, secret keys, plan) of a site's stack file, read as every command reads one (named by
    its path, so a relative base is found beside it and every problem names the file)."""
    source = str(site.file.resolve())
    raw, secrets = config_of_document(site.file.read_bytes(), source)
    site_plan = build_plan(raw, secrets, source, local_overlay(source))
    return resolved_config(raw, source), secrets, site_plan


def version_rows(site_plan, now: datetime) -> list[dict]:
    """Each chart the site deploys: its version, the matrix's, and the pin that keeps it off the matrix."""
    matrix, pins = load_matrix(), {pin.component: pin for pin in site_plan.version_pins}
    rows = []
    for component in site_plan.layers.charts:
        pin = pins.get(component)
        rows.append({"component": component, "site": site_plan.matrix.pin(component).version,
                     "matrix": matrix.pin(component).version,
                     "pin": {**pin.as_dict(), "expired": pin.expired(now)} if pin else None})
    return rows


def _versions_cell(rows: list[dict]) -> str:
    pinned = [row for row in rows if row["pin"]]
    if not pinned:
        return "matrix"
    return ", ".join(f"{r['component']} {r['site']} (pin to {r['pin']['until'][:10]}"
                     f"{', EXPIRED' if r['pin']['expired'] else ''})" for r in pinned)


class _Clock:
    """Each step's wall seconds (`timings`) and this worker's CPU seconds in it (`cpu`: apart from the load)."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.started = self.wall = time.perf_counter()
        self.first_cpu = self.process = time.process_time()

    def step(self, name: str) -> None:
        wall, process = time.perf_counter(), time.process_time()
        self.timings[name], self.cpu[name] = round(wall - self.wall, 3), round(process - self.process, 3)
        self.wall, self.process = wall, process

    def total(self) -> None:
        self.timings["total"] = round(time.perf_counter() - self.started, 3)
        self.cpu["total"] = round(time.process_time() - self.first_cpu, 3)


def site_status(site: Site, options: StatusOptions) -> dict:
    """One site's row (a dict, JSON as printed by --json). Runs in a worker process."""
    clock = _Clock()
    row: dict = {"site": site.stack, "file": str(site.file)}
    try:
        raw, secrets, site_plan = site_plan_of(site)
        clock.step("plan")
        recording = run_stack_config(raw, secrets, site.stack)
        clock.step("compose")
        config_path = options.pack_dir / "config" / f"{site_plan.environment.value}.json"
        _, _, violations = evaluate(recording, read_pack_config(config_path), options.pack_dir)
        clock.step("policy")
    except (ConfigError, pulumi.RunError, PackConfigError) as error:
        return {**row, "status": BAD_INPUT, "problems": str(error).splitlines(), "timings": clock.timings,
                "cpu": clock.cpu}
    mandatory = [v for v in violations if v.level == "mandatory"]
    row.update({
        "profile": site_plan.profile.name, "environment": site_plan.environment.value, "base": site_plan.base,
        "resources": len(recording.resources), "versions": version_rows(site_plan, options.now),
        "policy": {"pack": config_path.name, "mandatory": len(mandatory), "violations": len(violations),
                   "messages": [f"[{v.level}] {v.policy}: {v.message}" for v in violations]},
        "evidence": evidence_state(site.stack, site_plan, site.evidence_index, options.now)})
    clock.step("evidence")
    row["drift"] = None
    if site.kubeconfig and options.drift:
        row["drift"] = {"preview": preview_drift(site.stack, site.kubeconfig, options.root, site.file),
                        "gpu": gpu_drift(site_plan, site.kubeconfig, site.context)}
        clock.step("drift")
    row["status"] = FAILED_GATE if mandatory or drifted(row["drift"]) else OK
    clock.total()
    row["timings"], row["cpu"] = clock.timings, clock.cpu
    return row


def drifted(drift: Optional[dict]) -> bool:
    """Drift, or drift that could not be read (a site whose state is unknown is not in policy either)."""
    if not drift:
        return False
    preview, gpu = drift["preview"], drift["gpu"]
    return bool(preview.get("error") or preview.get("changes") or gpu.get("error") or gpu.get("problems"))


def fleet_status(sites: tuple[Site, ...], options: StatusOptions, jobs: int) -> list[dict]:
    """Every site's row, in the fleet's order; `jobs` worker processes (1: in this process)."""
    if jobs <= 1 or len(sites) <= 1:
        return [site_status(site, options) for site in sites]
    # Each worker composes programs one after the other (the Pulumi runtime's state is per process). Workers come
    # from a fork server that imported this module once: not forked from this process, whose threads (a program
    # composed here before, gRPC) a fork would copy in whatever state they are, and hang on.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    with ProcessPoolExecutor(max_workers=min(jobs, len(sites)), mp_context=context) as pool:
        return list(pool.map(site_status, sites, [options] * len(sites)))


def _evidence_cell(evidence: dict) -> tuple[str, str]:
    age = evidence.get("age_days")
    return evidence["verdict"], "-" if age is None else f"{age:.1f}d"


def _drift_cell(drift: Optional[dict]) -> str:
    if not drift:
        return "-"
    preview, gpu = drift["preview"], drift["gpu"]
    parts = []
    if preview.get("error"):
        parts.append("preview failed")
    elif preview.get("changes"):
        parts.append("preview " + ", ".join(f"{count} to {op}" for op, count in sorted(preview["changes"].items())))
    if gpu.get("error"):
        parts.append("GPU layer unreadable")
    elif gpu.get("problems"):
        parts.append(f"GPU layer {len(gpu['problems'])}")
    return "; ".join(parts) or "none"


def render_table(rows: list[dict]) -> str:
    header = ("SITE", "PROFILE", "ENV", "VERSIONS", "POLICY", "EVIDENCE", "AGE", "DRIFT")
    table = [header]
    for row in rows:
        if row["status"] == BAD_INPUT:
            table.append((row["site"], "-", "-", "-", "INVALID", "-", "-", "-"))
            continue
        policy = row["policy"]
        verdict = "ok" if not policy["mandatory"] else f"FAILED ({policy['mandatory']} mandatory)"
        table.append((row["site"], row["profile"], row["environment"], _versions_cell(row["versions"]),
                      verdict, *_evidence_cell(row["evidence"]), _drift_cell(row["drift"])))
    widths = [max(len(str(line[i])) for line in table) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
             for line in table]
    for row in rows:
        details = row.get("problems") or []
        if row["status"] != BAD_INPUT:
            details = [m for m in row["policy"]["messages"] if m.startswith("[mandatory]")]
            details += [f"evidence: {row['evidence']['reason']}"] if row["evidence"].get("reason") else []
            details += _drift_details(row["drift"])
        lines += [f"\n{row['site']}:"] + [f"  {line}" for detail in details for line in detail.splitlines()] \
            if details else []
    return "\n".join(lines)


def _drift_details(drift: Optional[dict]) -> list[str]:
    if not drift:
        return []
    preview, gpu = drift["preview"], drift["gpu"]
    details = [f"drift: preview could not run: {preview['error']}"] if preview.get("error") else []
    details += [f"drift: {step['op']} {step['type']} {step['name']}"
                + (f" ({', '.join(step['diffs'])})" if step["diffs"] else "") for step in preview.get("resources", [])]
    details += [f"drift: GPU layer unreadable: {gpu['error']}"] if gpu.get("error") else []
    return details + [f"drift: GPU layer: {problem}" for problem in gpu.get("problems", [])]


def now_utc() -> datetime:
    return datetime.now(timezone.utc)
