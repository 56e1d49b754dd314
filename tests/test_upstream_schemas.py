"""Judge the program's output against upstream: Kubernetes API schemas, chart default values, CRD schemas.

Upstream data is read from ../shared/upstream (never copied into the project); checks skip, saying why, where it is
absent."""
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from offline.recorder import run_program, run_stack_file
from offline.synthetic import secret_keys, site_config
from plan.catalog import load_matrix, load_signals, profile_names

MATRIX = load_matrix()
# Release name -> folder under shared/upstream holding that chart's values.yaml and Chart.yaml.
UPSTREAM_CHART_DIRS = {"gpu-operator": "gpu-operator", "network-operator": "network-operator",
                       "kai-scheduler": "kai-scheduler", "grove": "grove", "nvsentinel": "nvsentinel",
                       "dynamo-platform": "dynamo/platform"}
# apiVersion/kind -> CRD file under shared/upstream.
UPSTREAM_CRDS = {
    ("nvidia.com/v1", "ClusterPolicy"): "gpu-operator/nvidia.com_clusterpolicies.yaml",
    ("mellanox.com/v1alpha1", "NicClusterPolicy"): "network-operator/mellanox.com_nicclusterpolicies.yaml",
    ("nv-ipam.nvidia.com/v1alpha1", "IPPool"): "network-operator/005-nv-ipam.nvidia.com_ippools.yaml",
    ("scheduling.run.ai/v2", "Queue"): "kai-scheduler/scheduling.run.ai_queues.yaml",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheus-operator/monitoring.coreos.com_prometheusrules.yaml",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "prometheus-operator/monitoring.coreos.com_servicemonitors.yaml",
    ("monitoring.coreos.com/v1", "PodMonitor"): "prometheus-operator/monitoring.coreos.com_podmonitors.yaml",
    # The shared copy is the 1.5.0 CRD (v1alpha1 still served); our pin is 1.2.1, whose v1alpha1 it extends.
    ("nvidia.com/v1alpha1", "DynamoGraphDeployment"): "dynamo/nvidia.com_dynamographdeployments.yaml",
    ("inference.networking.k8s.io/v1", "InferencePool"):
        "gateway-api-inference-extension/inference.networking.k8s.io_inferencepools.yaml",
}
BUILT_IN_GROUPS = {"", "apps", "batch", "policy", "autoscaling", "rbac.authorization.k8s.io", "networking.k8s.io",
                   "scheduling.k8s.io", "storage.k8s.io", "apiextensions.k8s.io"}
# Custom resources with no upstream schema in shared/upstream, and why.
NO_UPSTREAM_SCHEMA = {
    "NetworkAttachmentDefinition": "the NAD CRD (k8s.cni.cncf.io) is installed by Multus; no copy in shared/upstream",
    "Topology": "KAI's Topology CRD (kai.scheduler/v1alpha1) has no copy in shared/upstream",
}


def _all_recordings():
    """One composition per profile in prod (the richest environment), plus MIG and time-slicing variants."""
    recordings = []
    for profile in profile_names():
        config = site_config(profile, "prod")
        recordings.append(run_program(config, secret_keys(config), stack=f"{profile}"))
    mig = site_config("hgx-h100", "lab")
    mig["components"]["gpuOperator"] = {"mig": {"strategy": "mixed", "layout": {"3g.40gb": 1, "2g.20gb": 2}}}
    sliced = site_config("lab", "lab")
    sliced["components"] = {"gpuOperator": {"timeSlicing": {"replicas": 4}},
                            "telemetry": {"prometheusStack": {"enabled": True, "localDecision": {
                                "decision": "lab backend", "reason": "no site Prometheus in the lab"}}}}
    recordings += [run_program(mig, set(), stack="mig"), run_program(sliced, set(), stack="sliced")]
    return recordings + [run_stack_file("lab"), run_stack_file("prod")]


@pytest.fixture(scope="module")
def recordings():
    return _all_recordings()


def _manifest(registration) -> dict:
    return {k: v for k, v in registration.inputs.items() if k in ("apiVersion", "kind", "metadata", "spec", "data",
                                                                  "stringData", "type", "value", "globalDefault",
                                                                  "description", "preemptionPolicy", "roleRef",
                                                                  "subjects", "automountServiceAccountToken",
                                                                  "imagePullSecrets", "rules")}


def test_core_manifests_pass_kubernetes_schema(recordings):
    checked = 0
    for recording in recordings:
        version = recording.outputs["kubernetesVersion"] + ".0"  # the stack's target Kubernetes minor
        for registration in recording.resources:
            api_version = registration.inputs.get("apiVersion", "")
            if not registration.type.startswith("kubernetes:") or registration.type.startswith("kubernetes:helm"):
                continue
            group = api_version.split("/")[0] if "/" in api_version else ""
            if group not in BUILT_IN_GROUPS:
                continue  # custom resource: checked against its CRD below
            manifest = _manifest(registration)
            assert set(registration.inputs) <= set(manifest), f"unchecked fields in {registration.urn}"
            kubernetes_validate.validate(manifest, desired_version=version, strict=True)
            checked += 1
    assert checked > 100


