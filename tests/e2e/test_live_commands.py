"""The live-cluster commands against the local control plane (tools/e2e/control-plane.sh).

`ncp preflight`: nodes, storage classes and upstream CRDs are created through the API server as a site would
have them; each check is seen missing on the empty cluster and passing once the site provides it.

`ncp evidence run`: it creates a run Job from each
suspended acceptance Job the stack deployed, waits with progress, and writes evidence from the run's outputs.

No kubelet runs pods here, so the template Jobs carry `spec.managedBy` (a test stand-in, not the built-in Job
controller, owns their status): the stand-in thread plays the Jobs' part, writes the outputs a real run writes (the
validation suite's JUnit XML, the recorded real AIPerf export) to the outputs directory and finishes each Job through
its status subresource the way the Job controller does (SuccessCriteriaMet/FailureTarget, then Complete/Failed)."""
import os
import shutil
import subprocess
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

import dataclasses

from ncp.evidence import cli as evidence_cli
from ncp.plan.break_fix import GATE_JOB, HANDOVER_JOB
from ncp.evidence import readiness_run, run
from ncp.evidence.record import read_index
from ncp.plan.catalog import integration_points
from ncp.plan.sources import plan_from_stack_file
from ncp.preflight import cli as preflight_cli
from tests.e2e.kube_api import KubeApi, only_version, without_descriptions
from tests.e2e.cluster import CRDS, E2E, UPSTREAM
from tests.e2e.crds import OWN_CRDS
from ncp.readmodel.manifests import core_manifests
from ncp.plan.names import NCCL_SSH_SECRET
from tests.test_evidence import EXPORT, JUNIT, MET, _prod

STAND_IN = "ncp-inference.io/test-stand-in"


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory):
    result = subprocess.run([str(E2E / "bootstrap.sh"), "--print-bin"], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"the control plane binaries are not built: run tools/e2e/bootstrap.sh first\n{result.stderr}")
    env = {**os.environ, "NCP_E2E_STATE": str(tmp_path_factory.mktemp("control-plane"))}
    subprocess.run([str(E2E / "control-plane.sh"), "start"], env=env, check=True, timeout=300)
    try:
        yield Path(env["NCP_E2E_STATE"]) / "kubeconfig"
    finally:
        subprocess.run([str(E2E / "control-plane.sh"), "stop"], env=env, timeout=60)


def _template(name: str, namespace: str, component: str, endpoint: str = None, managed: bool = True) -> dict:
    labels = {"app.kubernetes.io/part-of": "ncp-inference", "app.kubernetes.io/component": component}
    if endpoint:
        labels["ncp-inference.io/endpoint"] = endpoint
    spec = {"suspend": True, "backoffLimit": 0, "template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "main", "image": "registry.example/tool:1.0"}]}}}
    if managed:
        spec["managedBy"] = STAND_IN
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": namespace,
                                                                   "labels": labels}, "spec": spec}


def _finish(api: KubeApi, job: dict, outcome: str) -> None:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    first = "SuccessCriteriaMet" if outcome == "Complete" else "FailureTarget"
    conditions = [{"type": first, "status": "True", "lastTransitionTime": now, "lastProbeTime": now,
                   "reason": "StandIn", "message": "test stand-in"},
                  {"type": outcome, "status": "True", "lastTransitionTime": now, "lastProbeTime": now,
                   "reason": "StandIn", "message": "test stand-in"}]
    status = {"startTime": now, "conditions": conditions, "active": 0, "ready": 0, "terminating": 0,
              "succeeded": 1 if outcome == "Complete" else 0, "failed": 0 if outcome == "Complete" else 1,
              "uncountedTerminatedPods": {}}
    if outcome == "Complete":
        status["completionTime"] = now
    meta = job["metadata"]
    api.request("PATCH", f"/apis/batch/v1/namespaces/{meta['namespace']}/jobs/{meta['name']}/status",
                {"status": status}, "application/merge-patch+json")


def _stand_in(api: KubeApi, outputs: Path, fail_component: str, stop: threading.Event) -> None:
    """Plays each run Job once: writes its outputs, then finishes it."""
    done = set()
    while not stop.is_set():
        for job in api.get("/apis/batch/v1/jobs?labelSelector=ncp-inference.io/acceptance-run")["items"]:
            name, labels = job["metadata"]["name"], job["metadata"]["labels"]
            if name in done or job["spec"].get("suspend"):
                continue
            component = labels["app.kubernetes.io/component"]
            if component == "validation-suite":
                (outputs / "validation").mkdir(parents=True, exist_ok=True)
                (outputs / "validation" / "junit.xml").write_text(JUNIT.format(failures=0, failure=""))
            else:
                (outputs / labels["ncp-inference.io/endpoint"]).mkdir(parents=True, exist_ok=True)
                shutil.copy(EXPORT, outputs / labels["ncp-inference.io/endpoint"] / EXPORT.name)
            _finish(api, job, "Failed" if component == fail_component else "Complete")
            done.add(name)
        time.sleep(0.2)


