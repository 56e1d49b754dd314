"""Run trivy config, kube-score and checkov on rendered manifests; every finding as (scanner, check, object)."""
import fnmatch
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import yaml

from ncp.offline.dgd_pods import dgd_pod_manifests
from ncp.readmodel.manifests import core_manifests, write_manifests
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
    """Write the manifests, and each DGD service's pod as the operator makes it (ncp/offline/dgd_pods.py);
    file name -> Kind/namespace/name."""
    index = {}
    for path in write_manifests(recording, directory):
        manifest = yaml.safe_load(path.read_text())
        meta = manifest["metadata"]
        index[path.name] = f"{manifest['kind']}/{meta.get('namespace', '')}/{meta['name']}"
    for manifest in dgd_pod_manifests(recording):
        meta = manifest["metadata"]
        path = directory / f"dgd-pod-{meta['namespace']}-{meta['name']}.yaml".lower()
        path.write_text(yaml.safe_dump(manifest, sort_keys=False))
        index[path.name] = f"{manifest['kind']}/{meta['namespace']}/{meta['name']}"
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
class StackFacts:
    """What a baseline reason may rest on, read from one stack's rendered objects: its environment, and per
    namespace its labels, its LimitRange defaults and the tenant admission policies bound to it."""
    environment: str
    namespace_labels: dict[str, dict[str, str]]
    limit_defaults: dict[str, set[str]]  # namespace -> resources with both default and defaultRequest
    bindings: dict[str, list[dict]]      # policy name -> binding namespaceSelectors
    images: dict[str, list[str]]         # Kind/namespace/name -> the images of its pod template

    @classmethod
    def of(cls, recording: Recording, environment: str) -> "StackFacts":
        labels, defaults, bindings, images = {}, {}, {}, {}
        for manifest in [*core_manifests(recording), *dgd_pod_manifests(recording)]:
            meta, spec = manifest.get("metadata", {}), manifest.get("spec") or {}
            pod = ((spec.get("template") or {}).get("spec") or {})
            key = f"{manifest['kind']}/{meta.get('namespace', '')}/{meta['name']}"
            images[key] = [c["image"] for c in pod.get("containers", []) + pod.get("initContainers", [])]
            if manifest["kind"] == "Namespace":
                labels[meta["name"]] = meta.get("labels", {})
            elif manifest["kind"] == "LimitRange":
                for limit in spec.get("limits", []):
                    defaults.setdefault(meta["namespace"], set()).update(
                        set(limit.get("default", {})) & set(limit.get("defaultRequest", {})))
            elif manifest["kind"] == "ValidatingAdmissionPolicyBinding" and "Deny" in spec.get("validationActions", []):
                bindings.setdefault(spec["policyName"], []).append(
                    spec.get("matchResources", {}).get("namespaceSelector", {}))
        return cls(environment, labels, defaults, bindings, images)

    def _selects(self, selector: dict, namespace: str) -> bool:
        labels = self.namespace_labels.get(namespace, {})
        if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
            return False
        for expression in selector.get("matchExpressions", []):
            present, key = expression["key"] in labels, expression["key"]
            if {"Exists": not present, "DoesNotExist": present, "In": labels.get(key) not in expression.get(
                    "values", []), "NotIn": labels.get(key) in expression.get("values", [])}[expression["operator"]]:
                return False
        return True

    def unmet(self, holds: dict, key: str) -> list[str]:
        """The conditions of `holds` that are false for the object `key` (Kind/namespace/name) in this stack."""
        namespace = key.split("/")[1]
        checks = {
            "imagesBy": lambda want: want == ("digest",) and all("@sha256:" in i for i in self.images.get(key, [])),
            "environments": lambda want: self.environment in want,
            "podSecurity": lambda want: self.namespace_labels.get(namespace, {}).get(
                "pod-security.kubernetes.io/enforce") in want,
            "limitRangeDefaults": lambda want: set(want) <= self.limit_defaults.get(namespace, set()),
            "admission": lambda want: all(any(self._selects(selector, namespace) for selector in
                                              self.bindings.get(policy, [])) for policy in want),
        }
        unknown = set(holds) - set(checks)
        if unknown:
            raise ValueError(f"{BASELINE_FILE}: unknown condition(s) {sorted(unknown)}; known: {sorted(checks)}")
        return [f"{key}: {want}" for key, want in holds.items() if not checks[key](want)]


@dataclass(frozen=True)
class Accepted:
    scanner: str
    check: str
    objects: tuple[str, ...]  # fnmatch patterns over Kind/namespace/name
    reason: str
    holds: tuple[tuple[str, tuple[str, ...]], ...] = ()  # what the reason rests on, checked per stack and object

    def matches(self, finding: Finding) -> bool:
        return (finding.scanner, finding.check) == (self.scanner, self.check) and any(
            fnmatch.fnmatchcase(finding.object, pattern) for pattern in self.objects)

    def unmet(self, finding: Finding, facts: StackFacts) -> list[str]:
        return facts.unmet(dict(self.holds), finding.object)

    def covers(self, finding: Finding, facts: Optional[StackFacts] = None) -> bool:
        return self.matches(finding) and (facts is None or not self.unmet(finding, facts))


def load_baseline() -> list[Accepted]:
    entries = yaml.safe_load(BASELINE_FILE.read_text())["accepted"]
    return [Accepted(e["scanner"], e["check"], tuple(e["objects"]), e["reason"],
                     tuple((k, tuple(v)) for k, v in (e.get("holds") or {}).items())) for e in entries]


def outside_baseline(findings: set[Finding], baseline: list[Accepted],
                     facts: Optional[StackFacts] = None) -> list[str]:
    """Findings no entry accepts in this stack; an entry whose pattern matches but whose conditions do not hold
    here is named with them (its reason is untrue for this stack)."""
    out = []
    for finding in sorted(findings):
        if any(entry.covers(finding, facts) for entry in baseline):
            continue
        untrue = [f"{entry.check} entry rests on {entry.unmet(finding, facts)}" for entry in baseline
                  if facts is not None and entry.matches(finding)]
        out.append(str(finding) + (f" (untrue here: {'; '.join(untrue)})" if untrue else ""))
    return out
