"""Every guardrail passes on the real example stacks and fails on a mutation of them; missing properties never
crash a policy. Evaluation goes through pulumi-policy's own analyzer (ncp/offline/policy_check.py)."""
import hashlib
import re

import pytest
import yaml

from ncp.offline.policy_check import PackConfigError, load_pack, policy_configs
from ncp.plan.catalog import ROOT, load_matrix
from ncp.readmodel.recorder import run_program
from tests.support.synthetic import secret_keys, site_config
from tests.policy_helpers import (
    LAB_CONFIG, PROD_CONFIG, add, clone, dgd, find, find_release, gpu_job, messages, remove, set_inputs, violations,
)

TENANT = "tenant-acme-chat"


def test_pack_metadata():
    name, version, policies = load_pack()
    assert name == "ncp-inference-ra-guardrails" and version
    for policy in policies:
        assert policy.description and policy.remediation_steps, policy.name
        assert policy.framework.reference, policy.name


def test_lab_is_clean_and_advisory(lab):
    found = violations(lab, LAB_CONFIG)
    assert all(v.level == "advisory" for v in found)
    assert found == []


def test_prod_pack_config_is_mandatory():
    _, _, policies = load_pack()
    assert {level for level, _ in policy_configs(policies, PROD_CONFIG).values()} == {"mandatory"}
    assert {level for level, _ in policy_configs(policies, LAB_CONFIG).values()} == {"advisory"}


def test_pack_config_errors():
    _, _, policies = load_pack()
    with pytest.raises(PackConfigError, match="unknown policies: no-such-policy"):
        policy_configs(policies, {"no-such-policy": "mandatory"})
    with pytest.raises(PackConfigError, match="unknown config property 'requireDigest'"):
        policy_configs(policies, {"image-references": {"requireDigest": True}})


def test_lab_violation_is_advisory(lab):
    mutated = clone(lab)
    remove(mutated, find(mutated, "ConfigMap", "ncp-baseline-record"))
    found = violations(mutated, LAB_CONFIG, "hardware-profile-and-evidence")
    assert found and {v.level for v in found} == {"advisory"}


# --- a. hardware profile and evidence ----------------------------------------------------------------------------

def _record(recording):
    return find(recording, "ConfigMap", "ncp-baseline-record")


def test_hardware_profile_and_evidence(prod):
    assert messages(prod, "hardware-profile-and-evidence") == ""
    no_record = clone(prod)
    remove(no_record, _record(no_record))
    assert "no baseline record" in messages(no_record, "hardware-profile-and-evidence")
    no_evidence = clone(prod)
    record = _record(no_evidence)
    data = dict(record.wire_inputs["data"])
    data["validationEvidence"] = "null\n"
    del data["hardwareProfile"]  # a missing property
    set_inputs(record, {**record.wire_inputs, "data": data})
    text = messages(no_evidence, "hardware-profile-and-evidence")
    assert "no validation evidence path" in text and "names no hardware profile" in text


# --- b. charts pinned ------------------------------------------------------------------------------------------

def test_charts_pinned(prod):
    assert messages(prod, "charts-pinned") == ""
    drifted = clone(prod)
    release = find_release(drifted, "gpu-operator")
    set_inputs(release, {**release.wire_inputs, "version": "v25.3.0"})
    assert "compatibility matrix pins v26.7.0" in messages(drifted, "charts-pinned")
    foreign = clone(prod)
    release = find_release(foreign, "kai-scheduler")
    set_inputs(release, {**release.wire_inputs, "chart": "oci://example.com/charts/kai-scheduler"})
    pinned = load_matrix().pin("kaiScheduler").chart
    assert (f"chart kai-scheduler (kaiScheduler) is installed from oci://example.com/charts/kai-scheduler; the "
            f"compatibility matrix pins {pinned}") in messages(foreign, "charts-pinned")
    unknown = clone(prod)
    release = find_release(unknown, "kai-scheduler")
    set_inputs(release, {**release.wire_inputs, "chart": "oci://example.com/charts/other-scheduler"})
    assert "chart 'other-scheduler' is not in the compatibility matrix" in messages(unknown, "charts-pinned")