@pytest.fixture()
def deployed(control_plane, monkeypatch):
    """The acceptance Jobs of the prod example (its endpoints), suspended, as `pulumi up` leaves them."""
    api = KubeApi(control_plane)
    site_plan = _prod(MET)
    namespaces = {"ncp-system"} | {e.namespace for e in site_plan.endpoints}
    for namespace in namespaces:
        if api.get(f"/api/v1/namespaces/{namespace}") is None:
            api.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                       "metadata": {"name": namespace}})
    for job in api.get("/apis/batch/v1/jobs")["items"]:  # each test starts from the deployed templates only
        api.request("DELETE", f"/apis/batch/v1/namespaces/{job['metadata']['namespace']}/jobs/"
                              f"{job['metadata']['name']}?propagationPolicy=Background")
    templates = [_template("isv-ncp-validation", "ncp-system", "validation-suite")] + [
        _template(f"{e.endpoint.name}-aiperf", e.namespace, "benchmark", e.endpoint.name) for e in site_plan.endpoints]
    for template in templates:
        api.request("POST", f"/apis/batch/v1/namespaces/{template['metadata']['namespace']}/jobs", template)
    # The run takes these by namespace and name as the stack renders them (ncp/evidence/acceptance_jobs.py).
    monkeypatch.setattr(run, "expected_jobs", lambda stack, endpoints: templates)
    monkeypatch.setattr(run, "plan_from_stack_file", lambda stack: site_plan)
    monkeypatch.setattr(evidence_cli, "plan_from_stack_file", lambda stack: site_plan)
    return api, site_plan


def _run(control_plane, tmp_path, api, fail_component=None, **extra):
    outputs, lines = tmp_path / "outputs", []
    stop = threading.Event()
    thread = threading.Thread(target=_stand_in, args=(api, outputs, fail_component, stop), daemon=True)
    thread.start()
    try:
        argv = ["--stack", "prod", "--kubeconfig", str(control_plane), "--outputs", str(outputs),
                "--cache-state", "cold", "--poll", "0.5", "--timeout", str(extra.get("timeout", 30)),
                "--evidence-dir", str(tmp_path / "evidence"), "--index", str(tmp_path / "index.yaml"),
                "--run-id", "r1"]
        return run.main(argv, say=lines.append), lines
    finally:
        stop.set()
        thread.join(5)


# RA: Validation Methodology: "Platform validation requires lab execution."
def test_run_creates_jobs_waits_and_writes_evidence(control_plane, deployed, tmp_path, evidence_keys):
    api, site_plan = deployed
    code, lines = _run(control_plane, tmp_path, api)
    assert code == 0, "\n".join(lines)
    started = [line.split()[-1] for line in lines if line.startswith("started")]
    assert started[0] == "ncp-system/isv-ncp-validation-r1", "the validation suite runs first"
    assert started[1:] == [f"{e.namespace}/{e.endpoint.name}-aiperf-r1" for e in site_plan.endpoints]
    assert any("-> Complete" in line for line in lines)
    templates = api.get("/apis/batch/v1/jobs?labelSelector=app.kubernetes.io/component=benchmark")["items"]
    assert all(j["spec"]["suspend"] for j in templates if "acceptance-run" not in str(j["metadata"]["labels"])), \
        "the deployed templates stay suspended (no drift from the Pulumi state)"
    entries = read_index(tmp_path / "index.yaml")
    assert sorted(e["endpoint"] for e in entries) == sorted(e.endpoint.name for e in site_plan.endpoints)
    assert all(e["passed"] and e["runId"] == "r1" for e in entries)


def test_failed_job_fails_the_run_without_evidence(control_plane, deployed, tmp_path):
    api, _ = deployed
    code, lines = _run(control_plane, tmp_path, api, fail_component="benchmark")
    assert code == 1 and any("Failed; see its pod logs" in line for line in lines)
    assert read_index(tmp_path / "index.yaml") == []


