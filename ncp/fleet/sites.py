"""Which sites make the fleet: every Pulumi.<stack>.yaml of the project, or the sites a fleet file names.

    # fleet.yaml
    waveSize: 2                     # sites per wave after the canary wave (default 2)
    evidenceMaxAgeDays: 7           # evidence older than this does not open the next wave (default 7)
    # plan-upgrade reads the revisions of the git repository that holds this file
    sites:
      - stack: lab                  # the Pulumi stack name
        file: Pulumi.lab.yaml       # optional: the stack file, relative to this file (default: Pulumi.<stack>.yaml
                                    # at the top of the repository)
        kubeconfig: ~/.kube/lab     # optional: enables drift (live preview, GPU layer)
        context: lab-admin          # optional: the kubeconfig context
        canary: true                # optional: goes in the first wave
        risk: 0                     # optional: order inside an environment (lower first)
        evidenceIndex: sites/lab/evidence/index.yaml   # optional: default sites/<stack>/evidence/index.yaml
"""
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from ncp.plan.catalog import ROOT
from ncp.plan.errors import ConfigError, Problem

SITE_FIELDS = {"stack", "file", "kubeconfig", "context", "canary", "risk", "evidenceIndex"}
FLEET_FIELDS = {"waveSize", "evidenceMaxAgeDays", "sites"}
DEFAULT_WAVE_SIZE, DEFAULT_EVIDENCE_MAX_AGE_DAYS = 2, 7


@dataclass(frozen=True)
class Site:
    stack: str
    file: Path
    kubeconfig: Optional[str] = None
    context: Optional[str] = None
    canary: bool = False
    risk: int = 0
    evidence_index: Optional[str] = None


@dataclass(frozen=True)
class Fleet:
    sites: tuple[Site, ...]
    source: str
    wave_size: int = DEFAULT_WAVE_SIZE
    evidence_max_age_days: int = DEFAULT_EVIDENCE_MAX_AGE_DAYS
    root: Path = field(default=ROOT)


def project_fleet(root: Path = ROOT) -> Fleet:
    """Every Pulumi.<stack>.yaml beside Pulumi.yaml."""
    files = sorted(root.glob("Pulumi.*.yaml"))
    return Fleet(tuple(Site(path.name[len("Pulumi."):-len(".yaml")], path) for path in files),
                 f"the stack files of {root}", root=root)


def _resolve(value: str, folder: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else folder / path


def _site(index: int, entry: Any, source: str, folder: Path, root: Path) -> tuple[Optional[Site], list[Problem]]:
    at = f"{source}: sites[{index}]"
    if not isinstance(entry, dict) or not isinstance(entry.get("stack"), str) or not entry["stack"].strip():
        return None, [Problem(at, "is not a site with a `stack` name", "write {stack: <name>, ...}")]
    problems = [Problem(f"{at}.{key}", "is not a site field", f"use only: {', '.join(sorted(SITE_FIELDS))}")
                for key in sorted(set(entry) - SITE_FIELDS)]
    stack = entry["stack"]
    file = _resolve(entry["file"], folder) if entry.get("file") else root / f"Pulumi.{stack}.yaml"
    if not file.is_file():
        problems.append(Problem(f"{at}.file", f"{file} does not exist",
                                "name the site's stack file (relative to the fleet file) or create the stack"))
    risk = entry.get("risk", 0)
    if not isinstance(risk, int) or isinstance(risk, bool):
        problems.append(Problem(f"{at}.risk", f"is {risk!r}, not a whole number", "lower runs earlier: e.g. 0"))
    if not isinstance(entry.get("canary", False), bool):
        problems.append(Problem(f"{at}.canary", "is not true or false", "canary: true puts the site in wave 1"))
    kubeconfig = entry.get("kubeconfig")
    if problems:
        return None, problems
    return Site(stack, file, str(_resolve(kubeconfig, folder)) if kubeconfig else None, entry.get("context"),
                entry.get("canary", False), risk,
                str(_resolve(entry["evidenceIndex"], folder)) if entry.get("evidenceIndex") else None), []


def _whole(document: dict, key: str, default: int, source: str) -> tuple[int, list[Problem]]:
    value = document.get(key, default)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value, []
    return default, [Problem(f"{source}: {key}", f"is {value!r}, not a whole number of at least 1",
                             f"e.g. {key}: {default}")]


def repository_of(folder: Path) -> Path:
    """The git work tree holding `folder` (a fleet file's repository: plan-upgrade reads its revisions), else the
    folder itself."""
    result = subprocess.run(["git", "-C", str(folder), "rev-parse", "--show-toplevel"], capture_output=True,
                            text=True)
    return Path(result.stdout.strip()) if result.returncode == 0 else folder


def read_fleet(path: Path) -> Fleet:
    """The fleet a fleet file names; a ConfigError names the file and key of each problem (exit 2)."""
    source = str(path)
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(source, [Problem(source, f"cannot be read ({error})", "name a readable fleet file")]) \
            from None
    except yaml.YAMLError as error:
        raise ConfigError(source, [Problem(source, f"is not valid YAML: {error}", "fix the YAML")]) from None
    if not isinstance(document, dict) or not isinstance(document.get("sites"), list) or not document["sites"]:
        raise ConfigError(source, [Problem(source, "has no `sites:` list", "list the sites: sites: [{stack: lab}]")])
    problems = [Problem(f"{source}: {key}", "is not a fleet field", f"use only: {', '.join(sorted(FLEET_FIELDS))}")
                for key in sorted(set(document) - FLEET_FIELDS)]
    wave_size, found = _whole(document, "waveSize", DEFAULT_WAVE_SIZE, source)
    max_age, more = _whole(document, "evidenceMaxAgeDays", DEFAULT_EVIDENCE_MAX_AGE_DAYS, source)
    problems += found + more
    sites, root = [], repository_of(path.resolve().parent)
    for index, entry in enumerate(document["sites"]):
        site, found = _site(index, entry, source, path.parent, root)
        problems += found
        sites += [site] if site else []
    names = [site.stack for site in sites]
    problems += [Problem(f"{source}: sites", f"names the stack {name} twice", "list each site once")
                 for name in sorted({n for n in names if names.count(n) > 1})]
    if problems:
        raise ConfigError(source, problems)
    return Fleet(tuple(sites), source, wave_size, max_age, root)