# RA: Known Limitations: "unless the partner records it as a local decision outside the reference stack"
def test_local_decision_chart_needs_record():
    config = site_config("lab")
    config.setdefault("components", {})["telemetry"] = {"prometheusStack": {"enabled": True, "localDecision": {
        "decision": "lab metrics backend", "reason": "no site Prometheus in the lab"}}}
    recording = run_program(config, secret_keys(config), stack="lab")
    assert messages(recording, "charts-pinned") == ""
    record = _record(recording)
    set_inputs(record, {**record.wire_inputs, "data": {**record.wire_inputs["data"], "localDecisions": "[]\n"}})
    assert "records no local decision" in messages(recording, "charts-pinned")


# --- d. GPU sharing ----------------------------------------------------------------------------------------------

def _gpu_values(recording, values):
    release = find_release(recording, "gpu-operator")
    set_inputs(release, {**release.wire_inputs, "values": {**release.wire_inputs["values"], **values}})


def test_mig_only_on_mig_capable_profiles(lab):
    mig_config = site_config("hgx-h200")
    mig_config["components"]["gpuOperator"] = {"mig": {"layout": {"3g.71gb": 2}}}
    assert messages(run_program(mig_config, set(), stack="mig"), "gpu-sharing") == ""
    mutated = clone(lab)
    _gpu_values(mutated, {"mig": {"strategy": "single"}})
    assert "not MIG-capable" in messages(mutated, "gpu-sharing")


# RA: Compute Service: "Smaller services may use MIG or virtualized GPU paths, but those choices must be validated"
def test_time_slicing_for_prod_serving_needs_evidence(prod):
    sliced = clone(prod)
    data = yaml.safe_dump({"version": "v1", "sharing": {"timeSlicing": {"resources": [
        {"name": "nvidia.com/gpu", "replicas": 4}]}}})
    _gpu_values(sliced, {"devicePlugin": {"config": {"create": True, "name": "x", "default": "ts",
                                                     "data": {"ts": data}}}})
    assert "needs recorded validation evidence" in messages(sliced, "gpu-sharing")
    without_serving = clone(sliced)
    for graph in [r for r in without_serving.resources if r.wire_inputs.get("kind") == "DynamoGraphDeployment"]:
        remove(without_serving, graph)
    assert messages(without_serving, "gpu-sharing") == "", "time-slicing without LLM serving is allowed"
    record = _record(sliced)
    evidence = yaml.safe_dump({"mode": "time-slicing", "validationEvidence": "s3://evidence/time-slicing/"})
    set_inputs(record, {**record.wire_inputs, "data": {**record.wire_inputs["data"], "gpuSharing": evidence}})
    assert messages(sliced, "gpu-sharing") == ""


# --- e. disaggregation needs the fabric --------------------------------------------------------------------------

# RA: Networking: "For disaggregated serving, network design must be reviewed together with serving topology."
def test_disaggregation_fabric(lab, prod):
    on_prod = clone(prod)
    add(on_prod, dgd("reasoning", TENANT, disaggregated=True))
    assert messages(on_prod, "disaggregation-fabric") == ""
    on_lab = clone(lab)
    add(on_lab, dgd("reasoning", "tenant-dev", disaggregated=True))
    text = messages(on_lab, "disaggregation-fabric")
    assert "east-west RDMA profile" in text and "Network Operator" in text
    no_queue = clone(prod)
    manifest = dgd("reasoning", TENANT, disaggregated=True)
    del manifest["metadata"]["annotations"]["nvidia.com/kai-scheduler-queue"]
    add(no_queue, manifest)
    assert "KAI queue" in messages(no_queue, "disaggregation-fabric")


# --- c. images ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("image,expected", [
    ("nvcr.io/nvidia/cuda:latest", "mutable tag latest"),
    ("nvcr.io/nvidia/cuda", "no tag or digest"),
    ("docker.io/library/busybox:1.36", "not from an allowlisted registry"),
])
def test_image_references_fail(prod, image, expected):
    mutated = clone(prod)
    job = gpu_job("bad-image", TENANT)
    job["spec"]["template"]["spec"]["containers"][0]["image"] = image
    add(mutated, job)
    assert expected in messages(mutated, "image-references")