def test_job_that_never_finishes_times_out(control_plane, deployed, tmp_path):
    api, _ = deployed
    api.request("DELETE", "/apis/batch/v1/namespaces/ncp-system/jobs/isv-ncp-validation?propagationPolicy=Background")
    deadline = time.monotonic() + 60
    while api.get("/apis/batch/v1/namespaces/ncp-system/jobs/isv-ncp-validation") is not None:
        assert time.monotonic() < deadline, "the deployed validation suite Job was not deleted within 60 s"
        time.sleep(0.2)
    # Managed by the built-in Job controller: its pod stays Pending (no nodes), the Job never finishes.
    api.request("POST", "/apis/batch/v1/namespaces/ncp-system/jobs",
                _template("isv-ncp-validation", "ncp-system", "validation-suite", managed=False))
    lines = []
    code = run.main(["--stack", "prod", "--kubeconfig", str(control_plane), "--outputs", str(tmp_path),
                     "--cache-state", "cold", "--poll", "0.5", "--timeout", "2", "--run-id", "r2"], say=lines.append)
    assert code == 1 and any("TimedOut" in line for line in lines), lines


def test_missing_jobs_or_bad_kubeconfig_is_bad_input(control_plane, deployed, tmp_path, capsys):
    api, site_plan = deployed
    name = f"{site_plan.endpoints[0].endpoint.name}-aiperf"
    api.request("DELETE", f"/apis/batch/v1/namespaces/{site_plan.endpoints[0].namespace}/jobs/{name}")
    argv = ["--stack", "prod", "--outputs", str(tmp_path), "--cache-state", "cold"]
    assert run.main(argv + ["--kubeconfig", str(control_plane)]) == 2
    assert f"lacks the stack's acceptance Jobs: {site_plan.endpoints[0].namespace}/{name}" in capsys.readouterr().err
    (tmp_path / "kubeconfig").write_text("apiVersion: v1\n")
    assert run.main(argv + ["--kubeconfig", str(tmp_path / "kubeconfig")]) == 2


# --- preflight --------------------------------------------------------------------------------------------------------

def _running_version(api: KubeApi) -> str:
    version = api.get("/version")
    return f"{version['major']}.{version['minor'].rstrip('+')}"


def _preflight(monkeypatch, control_plane, site_plan, capsys) -> tuple[int, str]:
    monkeypatch.setattr(preflight_cli, "plan_from_stack_file", lambda stack: site_plan)
    code = preflight_cli.main(["--stack", "prod", "--kubeconfig", str(control_plane)])
    return code, capsys.readouterr().out


WEBHOOKS = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"


def _provide_site(api: KubeApi, site_plan) -> None:
    """What the site provides before `pulumi up`: CRDs, storage classes, labelled GPU nodes."""
    if not UPSTREAM.is_dir():
        pytest.skip(f"{UPSTREAM} is absent: the site prerequisite CRDs come from there")
    for path, version in CRDS.items():
        if path.startswith(("prometheus-operator/", "gateway-api-inference-extension/")):
            api.apply_crd(without_descriptions(only_version(yaml.safe_load((UPSTREAM / path).read_text()), version)))
    api.apply_crd(yaml.safe_load(next(p for p in OWN_CRDS if p.name == "httproutes.yaml").read_text()))  # the routes
    for _, tier in site_plan.config.components.serving.storage.named():
        if api.get(f"/apis/storage.k8s.io/v1/storageclasses/{tier.storage_class}") is None:
            api.request("POST", "/apis/storage.k8s.io/v1/storageclasses", {
                "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                "metadata": {"name": tier.storage_class}, "provisioner": "example.com/none"})
    product = integration_points().gpu.product_label
    products = [value for value, count in site_plan.gpu_node_products.items() for _ in range(count)]
    for index, value in enumerate(products):
        name = f"gpu-{index:02d}"
        labels = {product: value, **{level.key: f"{level.domain}-{index // 4}" for level in site_plan.topology_levels}}
        labels["kubernetes.io/hostname"] = name
        if api.get(f"/api/v1/nodes/{name}") is None:
            api.request("POST", "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node",
                                                  "metadata": {"name": name, "labels": labels}})
    gateway = site_plan.config.components.tenancy.gateway_namespace
    if api.get(f"/api/v1/namespaces/{gateway}") is None:
        api.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                   "metadata": {"name": gateway}})
        api.request("POST", f"/apis/networking.k8s.io/v1/namespaces/{gateway}/networkpolicies", {
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "egress"},
            "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [{"namespaceSelector": {
                "matchExpressions": [{"key": "ncp-inference.io/tenant", "operator": "Exists"}]}}]}]}})
    _provide_prometheus(api)
    _provide_image_signature_admission(api)


