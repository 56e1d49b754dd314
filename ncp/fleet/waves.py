"""`ncp fleet plan-upgrade`: the waves in which a matrix change reaches the sites, and running one of them.

The change is the compatibility matrix at the target revision against the one the fleet's checkout holds (the
versions the sites run). A site is touched when it deploys a changed chart. Waves: the canary sites first (`canary:
true` in the fleet file, else the first site in order), then the others by environment (lab, staging, prod: an
environment's sites never share a wave with the next one's), by `risk`, by name, `waveSize` at a time. Wave N opens
when every site of wave N-1 was applied at the revision and has passing evidence, believed by the gates
(evidence.verify), created after that apply and younger than `evidenceMaxAgeDays`.

`--wave N --apply` exports the revision's tree (git archive, nothing checked out), and runs each site's `pulumi up`
there through the Automation API, printing the engine's progress, stopping at the first failure. Each site's result
is written to the upgrade's record (.fleet/upgrade-<revision>.json), which the next wave's gate reads.
"""
import json
import os
import subprocess
import tarfile
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Callable, Iterator, Optional

import pulumi
import yaml
from pydantic import ValidationError

from ncp.cli_exit import BAD_INPUT, FAILED_GATE, OK
from ncp.fleet.evidence_state import evidence_state, parse_time
from ncp.fleet.sites import Fleet, Site
from ncp.fleet.status import site_plan_of
from ncp.plan.catalog import MATRIX_FILE, ROOT, CompatibilityMatrix
from ncp.plan.errors import ConfigError

ENVIRONMENT_ORDER = ("lab", "staging", "prod")
MATRIX_PATH = MATRIX_FILE.relative_to(ROOT).as_posix()


class RevisionError(Exception):
    """A revision git cannot resolve, or whose matrix cannot be read: bad input."""


def _git(root: Path, *args: str) -> bytes:
    result = subprocess.run(["git", "-C", str(root), *args], capture_output=True)
    if result.returncode != 0:
        raise RevisionError(f"git {' '.join(args)} in {root}: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def resolve(root: Path, revision: str) -> str:
    try:
        return _git(root, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}").decode().strip()
    except RevisionError:
        raise RevisionError(f"--to {revision}: not a commit of the repository at {root}; fix: name a branch, tag or "
                            "commit (git log --oneline), and fetch it first if it is remote") from None


def _matrix(text: str, where: str) -> CompatibilityMatrix:
    try:
        return CompatibilityMatrix.model_validate(yaml.safe_load(text))
    except (yaml.YAMLError, ValidationError) as error:
        raise RevisionError(f"{where}: the compatibility matrix cannot be read: {str(error).splitlines()[0]}") \
            from None


def matrix_at(root: Path, commit: str) -> CompatibilityMatrix:
    return _matrix(_git(root, "show", f"{commit}:{MATRIX_PATH}").decode(), f"{commit[:12]}:{MATRIX_PATH}")


def matrix_changes(current: CompatibilityMatrix, target: CompatibilityMatrix) -> list[dict]:
    """Each chart whose version or image pins differ (or that appears or goes)."""
    changes = []
    for name in sorted(set(current.components) | set(target.components)):
        old, new = current.components.get(name), target.components.get(name)
        before = (old.version, old.images) if old else (None, {})
        after = (new.version, new.images) if new else (None, {})
        if before != after:
            names = sorted(set(before[1]) | set(after[1]))
            images = {image: [before[1].get(image), after[1].get(image)]
                      for image in names if before[1].get(image) != after[1].get(image)}
            changes.append({"component": name, "from": before[0], "to": after[0], "images": images})
    return changes


@dataclass
class SiteInPlan:
    site: Site
    environment: str
    touched: list[str]
    held: list[str]  # pins of touched charts: the site keeps them until the pin's deadline
    site_plan: object = None

    @property
    def order(self) -> tuple:
        return (not self.site.canary, ENVIRONMENT_ORDER.index(self.environment), self.site.risk, self.site.stack)


@dataclass
class Wave:
    number: int
    sites: list[SiteInPlan]
    gate: dict = field(default_factory=dict)
    applied: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"wave": self.number, "sites": [s.site.stack for s in self.sites],
                "environments": sorted({s.environment for s in self.sites}, key=ENVIRONMENT_ORDER.index),
                "held": {s.site.stack: s.held for s in self.sites if s.held}, "gate": self.gate,
                "applied": self.applied}


@dataclass
class UpgradePlan:
    root: Path
    revision: str
    commit: str
    changes: list[dict]
    waves: list[Wave]
    untouched: list[str]
    invalid: dict[str, str]
    record_path: Path
    record: dict

    def as_dict(self) -> dict:
        return {"to": self.revision, "commit": self.commit, "changes": self.changes,
                "waves": [wave.as_dict() for wave in self.waves], "untouched": self.untouched,
                "invalid": self.invalid, "record": str(self.record_path)}