def test_prod_serving_images_pinned_by_digest(prod):
    tagged = clone(prod)
    add(tagged, dgd("chat", TENANT))
    assert "pinned by digest" in messages(tagged, "image-references")
    assert "pinned by digest" not in messages(tagged, "image-references", LAB_CONFIG)
    pinned = clone(prod)
    add(pinned, dgd("chat", TENANT, image="nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:1.2.1@sha256:" + "a" * 64))
    assert messages(pinned, "image-references") == ""


# --- h. secrets --------------------------------------------------------------------------------------------------

# RA: Security And Compliance: "Secrets must be scoped by namespace and service account."
def test_secret_hygiene(prod):
    assert messages(prod, "secret-hygiene") == ""
    mutated = clone(prod)
    add(mutated, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "leaky", "namespace": TENANT},
                  "data": {"ngcApiKey": "nvapi-123"}})
    add(mutated, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "misplaced", "namespace": "kube-system"},
                  "type": "Opaque"})
    job = gpu_job("env-secret", TENANT)
    job["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "HF_TOKEN", "value": "hf_abc"}]
    add(mutated, job)
    add(mutated, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "empty", "namespace": TENANT}})
    text = messages(mutated, "secret-hygiene")
    assert "'ngcApiKey' looks like a credential" in text
    assert "'misplaced' is in kube-system" in text
    assert "'HF_TOKEN' holds a literal value" in text


# --- l. GPU workloads through KAI --------------------------------------------------------------------------------

