"""Judge the program's output against upstream: Kubernetes API schemas, chart default values, CRD schemas.

Upstream data is read from ../shared/upstream (never copied into the project); checks skip, saying why, where it is
absent. Each snapshot was taken at one upstream version (../shared/upstream/MANIFEST.md): a matrix pin that differs
from it carries a `checkedAgainst` note, so a bump cannot pass these checks unnoticed."""
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from ncp.offline.bump_checks import (
    DERIVED_SNAPSHOTS, SNAPSHOT_OF, UNPINNED_SNAPSHOTS, Snapshot, derived_snapshot_problems, parse_manifest,
    snapshot_problems,
)
from ncp.readmodel.recorder import run_program, run_stack_file
from tests.support.synthetic import secret_keys, site_config
from ncp.plan.catalog import SnapshotNote, load_matrix, load_signals, profile_names

MATRIX = load_matrix()
# Release name -> folder under shared/upstream holding that chart's values.yaml and Chart.yaml.
UPSTREAM_CHART_DIRS = {"gpu-operator": "gpu-operator", "network-operator": "network-operator",
                       "kai-scheduler": "kai-scheduler", "grove": "grove", "nvsentinel": "nvsentinel",
                       "dynamo-platform": "dynamo/platform"}
# Subcharts whose own values.yaml is in shared/upstream: (release, subchart key) -> folder.
UPSTREAM_SUBCHART_DIRS = {("dynamo-platform", "dynamo-operator"): "dynamo/operator"}
# apiVersion/kind -> CRD file under shared/upstream.
UPSTREAM_CRDS = {
    ("nvidia.com/v1", "ClusterPolicy"): "gpu-operator/nvidia.com_clusterpolicies.yaml",
    ("mellanox.com/v1alpha1", "NicClusterPolicy"): "network-operator/mellanox.com_nicclusterpolicies.yaml",
    ("nv-ipam.nvidia.com/v1alpha1", "IPPool"): "network-operator/005-nv-ipam.nvidia.com_ippools.yaml",
    ("scheduling.run.ai/v2", "Queue"): "kai-scheduler/scheduling.run.ai_queues.yaml",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheus-operator/monitoring.coreos.com_prometheusrules.yaml",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "prometheus-operator/monitoring.coreos.com_servicemonitors.yaml",
    ("monitoring.coreos.com/v1", "PodMonitor"): "prometheus-operator/monitoring.coreos.com_podmonitors.yaml",
    # The shared copy is the 1.5.0 CRD (v1alpha1 served, v1beta1 stored), the pinned dynamoPlatform version.
    ("nvidia.com/v1alpha1", "DynamoGraphDeployment"): "dynamo/nvidia.com_dynamographdeployments.yaml",
    ("inference.networking.k8s.io/v1", "InferencePool"):
        "gateway-api-inference-extension/inference.networking.k8s.io_inferencepools.yaml",
}
BUILT_IN_GROUPS = {"", "apps", "batch", "policy", "autoscaling", "rbac.authorization.k8s.io", "networking.k8s.io",
                   "scheduling.k8s.io", "storage.k8s.io", "apiextensions.k8s.io",
                   # the tenant admission policies: the real kube-apiserver judges them (test_hostile_tenant_e2e.py)
                   "admissionregistration.k8s.io"}
# Custom resources with no upstream schema in shared/upstream, and why.
NO_UPSTREAM_SCHEMA = {
    "NetworkAttachmentDefinition": "the NAD CRD (k8s.cni.cncf.io) is installed by Multus; no copy in shared/upstream",
    "NodeFeatureRule": "NFD's CRD (nfd.k8s-sigs.io, from the GPU Operator's NFD subchart) has no copy in "
                       "shared/upstream",
    "ClusterTopologyBinding": "Grove's ClusterTopologyBinding CRD (grove.io) has no copy in shared/upstream",
    "ClusterImagePolicy": "the Sigstore policy-controller's CRD (policy.sigstore.dev) has no copy in shared/upstream; "
                          "its fields are checked against the CRD as read (tests/test_image_signatures.py)",
    "HTTPRoute": "Gateway API's HTTPRoute CRD (gateway.networking.k8s.io) has no copy in shared/upstream; routes are "
                 "validated against the e2e stand-in tests/e2e/crds/httproutes.yaml (tests/test_gateway_routes.py)",
}
# Value keys upstream documents only as a commented-out line of values.yaml: (release, key path) -> that line.
COMMENTED_UPSTREAM_KEYS = {
    ("nvsentinel", ("podMonitor", "labels")): "# labels: {}  # Additional labels for the PodMonitor resource",
}


@pytest.fixture(scope="module")
def snapshots(upstream: Path) -> dict:
    return parse_manifest((upstream / "MANIFEST.md").read_text())


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


def _documented_in_comment(release: str, path: tuple, values_text: str) -> bool:
    return any(path[:len(prefix)] == prefix and line in values_text
               for (name, prefix), line in COMMENTED_UPSTREAM_KEYS.items() if name == release)