def _provide_image_signature_admission(api: KubeApi) -> None:
    """The Sigstore policy-controller as a site installs it, as far as preflight reads it: its ClusterImagePolicy CRD
    (a stand-in: no upstream copy in shared/upstream) and its webhook configuration selecting opted-in namespaces,
    failing closed (data/integration-points.yaml `sigstore`). The webhook admits nothing it is asked about (its rules
    name no resource this module creates); the test removes it after."""
    names = integration_points().sigstore
    plural = names.kind.lower() + "s"
    api.apply_crd({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                   "metadata": {"name": f"{plural}.{names.group}"},
                   "spec": {"group": names.group, "scope": "Cluster",
                            "names": {"plural": plural, "singular": names.kind.lower(), "kind": names.kind},
                            "versions": [{"name": names.version, "served": True, "storage": True, "schema": {
                                "openAPIV3Schema": {"type": "object",
                                                    "x-kubernetes-preserve-unknown-fields": True}}}]}})
    if api.get(f"{WEBHOOKS}/{names.webhook_configuration}") is None:
        api.request("POST", WEBHOOKS, {
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": names.webhook_configuration},
            "webhooks": [{"name": f"policy.{names.group}", "failurePolicy": "Fail", "sideEffects": "None",
                          "admissionReviewVersions": ["v1"],
                          "clientConfig": {"url": "https://127.0.0.1:9/validations"},
                          "namespaceSelector": {"matchExpressions": [
                              {"key": names.include_label, "operator": "In", "values": ["true"]}]},
                          "rules": [{"apiGroups": [names.group], "apiVersions": [names.version],
                                     "operations": ["CREATE"], "resources": ["never-created"]}]}]})


def _provide_prometheus(api: KubeApi) -> None:
    """The site's Prometheus, confined (ncp/preflight/prometheus_tenancy.py): a stand-in of the operator's CRD (not in
    shared/upstream) and one Prometheus with the multi-tenancy settings."""
    names = integration_points().prometheus_tenancy
    api.apply_crd({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                   "metadata": {"name": f"{names.plural}.{names.group}"},
                   "spec": {"group": names.group, "scope": "Namespaced",
                            "names": {"plural": names.plural, "singular": "prometheus", "kind": "Prometheus"},
                            "versions": [{"name": names.version, "served": True, "storage": True, "schema": {
                                "openAPIV3Schema": {"type": "object",
                                                    "x-kubernetes-preserve-unknown-fields": True}}}]}})
    if api.get(f"/apis/{names.group}/{names.version}/namespaces/default/{names.plural}/site") is None:
        api.request("POST", f"/apis/{names.group}/{names.version}/namespaces/default/{names.plural}", {
            "apiVersion": f"{names.group}/{names.version}", "kind": "Prometheus", "metadata": {"name": "site"},
            "spec": {"enforcedNamespaceLabel": names.enforced_namespace_label, "ignoreNamespaceSelectors": True,
                     "arbitraryFSAccessThroughSMs": {"deny": True}}})


def test_preflight_misses_then_passes(control_plane, monkeypatch, capsys):
    api = KubeApi(control_plane)
    site_plan = plan_from_stack_file("prod")
    code, out = _preflight(monkeypatch, control_plane, site_plan, capsys)
    assert code == 1
    running = _running_version(api)
    if running not in site_plan.matrix.kubernetes.supported_versions:
        assert f"the cluster runs Kubernetes {running}" in out
    for expected in ("monitoring.coreos.com/v1 PodMonitor is not served",
                     "set ncp-inference:components.serving.storage.modelArtifacts.storageClass", "nodes carry "
                     f"{integration_points().gpu.product_label}={next(iter(site_plan.gpu_node_products))}",
                     "isolates egress for every pod", f"no {integration_points().prometheus_tenancy.plural}.",
                     "fix: "):
        assert expected in out, out
    _provide_site(api, site_plan)
    # The control plane's own version, declared supported: the remaining checks read the site as provided.
    matrix = site_plan.matrix.model_copy(update={"kubernetes": site_plan.matrix.kubernetes.model_copy(
        update={"supported_versions": [running]})})
    ready = dataclasses.replace(site_plan, matrix=matrix, kubernetes_version=running)
    code, out = _preflight(monkeypatch, control_plane, ready, capsys)
    assert code == 0, out
    level = site_plan.topology_levels[0]
    api.request("PATCH", "/api/v1/nodes/gpu-03", {"metadata": {"labels": {level.key: None}}},
                "application/merge-patch+json")
    code, out = _preflight(monkeypatch, control_plane, ready, capsys)
    assert code == 1 and f"GPU nodes without {level.key} ({level.domain}): gpu-03" in out
    stale = dataclasses.replace(ready, kubernetes_version=site_plan.kubernetes_version)
    if site_plan.kubernetes_version != running:
        code, out = _preflight(monkeypatch, control_plane, stale, capsys)
        assert f'set ncp-inference:site.kubernetesVersion to "{running}"' in out
    api.request("DELETE", f"{WEBHOOKS}/{integration_points().sigstore.webhook_configuration}")
    code, out = _preflight(monkeypatch, control_plane, ready, capsys)
    assert code == 1 and "nothing verifies the signatures of tenant-namespace images" in out