def test_gpu_workloads_through_kai(prod):
    good = clone(prod)
    add(good, gpu_job("bench", TENANT, schedulerName="kai-scheduler"))
    assert messages(good, "gpu-workloads-through-kai") == ""
    bad = clone(prod)
    job = gpu_job("rogue", TENANT)
    job["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"nvidia.com/gpu": 1}}
    job["spec"]["template"]["metadata"]["labels"]["kai.scheduler/queue"] = "tenant-globex-research"
    add(bad, job)
    text = messages(bad, "gpu-workloads-through-kai")
    assert "has no nvidia.com/gpu limit" in text
    assert "schedulerName kai-scheduler" in text
    assert "not its tenant's queue 'tenant-acme-chat'" in text
    no_queue = clone(prod)
    manifest = dgd("chat", TENANT)
    del manifest["metadata"]["annotations"]["nvidia.com/kai-scheduler-queue"]
    add(no_queue, manifest)
    assert "do not name a KAI queue" in messages(no_queue, "gpu-workloads-through-kai")


# --- g. tenant isolation -----------------------------------------------------------------------------------------

def test_tenant_isolation(prod):
    assert messages(prod, "tenant-isolation") == ""
    mutated = clone(prod)
    remove(mutated, find(mutated, "NetworkPolicy", "default-deny", TENANT))
    remove(mutated, find(mutated, "ResourceQuota", "tenant-quota", TENANT))
    namespace = find(mutated, "Namespace", TENANT)
    labels = {**namespace.wire_inputs["metadata"]["labels"], "pod-security.kubernetes.io/enforce": "baseline"}
    set_inputs(namespace, {**namespace.wire_inputs,
                           "metadata": {**namespace.wire_inputs["metadata"], "labels": labels}})
    account = find(mutated, "ServiceAccount", "tenant-workload", TENANT)
    set_inputs(account, {**account.wire_inputs, "automountServiceAccountToken": True})
    add(mutated, gpu_job("escape", TENANT, hostNetwork=True, schedulerName="kai-scheduler",
                         volumes=[{"name": "root", "hostPath": {"path": "/"}}]))
    text = messages(mutated, "tenant-isolation")
    for expected in ("does not enforce Pod Security 'restricted'", "no default-deny NetworkPolicy",
                     "no ResourceQuota limiting requests.nvidia.com/gpu", "token automount off",
                     "may not use host namespaces", "may not mount hostPath"):
        assert expected in text


def test_privileged_tenant_namespace_only_with_a_recorded_reason(prod):
    """RDMA workers need IPC_LOCK as root, so their tenant namespace enforces `privileged` and says why; the pack
    accepts that exception only with the reason annotation."""
    rdma = "tenant-globex-research"
    assert find(prod, "Namespace", rdma).wire_inputs["metadata"]["labels"][
        "pod-security.kubernetes.io/enforce"] == "privileged"
    mutated = clone(prod)
    namespace = find(mutated, "Namespace", rdma)
    metadata = {k: v for k, v in namespace.wire_inputs["metadata"].items() if k != "annotations"}
    set_inputs(namespace, {**namespace.wire_inputs, "metadata": metadata})
    assert (f"tenant namespace {rdma} does not enforce Pod Security 'restricted'"
            in messages(mutated, "tenant-isolation"))


def test_privileged_tenant_namespace_only_under_admission_policies(prod):
    """`privileged` admits whatever a tenant admin creates: the pack accepts the exception only while the stack binds
    admission policies that deny in tenant namespaces (components/tenancy/admission.py)."""
    mutated = clone(prod)
    for binding in [r for r in mutated.resources if r.type.endswith("ValidatingAdmissionPolicyBinding")]:
        remove(mutated, binding)
    text = messages(mutated, "tenant-isolation")
    assert ("tenant namespace tenant-globex-research enforces Pod Security 'privileged' with no admission policy "
            "binding") in text
    assert "tenant-ncp-eval" not in text, "a restricted namespace needs no binding for this rule"


def test_privileged_tenant_container(prod):
    mutated = clone(prod)
    job = gpu_job("priv", TENANT, schedulerName="kai-scheduler")
    job["spec"]["template"]["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    add(mutated, job)
    assert "is privileged" in messages(mutated, "tenant-isolation")


# --- f. KV routing needs telemetry ---------------------------------------------------------------------------------

# RA: Cloud-Native Inference Gateway Integration: "before making cache-aware routing a production default"
def test_kv_routing_needs_telemetry(prod):
    mutated = clone(prod)
    add(mutated, dgd("chat", TENANT, router="kv"))
    text = messages(mutated, "kv-routing-telemetry")
    assert "dynamo_component_router_kv_hit_rate" in text and "no PodMonitor" in text
    add(mutated, {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
                  "metadata": {"name": "chat-serving", "namespace": TENANT,
                               "labels": {"ncp-inference.io/endpoint": "chat"}},
                  "spec": {"groups": [{"name": "g", "rules": [
                      {"record": "a", "expr": "dynamo_component_router_kv_hit_rate"},
                      {"record": "b", "expr": "dynamo_frontend_queued_requests"}]}]}})
    add(mutated, {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
                  "metadata": {"name": "chat", "namespace": TENANT, "labels": {"ncp-inference.io/endpoint": "chat"}},
                  "spec": {"selector": {}}})
    assert messages(mutated, "kv-routing-telemetry") == ""
    round_robin = clone(prod)
    add(round_robin, dgd("chat", TENANT, router="round-robin"))
    assert messages(round_robin, "kv-routing-telemetry") == ""


# --- i. storage tiers ----------------------------------------------------------------------------------------------

def _claim(name, tier, storage_class):
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": TENANT, "labels": {"ncp-inference.io/storage-tier": tier}},
            "spec": {"storageClassName": storage_class, "accessModes": ["ReadWriteMany"],
                     "resources": {"requests": {"storage": "1Ti"}}}}


# RA: Storage: "distinguish persistent model artifact storage from ephemeral cache"
def test_storage_tiers(prod):
    separated = clone(prod)
    add(separated, _claim("models", "model-artifacts", "file-models"))
    add(separated, _claim("bench", "benchmark-output", "file-bench"))
    assert messages(separated, "storage-tiers") == ""
    shared = clone(prod)
    add(shared, _claim("models", "model-artifacts", "file-shared"))
    add(shared, _claim("bench", "benchmark-output", "file-shared"))
    assert "serves several storage tiers" in messages(shared, "storage-tiers")


# --- j. model provenance -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("revision,source,expected", [
    ("main", "hf://Qwen/Qwen3-8B", "is not pinned"),
    (None, "hf://Qwen/Qwen3-8B", "is not pinned"),
    ("0123456789abcdef0123456789abcdef01234567", "http://example.com/model", "not allowlisted"),
])
# RA: Security And Compliance: "Model artifact sources should have access controls, provenance checks"
def test_model_provenance_fails(prod, revision, source, expected):
    mutated = clone(prod)
    manifest = dgd("chat", TENANT, revision=revision, source=source)
    if revision is None:
        del manifest["metadata"]["annotations"]["ncp-inference.io/model-revision"]
    add(mutated, manifest)
    assert expected in messages(mutated, "model-provenance")