def _placements(fleet: Fleet, changed: set[str]) -> tuple[list[SiteInPlan], list[str], dict[str, str]]:
    touched, untouched, invalid = [], [], {}
    for site in fleet.sites:
        try:
            _, _, site_plan = site_plan_of(site)
        except (ConfigError, pulumi.RunError) as error:
            invalid[site.stack] = str(error).splitlines()[0]
            continue
        charts = sorted(changed & set(site_plan.layers.charts))
        if not charts:
            untouched.append(site.stack)
            continue
        held = [f"{p.component} {p.version} until {p.until:%Y-%m-%d} (wave {p.wave})"
                for p in site_plan.version_pins if p.component in changed]
        touched.append(SiteInPlan(site, site_plan.environment.value, charts, held, site_plan))
    return sorted(touched, key=lambda s: s.order), untouched, invalid


def _waves(sites: list[SiteInPlan], size: int) -> list[list[SiteInPlan]]:
    canaries = [s for s in sites if s.site.canary] or sites[:1]
    waves: list[list[SiteInPlan]] = [canaries] if canaries else []
    current: list[SiteInPlan] = []
    for placed in (s for s in sites if s not in canaries):
        if current and (len(current) == size or current[-1].environment != placed.environment):
            waves.append(current)
            current = []
        current.append(placed)
    return waves + ([current] if current else [])


def _gate(previous: Wave, record: dict, max_age_days: int, now: datetime) -> dict:
    """Open when every site of the previous wave was applied and has fresh, believed, passing evidence since."""
    reasons = []
    applied = record.get("waves", {}).get(str(previous.number), {})
    for placed in previous.sites:
        stack = placed.site.stack
        entry = applied.get(stack)
        if not entry or entry.get("result") != "succeeded":
            reasons.append(f"{stack}: wave {previous.number} not applied there yet"
                           + (f" ({entry['result']}: {entry.get('message', '')})" if entry else ""))
            continue
        evidence = evidence_state(stack, placed.site_plan, placed.site.evidence_index, now)
        if evidence["verdict"] != "passed":
            reasons.append(f"{stack}: evidence {evidence['verdict']}" + (f" ({evidence['reason']})"
                                                                           if evidence.get("reason") else ""))
        elif parse_time(evidence["created_at"]) < parse_time(entry["appliedAt"]):
            reasons.append(f"{stack}: newest evidence ({evidence['created_at']}) predates the apply "
                           f"({entry['appliedAt']}): run the acceptance suite and write evidence")
        elif now - parse_time(evidence["created_at"]) > timedelta(days=max_age_days):
            reasons.append(f"{stack}: evidence is {evidence['age_days']} days old (evidenceMaxAgeDays "
                           f"{max_age_days})")
    return {"state": "closed" if reasons else "open", "after": previous.number, "reasons": reasons}


def read_record(path: Path, commit: str) -> dict:
    if not path.is_file():
        return {"to": commit, "waves": {}}
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise RevisionError(f"{path}: the upgrade record cannot be read ({error}); fix: restore it from where it "
                            "was kept, or remove it to plan from the start") from None
    if record.get("to") != commit:
        raise RevisionError(f"{path}: records the upgrade to {record.get('to')}, not {commit}; fix: name its own "
                            "--record for this upgrade")
    return record


def plan_upgrade(fleet: Fleet, revision: str, wave_size: int, now: datetime, pack_dir: Path,
                 record_path: Optional[Path] = None) -> UpgradePlan:
    del pack_dir  # the plan reads the sites' plans; policy is `fleet status`'s
    root = fleet.root
    commit = resolve(root, revision)
    current = _matrix((root / MATRIX_PATH).read_text(), str(root / MATRIX_PATH))
    changes = matrix_changes(current, matrix_at(root, commit))
    sites, untouched, invalid = _placements(fleet, {c["component"] for c in changes})
    record_path = record_path or root / ".fleet" / f"upgrade-{commit[:12]}.json"
    record = read_record(record_path, commit)
    waves = [Wave(number, members) for number, members in enumerate(_waves(sites, wave_size), start=1)]
    for wave in waves:
        wave.applied = record.get("waves", {}).get(str(wave.number), {})
        wave.gate = ({"state": "open", "after": None, "reasons": []} if wave.number == 1
                     else _gate(waves[wave.number - 2], record, fleet.evidence_max_age_days, now))
    return UpgradePlan(root, revision, commit, changes, waves, untouched, invalid, record_path, record)


