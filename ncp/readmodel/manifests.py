"""The core Kubernetes manifests of a recorded run, as the API server would receive them: what scanners judge and
what the RBAC e2e applies. Helm releases are left out (their charts render in the cluster, not here)."""
from pathlib import Path

import yaml

from ncp.readmodel.recorder import Recording

# Top-level fields of the built-in kinds the program creates (everything else in `inputs` is Pulumi's own).
FIELDS = ("apiVersion", "kind", "metadata", "spec", "data", "stringData", "type", "value", "globalDefault",
          "description", "preemptionPolicy", "roleRef", "subjects", "automountServiceAccountToken",
          "imagePullSecrets", "rules")


def as_written(value):
    """The engine's wire format carries every number as a double: 1000.0 back to 1000, as the user wrote it."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: as_written(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_written(v) for v in value]
    return value


def core_manifests(recording: Recording) -> list[dict]:
    manifests = []
    for registration in recording.resources:
        if not registration.custom or not registration.type.startswith("kubernetes:"):
            continue
        if registration.type.startswith("kubernetes:helm.sh"):
            continue
        manifests.append({k: as_written(v) for k, v in registration.inputs.items() if k in FIELDS})
    return manifests


def write_manifests(recording: Recording, directory: Path) -> list[Path]:
    """One file per object (scanners report per file), named kind-namespace-name.yaml."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for manifest in core_manifests(recording):
        meta = manifest.get("metadata", {})
        path = directory / f"{manifest['kind']}-{meta.get('namespace', '_')}-{meta['name']}.yaml".lower()
        path.write_text(yaml.safe_dump(manifest, sort_keys=False))
        paths.append(path)
    return paths