def test_model_provenance_passes(prod):
    mutated = clone(prod)
    add(mutated, dgd("chat", TENANT))
    assert messages(mutated, "model-provenance") == ""


# --- k. acceptance evidence ----------------------------------------------------------------------------------------

# RA: Performance Requirements: "validate performance for each accepted service profile"
def test_acceptance_evidence(prod):
    mutated = clone(prod)
    add(mutated, dgd("chat", TENANT))
    text = messages(mutated, "acceptance-evidence")
    assert "no AIPerf benchmark Job" in text and "validation suite" in text
    assert messages(mutated, "acceptance-evidence", LAB_CONFIG) == "", "lab does not require acceptance jobs"
    bench = gpu_job("chat-aiperf", TENANT, schedulerName="kai-scheduler")
    bench["metadata"]["labels"] = {"ncp-inference.io/endpoint": "chat", "app.kubernetes.io/component": "benchmark"}
    bench["metadata"]["annotations"] = {"ncp-inference.io/acceptance-thresholds": "ttftP95Ms: 500\n"}
    add(mutated, bench)
    suite = gpu_job("isv-validation", "ncp-system")
    suite["metadata"]["labels"] = {"app.kubernetes.io/component": "validation-suite"}
    add(mutated, suite)
    assert messages(mutated, "acceptance-evidence") == ""


# --- the pack is self-contained: its data files are generated from the program's homes and checked in one place,
# tests/test_data_files.py (sync_pins) --------------------------------------------------------------------------------

def test_private_analyzer_api_still_has_the_shape_we_drive():
    from pulumi_policy import policy

    servicer = getattr(policy, "_PolicyAnalyzerServicer", None)
    assert servicer is not None, "pulumi-policy has no _PolicyAnalyzerServicer: update ncp/offline/policy_check.py"
    for method in ("Analyze", "AnalyzeStack", "Configure"):
        assert callable(getattr(servicer, method, None)), method


def test_prod_example_has_no_violations(prod):
    assert violations(prod, PROD_CONFIG) == []


# Skeletons of every kind the policies read, with nothing but identity: policies must neither crash nor invent
# violations from properties that are simply absent.
SKELETONS = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bare"}},
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bare", "namespace": "bare"}},
    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bare", "namespace": "bare"}},
    {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "bare", "namespace": "bare"}},
    {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "bare", "namespace": "bare"}},
    {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bare", "namespace": "bare"}},
    {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
     "metadata": {"name": "bare", "namespace": "bare"}},
    {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "bare", "namespace": "bare"}},
]


@pytest.mark.parametrize("policy", [p.name for p in load_pack()[2]])
def test_missing_properties_never_crash_a_policy(lab, policy):
    mutated = clone(lab)
    for manifest in SKELETONS:
        add(mutated, manifest)
    bare_graph = {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment",
                  "metadata": {"name": "bare", "namespace": "bare"}}
    add(mutated, bare_graph)
    bare_release = {"apiVersion": "helm.sh/v3", "kind": "Release", "metadata": {"name": "bare"}}
    add(mutated, bare_release, type_token="kubernetes:helm.sh/v3:Release")
    found = violations(mutated, LAB_CONFIG, policy)
    # What a bare object can legitimately violate: unpinned model on a graph, an unpinned chart.
    expected = {"model-provenance": ("bare: model revision None is not pinned", "bare: model source None is not"),
                "charts-pinned": ("is not in the compatibility matrix",)}
    for violation in found:
        assert policy in expected and any(text in violation.message for text in expected[policy]), violation.message