def test_every_helm_value_key_exists_upstream(recordings, upstream: Path, snapshots: dict):
    missing, checked = [], 0
    for recording in recordings:
        for release, registration in recording.releases().items():
            folder = UPSTREAM_CHART_DIRS.get(release)
            if folder is None:
                continue  # kube-prometheus-stack: a local decision, not an NVIDIA chart in shared/upstream
            at = snapshots[folder.split("/")[0]].version
            values_text = (upstream / folder / "values.yaml").read_text()
            defaults = yaml.safe_load(values_text)
            chart = yaml.safe_load((upstream / folder / "Chart.yaml").read_text())
            subcharts = {d.get("alias") or d["name"] for d in chart.get("dependencies", [])}
            for path in _values_paths(registration.inputs["values"]):
                checked += 1
                subchart = UPSTREAM_SUBCHART_DIRS.get((release, path[0]))
                if subchart and _upstream_has(yaml.safe_load((upstream / subchart / "values.yaml").read_text()),
                                              path[1:]):
                    continue  # a key of the subchart's own values.yaml (the parent overrides only some)
                if path[0] in subcharts and path[0] not in defaults:
                    continue  # a subchart's own values: its values.yaml is not in shared/upstream
                if not _upstream_has(defaults, path) and not _documented_in_comment(release, path, values_text):
                    missing.append(f"{release} (snapshot {at}): {'.'.join(path)}")
    assert checked > 50
    assert not missing, "Helm value keys that upstream charts do not have:\n" + "\n".join(sorted(set(missing)))


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


def test_custom_resources_validate_against_upstream_crds(recordings, upstream: Path, snapshots: dict):
    checked, unknown = set(), set()
    for recording in recordings:
        for registration in recording.resources:
            kind = registration.inputs.get("kind")
            api_version = registration.inputs.get("apiVersion", "")
            key = (api_version, kind)
            if key in UPSTREAM_CRDS:
                schema = _crd_schema(upstream, UPSTREAM_CRDS[key], api_version)
                instance = {k: v for k, v in registration.inputs.items()
                            if k in ("apiVersion", "kind", "metadata", "spec")}
                at = snapshots[UPSTREAM_CRDS[key].split("/")[0]].version
                try:
                    _validate(instance, schema)
                except jsonschema.ValidationError as error:
                    raise AssertionError(f"{registration.urn} against {UPSTREAM_CRDS[key]} (snapshot {at}): "
                                         f"{error.message} at {list(error.absolute_path)}") from error
                checked.add(kind)
            elif registration.custom and api_version and api_version.split("/")[0] not in BUILT_IN_GROUPS | {"v1"}:
                unknown.add(kind)
    assert {"NicClusterPolicy", "IPPool", "Queue", "PrometheusRule", "PodMonitor", "DynamoGraphDeployment",
            "InferencePool"} <= checked
    assert unknown <= set(NO_UPSTREAM_SCHEMA), \
        f"custom resources with no schema check: {unknown - set(NO_UPSTREAM_SCHEMA)}"


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


def test_commented_key_exception_is_narrow(upstream: Path):
    """A key documented only in a comment passes for its own release and path, nothing else."""
    text = (upstream / "nvsentinel" / "values.yaml").read_text()
    assert _documented_in_comment("nvsentinel", ("podMonitor", "labels", "release"), text)
    assert not _documented_in_comment("nvsentinel", ("podMonitor", "labelz", "release"), text)
    assert not _documented_in_comment("grove", ("podMonitor", "labels", "release"), text)
    assert not _documented_in_comment("nvsentinel", ("podMonitor", "labels", "release"), text.replace("# labels:", "#"))


def test_dcgm_metric_names_exist_in_exporter_defaults(upstream: Path):
    counters = set()
    for line in (upstream / "dcgm-exporter" / "default-counters.csv").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            counters.add(line.split(",")[0].strip())
    used = set(load_signals()["dcgm"].metrics.values())
    assert used <= counters, f"not exported by default: {used - counters}"


# --- the snapshots' versions: a pin that differs from the snapshot its checks read says so --------------------------

def test_every_pin_equals_its_upstream_snapshot_or_says_why(snapshots: dict):
    assert set(SNAPSHOT_OF.values()) <= set(snapshots), "SNAPSHOT_OF names a folder MANIFEST.md does not list"
    assert all(snapshots[folder].version for folder in SNAPSHOT_OF.values())
    problems = snapshot_problems(MATRIX, snapshots)
    assert not problems, "\n".join(problems)


def test_every_snapshot_is_tied_to_a_pin_or_says_why(snapshots: dict, upstream: Path):
    """Each folder of MANIFEST.md is read for a matrix pin (SNAPSHOT_OF), for the component a pinned chart deploys
    (DERIVED_SNAPSHOTS, checked against the versions its note was written for) or for no pin (UNPINNED_SNAPSHOTS)."""
    tied = set(SNAPSHOT_OF.values()) | set(DERIVED_SNAPSHOTS) | set(UNPINNED_SNAPSHOTS)
    assert set(snapshots) <= tied, f"snapshots no pin accounts for: {sorted(set(snapshots) - tied)}"
    problems = derived_snapshot_problems(MATRIX, snapshots, upstream)
    assert not problems, "\n".join(problems)