# --- readiness run ----------------------------------------------------------------------------------------------------

def _readiness_stand_in(api: KubeApi, seen: dict, stop: threading.Event) -> None:
    """Plays each readiness run Job: notes whether the run's ssh key Secret existed while it ran, then completes it.
    (No kubelet: the Jobs' pods and logs do not exist here, so every check is MISSING and the record fails.)"""
    while not stop.is_set():
        for job in api.get("/apis/batch/v1/namespaces/ncp-readiness/jobs?labelSelector="
                           "ncp-inference.io/acceptance-run")["items"]:
            name = job["metadata"]["name"]
            if name not in seen:
                secret = api.get(f"/api/v1/namespaces/ncp-readiness/secrets/{NCCL_SSH_SECRET}")
                if name.startswith("nccl-tests") and secret is None:
                    continue  # its pods wait for the run's key (the Secret volume is not optional)
                seen[name] = {**(secret or {}), "job-uid": job["metadata"]["uid"]} if secret else None
                _finish(api, job, "Complete")
        time.sleep(0.2)


def test_readiness_run_keys_the_nccl_test_and_runs_every_job(control_plane, prod, tmp_path, monkeypatch,
                                                             evidence_keys):
    """The prod stack's readiness Jobs as the program renders them, deployed suspended in their privileged namespace:
    the API server admits each run copy; the key Secret exists exactly while the NCCL test runs."""
    api = KubeApi(control_plane)
    if api.get("/api/v1/namespaces/ncp-readiness") is None:
        api.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": "ncp-readiness", "labels": {"pod-security.kubernetes.io/enforce": "privileged"}}})
    templates = {job["metadata"]["name"]: {**job, "spec": {**job["spec"], "managedBy": STAND_IN}}
                 for job in core_manifests(prod)
                 if job["kind"] == "Job" and job["metadata"].get("namespace") == "ncp-readiness"}
    for job in templates.values():
        api.request("POST", "/apis/batch/v1/namespaces/ncp-readiness/jobs", job)
    monkeypatch.setattr(readiness_run, "plan_from_stack_file", lambda stack: plan_from_stack_file("prod"))
    seen: dict = {}
    stop = threading.Event()
    thread = threading.Thread(target=_readiness_stand_in, args=(api, seen, stop), daemon=True)
    thread.start()
    lines: list[str] = []
    try:
        code = readiness_run.main(["--stack", "prod", "--kubeconfig", str(control_plane), "--outputs",
                                   str(tmp_path / "out"), "--evidence-dir", str(tmp_path / "evidence"), "--index",
                                   str(tmp_path / "index.yaml"), "--poll", "0.5", "--timeout", "30", "--run-id", "r1"],
                                  say=lines.append)
    finally:
        stop.set()
        thread.join(5)
    assert code == 1 and "no pod to read the log of" in "\n".join(lines), lines
    # The break-fix Jobs share the namespace (ncp node return-to-service / handover run them); a readiness run
    # leaves them alone.
    assert sorted(seen) == sorted(f"{name}-r1" for name in templates if name not in (GATE_JOB, HANDOVER_JOB))
    key = seen["nccl-tests-r1"]
    assert key is not None and key["type"] == "kubernetes.io/ssh-auth" and {"ssh-privatekey", "ssh-publickey"} <= \
        set(key["data"]), "the NCCL test ran with the run's key"
    assert [(o["kind"], o["uid"]) for o in key["metadata"]["ownerReferences"]] == [("Job", key["job-uid"])], \
        "the key is owned by the run's Job: the garbage collector deletes it with the Job"
    assert all(seen[name] is None for name in seen if name != "nccl-tests-r1"), "the key lives for the NCCL test only"
    assert api.get(f"/api/v1/namespaces/ncp-readiness/secrets/{NCCL_SSH_SECRET}") is None
    entry = read_index(tmp_path / "index.yaml")[0]
    assert entry["kind"] == "readiness" and not entry["passed"], "no outputs: every check MISSING"