def test_pack_requirements_are_the_programs_pins():
    """scripts/setup.sh links policy/venv to .venv, so the pack runs with the program's pins (pyproject.toml, locked
    in constraints.txt): the three must agree."""
    def pins(lines):
        lines = (line.split("#")[0].strip().strip('",') for line in lines)
        pairs = (line.split("==") for line in lines if "==" in line)
        return {re.sub(r"[-_.]+", "-", name.split("[")[0]).lower(): version for name, version in pairs}

    project = pins((ROOT / "pyproject.toml").read_text().splitlines())
    lock = pins((ROOT / "constraints.txt").read_text().splitlines())
    pack = pins((ROOT / "policy/requirements.txt").read_text().splitlines())
    assert {name: project.get(name) for name in pack} == pack, \
        "policy/requirements.txt and pyproject.toml pin different versions: change both together"
    unlocked = {name: version for name, version in project.items() if lock.get(name) != version}
    assert unlocked == {}, "constraints.txt does not lock what pyproject.toml pins: regenerate it (see its header)"


def _reads_outside_the_pack(source: str) -> list[str]:
    """Paths the pack would build from its own location upwards (`Path(__file__).parents[N]`, `.parent.parent`)."""
    return [line.strip() for line in source.splitlines()
            if "__file__" in line and ("parents[" in line or ".parent.parent" in line)]


def test_the_pack_reads_nothing_of_the_program_checkout():
    """The pack is standalone (policy/README.md): what it judges against reaches it through its config, never
    through the program's files beside it."""
    found = {path.name: hits for path in sorted((ROOT / "policy").rglob("*.py")) if "venv" not in path.parts
             for hits in [_reads_outside_the_pack(path.read_text())] if hits}
    assert found == {}
    assert _reads_outside_the_pack("ROOT = Path(__file__).resolve().parents[2]\n"), "the check must see such a read"


def test_the_project_inputs_reach_the_pack_through_its_config(tmp_path):
    from ncp.offline.policy_check import project_inputs
    (tmp_path / "sites" / "x" / "sizing").mkdir(parents=True)
    (tmp_path / "sites" / "x" / "sizing" / "a.yaml").write_text("a: 1\n")
    resolved = project_inputs({"evidenceIndex": "evidence/index.yaml", "trustedKeys": "s3://b/keys.yaml",
                               "sizingFiles": {}}, root=tmp_path)
    assert resolved["evidenceIndex"] == str(tmp_path / "evidence" / "index.yaml")
    assert resolved["trustedKeys"] == "s3://b/keys.yaml"
    assert resolved["sizingFiles"] == {"sites/x/sizing/a.yaml": hashlib.sha256(b"a: 1\n").hexdigest()}


def test_the_baseline_record_is_parsed_once_for_all_the_policies_that_read_it(monkeypatch):
    """Four stack policies read the baseline record: its YAML is parsed once per text, not once per policy (it was a
    tenth of the pack's time per site in `ncp fleet status`; counted, not timed)."""
    from types import SimpleNamespace

    from ncp_guardrails import kube

    parsed = []
    monkeypatch.setattr(kube.yaml, "safe_load", lambda text: parsed.append(text) or yaml.load(text, yaml.SafeLoader))
    kube.parsed_value.cache_clear()
    data = {"site": "environment: prod\n", "hardwareProfile": "name: hgx-h200\n"}
    record = SimpleNamespace(props={"kind": "ConfigMap", "metadata": {"name": kube.RECORD_NAME}, "data": data})
    resources = [SimpleNamespace(props={"kind": "Namespace", "metadata": {"name": "x"}}), record]
    found = [kube.find_record(resources) for _ in range(4)]
    assert found[0] == {"site": {"environment": "prod"}, "hardwareProfile": {"name": "hgx-h200"}}
    assert all(record == found[0] for record in found)
    assert sorted(parsed) == sorted(data.values()), "each key's text parsed once"


def test_each_resource_is_converted_for_the_analyzer_once(lab, monkeypatch):
    """The per-resource and the stack pass share one protobuf Struct per resource (counted, not timed)."""
    from ncp.offline import policy_check

    converted = []
    real = policy_check._struct
    monkeypatch.setattr(policy_check, "_struct", lambda value: converted.append(value) or real(value))
    _, _, policies = load_pack()
    violations(lab, LAB_CONFIG)
    assert len(converted) == len(lab.resources) + len(policies), "one Struct per resource and per policy config"
