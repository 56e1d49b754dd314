"""Run trivy config, kube-score and checkov on rendered manifests; every finding as (scanner, check, object)."""
import fnmatch
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import yaml

from ncp.readmodel.manifests import write_manifests
from ncp.readmodel.recorder import Recording

ROOT = Path(__file__).resolve().parents[1]
BASELINE_FILE = ROOT / "data" / "scanner-baseline.yaml"
CHECKOV = ROOT / ".venv-scanners" / "bin" / "checkov"
KUBE_SCORE_FAILING = {1, 5}  # kube-score grades: 1 CRITICAL, 5 WARNING (7 almost ok, 10 ok)


@dataclass(frozen=True, order=True)
class Finding:
    scanner: str
    check: str
    object: str  # Kind/namespace/name

    def __str__(self) -> str:
        return f"{self.scanner} {self.check} {self.object}"


def engine_bin() -> Optional[Path]:
    """Where tools/e2e/bootstrap.sh puts kube-score and trivy (NCP_ENGINE_BIN overrides, as for the control plane)."""
    if os.environ.get("NCP_ENGINE_BIN"):
        return Path(os.environ["NCP_ENGINE_BIN"])
    result = subprocess.run(["bash", str(ROOT / "tools" / "e2e" / "bootstrap.sh"), "--print-bin"], capture_output=True,
                            text=True)
    return Path(result.stdout.strip()) if result.returncode == 0 else None


def render(recording: Recording, directory: Path) -> dict[str, str]:
    """Write the manifests; file name -> Kind/namespace/name."""
    index = {}
    for path in write_manifests(recording, directory):
        manifest = yaml.safe_load(path.read_text())
        meta = manifest["metadata"]
        index[path.name] = f"{manifest['kind']}/{meta.get('namespace', '')}/{meta['name']}"
    return index


def _run(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if result.returncode not in (0, 1):  # 1: findings
        raise AssertionError(f"{command[0]} failed ({result.returncode}): {result.stderr[-2000:]}")
    return result.stdout


def kube_score(binary: Path, directory: Path, index: dict[str, str]) -> set[Finding]:
    files = sorted(str(directory / name) for name in index)
    findings = set()
    for item in json.loads(_run([str(binary), "score", "--output-format", "json", *files])):
        key = f"{item['type_meta']['kind']}/{item['object_meta'].get('namespace') or ''}/{item['object_meta']['name']}"
        for check in item["checks"]:
            if check["grade"] in KUBE_SCORE_FAILING and not check["skipped"]:
                findings.add(Finding("kube-score", check["check"]["id"], key))
    return findings


def checkov(binary: Path, directory: Path) -> set[Finding]:
    report = json.loads(_run([str(binary), "-d", str(directory), "--framework", "kubernetes", "--output", "json",
                              "--quiet", "--compact", "--skip-download"]) or "{}")
    reports = report if isinstance(report, list) else [report]
    findings = set()
    for part in reports:
        for check in part.get("results", {}).get("failed_checks", []):
            kind, namespace, name = check["resource"].split(".", 2)
            namespace = "" if namespace == "default" else namespace  # checkov's name for cluster scope
            findings.add(Finding("checkov", check["check_id"], f"{kind}/{namespace}/{name}"))
    return findings


def trivy(binary: Path, directory: Path, index: dict[str, str], cache: Path) -> set[Finding]:
    report = json.loads(_run([str(binary), "config", "--quiet", "--format", "json", "--skip-check-update",
                              "--cache-dir", str(cache), str(directory)]))
    findings = set()
    for result in report.get("Results") or []:
        for misconfiguration in result.get("Misconfigurations") or []:
            if misconfiguration.get("Status") == "FAIL":
                findings.add(Finding("trivy", misconfiguration["ID"], index[Path(result["Target"]).name]))
    return findings


@dataclass(frozen=True)
class Accepted:
    scanner: str
    check: str
    objects: tuple[str, ...]  # fnmatch patterns over Kind/namespace/name
    reason: str

    def covers(self, finding: Finding) -> bool:
        return (finding.scanner, finding.check) == (self.scanner, self.check) and any(
            fnmatch.fnmatchcase(finding.object, pattern) for pattern in self.objects)


def load_baseline() -> list[Accepted]:
    entries = yaml.safe_load(BASELINE_FILE.read_text())["accepted"]
    return [Accepted(e["scanner"], e["check"], tuple(e["objects"]), e["reason"]) for e in entries]


def outside_baseline(findings: set[Finding], baseline: list[Accepted]) -> list[Finding]:
    return sorted(f for f in findings if not any(entry.covers(f) for entry in baseline))