def render_plan(plan: UpgradePlan, only: Optional[int] = None) -> str:
    lines = [f"upgrade to {plan.revision} ({plan.commit[:12]}): "
             + (", ".join(f"{c['component']} {c['from']} -> {c['to']}"
                          + "".join(f" ({i} {a} -> {b})" for i, (a, b) in c["images"].items())
                          for c in plan.changes) or "no chart or image pin changes")]
    for wave in plan.waves:
        if only is not None and wave.number != only:
            continue
        gate = wave.gate
        title = "canary" if wave.number == 1 else f"gate after wave {gate['after']}: {gate['state']}"
        lines.append(f"\nwave {wave.number} ({title}):")
        for placed in wave.sites:
            done = wave.applied.get(placed.site.stack, {})
            state = f"  [{done['result']} {done.get('appliedAt', '')}]" if done else ""
            held = f"  holds {'; '.join(placed.held)}" if placed.held else ""
            lines.append(f"  {placed.site.stack:20} {placed.environment:8} risk {placed.site.risk}  "
                         f"{', '.join(placed.touched)}{held}{state}")
        lines += [f"  closed: {reason}" for reason in gate.get("reasons", [])]
    if plan.untouched:
        lines.append(f"\nuntouched (deploy none of the changed charts): {', '.join(plan.untouched)}")
    lines += [f"not valid input, left out: {stack}: {why}" for stack, why in plan.invalid.items()]
    lines.append(f"\nrecord: {plan.record_path}")
    return "\n".join(lines)


@contextmanager
def exported_tree(root: Path, commit: str) -> Iterator[Path]:
    """The revision's files in a temporary directory (git archive: the checkout is left as it is), sharing the
    project's virtualenv."""
    with tempfile.TemporaryDirectory(prefix="ncp-fleet-") as folder:
        tree = Path(folder)
        with tarfile.open(fileobj=BytesIO(_git(root, "archive", "--format=tar", commit))) as archive:
            archive.extractall(tree, filter="data")
        venv = root / ".venv"
        if venv.exists():
            (tree / ".venv").symlink_to(venv.resolve())
        yield tree


def up_site(placed: SiteInPlan, root: Path, tree: Path, say: Callable[[str], None]) -> tuple[bool, str]:
    """One site's `pulumi up` in the exported tree through the Automation API; (succeeded, summary)."""
    from pulumi import automation as auto

    site = placed.site
    env = {"KUBECONFIG": os.path.expanduser(site.kubeconfig)} if site.kubeconfig else {}
    inside = site.file.resolve().is_relative_to(root.resolve())
    config_file = tree / site.file.resolve().relative_to(root.resolve()) if inside else site.file
    try:
        stack = auto.Stack.select(site.stack, auto.LocalWorkspace(work_dir=str(tree), env_vars=env))
        result = stack.up(on_output=lambda line: say(f"  [{site.stack}] {line.rstrip()}"), color="never",
                          config_file=str(config_file))
    except auto.errors.CommandError as error:
        lines = [line for line in str(error).splitlines() if line.strip()]
        return False, (lines[-1] if lines else repr(error))[:400]
    changes = ", ".join(f"{count} {op}" for op, count in sorted((result.summary.resource_changes or {}).items()))
    return result.summary.result == "succeeded", f"{result.summary.result}: {changes}"


def apply_wave(plan: UpgradePlan, fleet: Fleet, number: int, say: Callable[[str], None]) -> int:
    if not 1 <= number <= len(plan.waves):
        say(f"error: --wave {number}: the plan has waves 1..{len(plan.waves)}")
        return BAD_INPUT
    wave = plan.waves[number - 1]
    if wave.gate["state"] != "open":
        say(f"wave {number} is gated on wave {wave.gate['after']}, which has not passed:")
        say("\n".join(f"  - {reason}" for reason in wave.gate["reasons"]))
        return FAILED_GATE
    record = plan.record
    applied = record.setdefault("waves", {}).setdefault(str(number), {})
    with exported_tree(fleet.root, plan.commit) as tree:
        for placed in wave.sites:
            stack = placed.site.stack
            if applied.get(stack, {}).get("result") == "succeeded":
                say(f"wave {number}: {stack}: already applied at {applied[stack]['appliedAt']}")
                continue
            say(f"wave {number}: {stack}: pulumi up at {plan.commit[:12]} ({', '.join(placed.touched)})")
            started = datetime.now().astimezone().isoformat()
            succeeded, summary = up_site(placed, fleet.root, tree, say)
            applied[stack] = {"appliedAt": started, "result": "succeeded" if succeeded else "failed",
                              "message": summary}
            _save(plan.record_path, record)
            if not succeeded:
                say(f"wave {number}: {stack} failed ({summary}); the wave stops here: fix it, then run "
                    f"--wave {number} --apply again (applied sites are skipped)")
                return FAILED_GATE
            say(f"wave {number}: {stack}: {summary}")
    say(f"wave {number} applied; wave {number + 1} opens when its sites have fresh passing evidence "
        f"(record {plan.record_path})" if number < len(plan.waves) else f"wave {number} applied: the last wave")
    return OK


def _save(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