def test_a_bump_of_a_chart_deploying_a_snapshot_component_fails_naming_the_matrix_key(snapshots: dict,
                                                                                    upstream: Path):
    [problem] = derived_snapshot_problems(_with(MATRIX, "gpuOperator", version="v99.0.0"), snapshots, upstream)
    assert problem.startswith("data/compatibility-matrix.yaml components.gpuOperator.version v99.0.0 deploys "
                              "dcgm-exporter ")
    assert "data/upstream-snapshots.yaml derivedSnapshots" in problem


def _with(matrix, name: str, **update):
    section = "components" if name in matrix.components else "workloads"
    entries = getattr(matrix, section)
    return matrix.model_copy(update={section: {**entries, name: entries[name].model_copy(update=update)}})


def test_a_bump_without_a_note_fails_naming_the_matrix_key(snapshots: dict):
    at = snapshots["gpu-operator"].version
    bumped = _with(MATRIX, "gpuOperator", version="v99.0.0", checked_against=None)
    assert snapshot_problems(bumped, snapshots) == [
        "data/compatibility-matrix.yaml components.gpuOperator.version: v99.0.0 differs from the upstream snapshot "
        f"the checks read (shared/upstream/gpu-operator, {at} per MANIFEST.md): write `checkedAgainst: {{pinned: "
        f"v99.0.0, snapshot: {at}, reason: <why the pin differs from the snapshot the checks read, and what they "
        "still prove>}`"]


@pytest.mark.parametrize("name", [name for name in SNAPSHOT_OF if name in {**MATRIX.components, **MATRIX.workloads}])
def test_a_bump_past_a_note_fails_naming_the_matrix_key(snapshots: dict, name: str):
    pin = {**MATRIX.components, **MATRIX.workloads}[name]
    note = pin.checked_against or SnapshotNote(pinned=pin.version, snapshot=snapshots[SNAPSHOT_OF[name]].version,
                                                reason="a note written for the pin before the bump")
    [problem] = snapshot_problems(_with(MATRIX, name, version=pin.version + "-bumped", checked_against=note), snapshots)
    section = "components" if name in MATRIX.components else "workloads"
    assert problem.startswith(f"data/compatibility-matrix.yaml {section}.{name}.checkedAgainst: written for pin "
                              f"{pin.version} against snapshot {note.snapshot}, but the pin is {pin.version}-bumped")
    assert f"pinned: {pin.version}-bumped" in problem


def test_a_note_on_a_pin_equal_to_its_snapshot_must_go(snapshots: dict):
    at = snapshots["gpu-operator"].version
    note = SnapshotNote(pinned="v1.0.0", snapshot=at, reason="a note left over from an older pin")
    stale = _with(MATRIX, "gpuOperator", version=at, checked_against=note)
    assert snapshot_problems(stale, snapshots) == [
        f"data/compatibility-matrix.yaml components.gpuOperator.checkedAgainst: version {at} is the "
        "snapshot's version: remove the note"]


def test_a_new_matrix_entry_must_name_its_snapshot(snapshots: dict):
    extra = MATRIX.model_copy(update={"workloads": {**MATRIX.workloads, "newTool": MATRIX.workloads["aiperf"]}})
    assert snapshot_problems(extra, snapshots) == [
        "data/compatibility-matrix.yaml workloads.newTool: no upstream snapshot is named for it: add it to "
        "snapshotOf or noSnapshot in data/upstream-snapshots.yaml"]


MANIFEST_SAMPLE = """# header
| local path | upstream repository | upstream path | commit / version | size (bytes) |
|---|---|---|---|---|
| a/values.yaml | o/a | v.yaml | commit 0123456789abcdef (main; `v1.2.0-3-g0123456`); byte-identical to tag v1.2.0 | 1 |
| a/Chart.yaml | o/a | c.yaml | same commit; `version: v1.0.0-devel` (placeholder; tag v1.2.0 has the same file) | 1 |
| b/values.yaml | o/b | v.yaml | fork main 2a6da14c; chart 1.5.0; identical to tag 1.5.0 | 1 |
| b/crd.yaml | o/b | crd.yaml | same; last change df7deed0d | 1 |
| c/x.yaml | o/c | x.yaml | upstream commit 2083bfa9ad405e8bbd626beef6d04729aafbba23 | 1 |
| d/x.yaml | o/d | x.yaml | **tag v1.5.0** (df9f8909fe06fe2dfd4a6fc0bd0c01a0acabf849) | 1 |

| wanted | status |
|---|---|
| e/x.yaml | missing |
"""


def test_manifest_parse_reads_each_snapshots_version():
    """A release tag counts as the snapshot's version only when every file of the snapshot is stated identical."""
    assert parse_manifest(MANIFEST_SAMPLE) == {
        "a": Snapshot("v1.2.0-3-g0123456", frozenset({"v1.2.0"})),
        "b": Snapshot("1.5.0", frozenset()),
        "c": Snapshot("commit 2083bfa9", frozenset()),
        "d": Snapshot("v1.5.0", frozenset()),
    }