def _values_paths(values, prefix=()):
    if isinstance(values, dict) and values:
        for key, value in values.items():
            yield from _values_paths(value, prefix + (key,))
    else:
        yield prefix


def _upstream_has(defaults, path) -> bool:
    node = defaults
    for key in path:
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, dict) and not node:
            return True  # a free-form map upstream (e.g. additionalLabels: {}) takes any key
        else:
            return False
    return True


def test_every_helm_value_key_exists_upstream(recordings, upstream: Path):
    missing, checked = [], 0
    for recording in recordings:
        for release, registration in recording.releases().items():
            folder = UPSTREAM_CHART_DIRS.get(release)
            if folder is None:
                continue  # kube-prometheus-stack: a local decision, not an NVIDIA chart in shared/upstream
            defaults = yaml.safe_load((upstream / folder / "values.yaml").read_text())
            chart = yaml.safe_load((upstream / folder / "Chart.yaml").read_text())
            subcharts = {d.get("alias") or d["name"] for d in chart.get("dependencies", [])}
            for path in _values_paths(registration.inputs["values"]):
                checked += 1
                if path[0] in subcharts and path[0] not in defaults:
                    continue  # a subchart's own values: its values.yaml is not in shared/upstream
                if not _upstream_has(defaults, path):
                    missing.append(f"{release}: {'.'.join(path)}")
    assert checked > 50
    assert not sorted(set(missing)), "Helm value keys that upstream charts do not have:\n" + "\n".join(sorted(set(missing)))


def _strict(schema):
    """The API server prunes unknown fields silently; reject them here so a misspelt field fails the test."""
    if isinstance(schema, dict):
        result = {k: _strict(v) for k, v in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema and not schema.get(
                "x-kubernetes-preserve-unknown-fields"):
            result["additionalProperties"] = False
        return result
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


def _validate(instance: dict, schema: dict) -> None:
    # CRD schemas are OpenAPI v3 with Go regexes: validate without checking the schema against a JSON-Schema metaschema.
    error = jsonschema.exceptions.best_match(jsonschema.Draft7Validator(_strict(schema)).iter_errors(instance))
    if error is not None:
        raise error


def _crd_schema(upstream: Path, relative: str, api_version: str) -> dict:
    crd = yaml.safe_load((upstream / relative).read_text())
    version = api_version.split("/")[-1]
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            assert entry.get("served", True), f"{relative}: {version} is not served"
            return entry["schema"]["openAPIV3Schema"]
    raise AssertionError(f"{relative} has no version {version}")


def test_custom_resources_validate_against_upstream_crds(recordings, upstream: Path):
    checked, unknown = set(), set()
    for recording in recordings:
        for registration in recording.resources:
            kind = registration.inputs.get("kind")
            api_version = registration.inputs.get("apiVersion", "")
            key = (api_version, kind)
            if key in UPSTREAM_CRDS:
                schema = _crd_schema(upstream, UPSTREAM_CRDS[key], api_version)
                instance = {k: v for k, v in registration.inputs.items() if k in ("apiVersion", "kind", "metadata", "spec")}
                _validate(instance, schema)
                checked.add(kind)
            elif registration.custom and api_version and api_version.split("/")[0] not in BUILT_IN_GROUPS | {"v1"}:
                unknown.add(kind)
    assert {"NicClusterPolicy", "IPPool", "Queue", "PrometheusRule", "PodMonitor", "DynamoGraphDeployment",
            "InferencePool"} <= checked
    assert unknown <= set(NO_UPSTREAM_SCHEMA), f"custom resources with no schema check: {unknown - set(NO_UPSTREAM_SCHEMA)}"


def test_crd_schema_check_catches_a_bad_field(upstream: Path):
    schema = _crd_schema(upstream, UPSTREAM_CRDS[("scheduling.run.ai/v2", "Queue")], "scheduling.run.ai/v2")
    with pytest.raises(jsonschema.ValidationError):
        _validate({"apiVersion": "scheduling.run.ai/v2", "kind": "Queue",
                   "spec": {"resources": {"gpu": {"quota": "all"}}}}, schema)
    with pytest.raises(jsonschema.ValidationError, match="parentQeueu"):
        _validate({"apiVersion": "scheduling.run.ai/v2", "kind": "Queue", "spec": {"parentQeueu": "root"}}, schema)


def test_values_key_check_catches_a_typo(upstream: Path):
    defaults = yaml.safe_load((upstream / "gpu-operator" / "values.yaml").read_text())
    assert _upstream_has(defaults, ("dcgmExporter", "serviceMonitor", "interval"))
    assert not _upstream_has(defaults, ("dcgmExporter", "serviceMonitr", "interval"))


def test_dcgm_metric_names_exist_in_exporter_defaults(upstream: Path):
    counters = set()
    for line in (upstream / "dcgm-exporter" / "default-counters.csv").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            counters.add(line.split(",")[0].strip())
    used = set(load_signals()["dcgm"].metrics.values())
    assert used <= counters, f"not exported by default: {used - counters}"
