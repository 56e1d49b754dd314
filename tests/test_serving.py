"""The serving, model data and validation layers on the example stacks, and every bad endpoint input."""
import copy
import json
import subprocess

import pytest
import yaml

from ncp.readmodel.manifests import core_manifests
from ncp.readmodel.recorder import run_program
from ncp.plan.catalog import ROOT, load_matrix
from ncp.plan.errors import ConfigError
from ncp.plan.site_plan import build_plan
from ncp.plan.sources import read_stack_file

MATRIX = load_matrix()


def dgd(recording, name):
    return next(r.inputs for r in recording.custom_resources("DynamoGraphDeployment")
                if r.inputs["metadata"]["name"] == name)


def by_name(recording, kind, name):
    return next(r.inputs for r in recording.resources
                if r.inputs.get("kind") == kind and r.inputs.get("metadata", {}).get("name") == name)


# --- Dynamo platform -----------------------------------------------------------------------------------------------

def test_dynamo_platform_release(prod):
    release = prod.releases()["dynamo-platform"]
    assert release.inputs["version"] == MATRIX.pin("dynamoPlatform").version
    values = release.inputs["values"]
    assert values["global"]["nats"] == {"install": False} and values["global"]["etcd"] == {"install": False}
    assert values["global"]["kai-scheduler"] == {"install": False, "enabled": True}
    assert values["global"]["grove"] == {"install": False, "enabled": True}
    assert "modelExpressURL" not in values["dynamo-operator"], "no cluster-wide ModelExpress (decision 0005)"
    kai = prod.releases()["kai-scheduler"].urn
    assert kai in release.dependencies, "the platform is installed after the separately installed KAI Scheduler"


def test_no_serving_layer_without_endpoints():
    from tests.support.synthetic import site_config
    recording = run_program(site_config("lab"), set(), stack="plain")
    assert "dynamo-platform" not in recording.releases()
    assert not recording.custom_resources("DynamoGraphDeployment")


# --- DynamoGraphDeployments ------------------------------------------------------------------------------------------

def test_aggregated_endpoint_follows_its_sizing_file(prod):
    graph = dgd(prod, "chat-dense")
    sizing = yaml.safe_load((ROOT / "sites/prod/sizing/chat-dense.yaml").read_text())
    services = graph["spec"]["services"]
    worker = services["TRTLLMWorker"]
    assert worker["replicas"] == sizing["workers"]["replicas"] == 2
    assert worker["resources"]["limits"]["gpu"] == str(sizing["workers"]["gpusPerWorker"])
    assert "subComponentType" not in worker and "multinode" not in worker
    engine = yaml.safe_load(by_name(prod, "ConfigMap", "chat-dense-engine")["data"]["worker.yaml"])
    assert engine["tensor_parallel_size"] == sizing["workers"]["tensorParallel"]
    args = worker["extraPodSpec"]["mainContainer"]["args"]
    assert args[:2] == ["-m", "dynamo.trtllm"]
    assert "--extra-engine-args" in args
    assert "/models/Qwen/Qwen3-32B/9216db5781bf21249d130ec9da846c4624c16137" in args


def test_disaggregated_endpoint_follows_its_sizing_file(prod):
    graph = dgd(prod, "reasoning-large")
    sizing = yaml.safe_load((ROOT / "sites/prod/sizing/reasoning-large.yaml").read_text())
    services = graph["spec"]["services"]
    prefill, decode = services["TRTLLMPrefillWorker"], services["TRTLLMDecodeWorker"]
    assert prefill["subComponentType"] == "prefill" and decode["subComponentType"] == "decode"
    assert prefill["replicas"] == sizing["prefill"]["replicas"]
    assert decode["resources"]["limits"]["gpu"] == str(sizing["decode"]["gpusPerWorker"])
    args = prefill["extraPodSpec"]["mainContainer"]["args"]
    assert args[args.index("--disaggregation-mode") + 1] == "prefill"
    engine = by_name(prod, "ConfigMap", "reasoning-large-engine")["data"]
    assert yaml.safe_load(engine["decode.yaml"])["moe_expert_parallel_size"] == sizing["decode"]["expertParallel"]
    # Disaggregated workers get the east-west RDMA rails.
    assert prefill["resources"]["limits"]["custom"] == {"rdma/rdma_shared_device_a": "1"}
    networks = prefill["extraPodMetadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"]
    assert networks.split(",")[0] == "rail-0", "by name: the attachment is in the pod's own namespace"
    assert services["Planner"]["componentType"] == "planner"


def test_endpoint_placement_queue_and_model(prod):
    graph = dgd(prod, "chat-dense")
    meta = graph["metadata"]
    assert meta["namespace"] == "tenant-acme-chat"
    assert meta["annotations"]["nvidia.com/kai-scheduler-queue"] == "tenant-acme-chat"
    assert meta["annotations"]["ncp-inference.io/model-revision"] == "9216db5781bf21249d130ec9da846c4624c16137"
    assert meta["annotations"]["ncp-inference.io/model-source"] == "hf://Qwen/Qwen3-32B"
    frontend = graph["spec"]["services"]["Frontend"]
    assert {"name": "DYN_ROUTER_MODE", "value": "kv"} in frontend["envs"]
    worker = graph["spec"]["services"]["TRTLLMWorker"]
    pod = worker["extraPodSpec"]
    # prod gives acme-chat dedicated nodes (tests/test_dedicated_nodes.py)
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H200", "ncp-inference.io/tenant": "acme-chat"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    # No serviceAccountName: the operator's discovery account (tests/test_dynamo_pods.py). pullCredentials node (the
    # default): the nodes pull nvcr.io, tenant pods carry no registry credential.
    assert "serviceAccountName" not in pod and "imagePullSecrets" not in pod
    assert pod["securityContext"]["runAsNonRoot"] is True
    image = pod["mainContainer"]["image"]
    assert image.startswith(MATRIX.workload("dynamoRuntime").images["trtllm"] + "@sha256:")
    # The tenant's own ModelExpress server (decision 0005).
    own_server = "modelexpress.tenant-acme-chat.svc.cluster.local:8001"
    assert {"name": "MODEL_EXPRESS_URL", "value": own_server} in worker["envs"]
    assert graph["spec"]["pvcs"] == [{"name": "model-artifacts", "create": False}]


def test_lab_endpoint_is_aggregated_on_one_gpu(lab):
    graph = dgd(lab, "chat-small")
    worker = graph["spec"]["services"]["TRTLLMWorker"]
    assert worker["replicas"] == 1 and worker["resources"]["limits"]["gpu"] == "1"
    assert "@" not in worker["extraPodSpec"]["mainContainer"]["image"], "lab pins by tag"
    assert not lab.custom_resources("InferencePool")


def test_inference_pool_per_endpoint(prod):
    pools = {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in prod.custom_resources("InferencePool")}
    assert set(pools) == {"chat-dense", "reasoning-large"}
    assert pools["chat-dense"]["targetPorts"] == [{"number": 8000}]
    assert pools["chat-dense"]["selector"]["matchLabels"]["nvidia.com/dynamo-component-type"] == "frontend"


# --- storage tiers and model data ----------------------------------------------------------------------------------

def test_storage_tiers_are_separate(prod):
    claims = {(r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"]): r.inputs
              for r in prod.of_type("kubernetes:core/v1:PersistentVolumeClaim")}
    models = claims[("tenant-acme-chat", "model-artifacts")]
    assert models["spec"]["storageClassName"] == "vast-models"
    assert models["metadata"]["labels"]["ncp-inference.io/storage-tier"] == "model-artifacts"
    assert claims[("tenant-acme-chat", "benchmark-output")]["spec"]["storageClassName"] == "vast-benchmarks"
    volumes = dgd(prod, "chat-dense")["spec"]["services"]["TRTLLMWorker"]["extraPodSpec"]["volumes"]
    classes = {v["name"]: v["ephemeral"]["volumeClaimTemplate"]["spec"]["storageClassName"]
               for v in volumes if "ephemeral" in v}
    assert classes == {"model-cache": "local-nvme-cache", "kv-offload": "local-nvme-kv"}


def test_model_staging_job_and_provenance(prod):
    job = by_name(prod, "Job", "chat-dense-model-staging")
    script = job["spec"]["template"]["spec"]["containers"][0]["command"][2]
    assert '--revision "9216db5781bf21249d130ec9da846c4624c16137"' in script
    assert ".ncp-provenance.json" in script
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "model-staging"
    provenance = json.loads(by_name(prod, "ConfigMap", "chat-dense-model-provenance")["data"]["provenance.json"])
    assert provenance["revision"] == "9216db5781bf21249d130ec9da846c4624c16137"
    assert provenance["sizing"] == "sites/prod/sizing/chat-dense.yaml"
    # The graph waits for the staging Job (Pulumi awaits the Job's completion in a real deployment).
    staging_job = next(r.urn for r in prod.resources if r.name == "model-chat-dense-job")
    graph = next(r for r in prod.resources if r.name == "endpoint-chat-dense-graph")
    assert staging_job in graph.dependencies


def test_model_express_server_per_serving_tenant(prod):
    """One server in each namespace that serves endpoints (decision 0005: the pinned server has no authentication)."""
    deployments = [m for m in core_manifests(prod)
                   if m["kind"] == "Deployment" and m["metadata"]["name"] == "modelexpress"]
    serving = {m["metadata"]["namespace"] for m in core_manifests(prod) if m["kind"] == "DynamoGraphDeployment"}
    assert sorted(d["metadata"]["namespace"] for d in deployments) == sorted(serving)
    for deployment in deployments:
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == MATRIX.workload("modelExpress").images["server"]


def test_model_streamer_for_vllm(tmp_path):
    raw, secrets = read_stack_file("lab")
    raw = copy.deepcopy(raw)
    sizing = yaml.safe_load((ROOT / "sites/lab/sizing/chat-small.yaml").read_text())
    sizing["request"]["backend"] = "vllm"
    path = tmp_path / "vllm.yaml"
    path.write_text(yaml.safe_dump(sizing))
    raw["endpoints"][0].update(backend="vllm", sizing=str(path))
    recording = run_program(raw, secrets, stack="vllm")
    worker = dgd(recording, "chat-small")["spec"]["services"]["VLLMWorker"]
    args = worker["extraPodSpec"]["mainContainer"]["args"]
    assert args[:2] == ["-m", "dynamo.vllm"] and args[-2:] == ["--load-format", "runai_streamer"]
    assert {"name": "RUNAI_STREAMER_CONCURRENCY", "value": "16"} in worker["envs"]


# --- serving telemetry -----------------------------------------------------------------------------------------------

def test_serving_telemetry(prod):
    monitor = by_name(prod, "PodMonitor", "chat-dense")
    assert monitor["metadata"]["labels"]["ncp-inference.io/endpoint"] == "chat-dense"
    assert monitor["metadata"]["labels"]["release"] == "ncp-observability"
    relabel = monitor["spec"]["podMetricsEndpoints"][0]["relabelings"]
    assert {"targetLabel": "tenant", "replacement": "acme-chat", "action": "replace"} in relabel
    rules = by_name(prod, "PrometheusRule", "chat-dense-serving")
    text = json.dumps(rules["spec"])
    for metric in ("dynamo_frontend_time_to_first_token_seconds", "dynamo_frontend_inter_token_latency_seconds",
                   "dynamo_component_router_kv_hit_rate", "dynamo_frontend_queued_requests",
                   "dynamo_component_gpu_cache_usage_percent"):
        assert metric in text
    # The SLO share is counted at the upstream buckets around the endpoint's SLO: 1000 ms TTFT is a bucket bound,
    # 30 ms ITL is interpolated between 24 and 45 ms. promtool evaluates these rules (tests/test_telemetry_rules.py).
    records = {r["record"]: r for g in rules["spec"]["groups"] for r in g["rules"] if "record" in r}
    assert 'le=~"1|1[.]0"' in records["ncp:endpoint_ttft_slo_miss:ratio_rate1h"]["expr"]
    itl = records["ncp:endpoint_itl_slo_miss:ratio_rate1h"]["expr"]
    assert 'le="0.024"' in itl and 'le="0.045"' in itl


# --- benchmark and validation ----------------------------------------------------------------------------------------

def test_aiperf_job_per_endpoint(prod):
    job = by_name(prod, "Job", "chat-dense-aiperf")
    assert job["spec"]["suspend"] is True and job["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    for flag, value in (("--ui", "none"), ("--isl", "4000"), ("--osl", "500"), ("--concurrency", "128")):
        assert command[command.index(flag) + 1] == value
    assert "--streaming" in command
    assert command[command.index("--artifact-dir") + 1] == "/results/chat-dense"
    thresholds = yaml.safe_load(job["metadata"]["annotations"]["ncp-inference.io/acceptance-thresholds"])
    assert thresholds["timeToFirstTokenP95Ms"] == 1200
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["results"]["persistentVolumeClaim"]["claimName"] == "benchmark-output"


@pytest.mark.parametrize("stub, code, message", [
    ('mkdir -p "$ARTIFACTS" && echo "{}" >"$ARTIFACTS/profile_export_aiperf.json"', 0, ""),
    ("exit 0", 1, "exited 0 but wrote no"),  # what aiperf 0.8.0 does when its services cannot start
    ("exit 3", 3, ""),
])
def test_aiperf_job_fails_without_its_export(prod, tmp_path, stub, code, message):
    """The Job's command, run by sh with a stand-in `aiperf`: it completes only when the export exists."""
    command = by_name(prod, "Job", "chat-dense-aiperf")["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:2] == ["sh", "-c"] and command[4] == "/results/chat-dense/profile_export_aiperf.json"
    assert command[5:7] == ["aiperf", "profile"], "the recorded aiperf command follows the check's arguments"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "aiperf").write_text(f"#!/bin/sh\n{stub}\n")
    (bin_dir / "aiperf").chmod(0o755)
    artifacts = tmp_path / "results"
    argv = [*command[:4], str(artifacts / "profile_export_aiperf.json"), *command[5:]]
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "ARTIFACTS": str(artifacts)}
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == code and message in proc.stderr, (proc.returncode, proc.stderr)
    recorded = json.loads(by_name(prod, "ConfigMap", "chat-dense-acceptance")["data"]["command.json"])
    assert recorded == command[5:], "the reproducible command recorded beside the Job is aiperf's own"


def test_recorded_thresholds_load_in_the_acceptance_checker(prod, tmp_path):
    from ncp.plan.thresholds import load_thresholds

    path = tmp_path / "thresholds.yaml"
    path.write_text(by_name(prod, "ConfigMap", "chat-dense-acceptance")["data"]["thresholds.yaml"])
    assert load_thresholds(path).time_to_first_token_p95_ms == 1200


def test_validation_suite_job_matches_the_stack(prod):
    job = by_name(prod, "Job", "isv-ncp-validation")
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    sets = [command[i + 1] for i, part in enumerate(command) if part == "--set"]
    assert "tests.validations.kubernetes.checks.K8sGpuOperatorNamespaceCheck.namespace=gpu-operator" in sets
    assert "tests.validations.kubernetes.checks.K8sMigConfigCheck.require_mig=false" in sets
    assert job["metadata"]["namespace"] == "ncp-validation" and job["spec"]["suspend"] is True


def test_validation_suite_expects_the_mig_strategy():
    from tests.support.synthetic import site_config
    config = site_config("hgx-h100", "prod")
    config["components"]["gpuOperator"] = {"mig": {"strategy": "mixed", "layout": {"3g.40gb": 1, "2g.20gb": 2}}}
    recording = run_program(config, {"ngcApiKey"}, stack="mig")
    command = by_name(recording, "Job", "isv-ncp-validation")["spec"]["template"]["spec"]["containers"][0]["command"]
    sets = [command[i + 1] for i, part in enumerate(command) if part == "--set"]
    assert "tests.validations.kubernetes.checks.K8sMigConfigCheck.require_mig=true" in sets
    labels = next(s for s in sets if "expected_labels=" in s).split("=", 1)[1]
    assert json.loads(labels)["nvidia.com/mig.strategy"] == "mixed"


# --- bad endpoint input: one clear error naming the endpoint and key, nothing registered ----------------------------

def _prod_config():
    raw, secrets = read_stack_file("prod")
    raw = copy.deepcopy(raw)
    raw["ngcApiKey"] = "test"
    return raw, secrets


def _problems(raw, secrets) -> str:
    with pytest.raises(ConfigError) as error:
        build_plan(raw, secrets, "Pulumi.prod.yaml")
    return str(error.value)


def test_unknown_tenant():
    raw, secrets = _prod_config()
    raw["endpoints"][0]["tenant"] = "initech"
    assert "ncp-inference:endpoints[0].tenant: names unknown tenant 'initech'" in _problems(raw, secrets)


def test_gpus_beyond_tenant_quota():
    raw, secrets = _prod_config()
    raw["tenants"][1]["gpuQuota"] = 8
    text = _problems(raw, secrets)
    assert ("ncp-inference:endpoints[1].sizing: tenant globex-research's endpoints need 16 GPUs; "
            "its gpuQuota is 8") in text


def test_multi_node_workers_without_rdma_fabric(tmp_path):
    raw, secrets = _prod_config()
    raw["site"]["hardwareProfile"] = "cloud-h100"
    raw["components"].pop("networkOperator")
    sizing = yaml.safe_load((ROOT / "sites/prod/sizing/reasoning-large.yaml").read_text())
    sizing["request"].update(system="h100_sxm", totalGpus=32)
    for role in ("prefill", "decode"):
        sizing[role].update(gpusPerWorker=16, tensorParallel=16)
    path = tmp_path / "wide.yaml"
    path.write_text(yaml.safe_dump(sizing))
    raw["endpoints"] = [raw["endpoints"][1] | {"sizing": str(path)}]
    text = _problems(raw, secrets)
    assert "ncp-inference:endpoints[0].sizing: needs 16 GPUs per worker across nodes" in text
    assert "no east-west RDMA fabric" in text


def test_unpinned_model_revision():
    raw, secrets = _prod_config()
    raw["endpoints"][0]["model"]["revision"] = "main"
    text = _problems(raw, secrets)
    assert "ncp-inference:endpoints[0].model.revision" in text and "moves" in text


def test_missing_sizing_file():
    raw, secrets = _prod_config()
    raw["endpoints"][0]["sizing"] = "sites/prod/sizing/nope.yaml"
    text = _problems(raw, secrets)
    assert "ncp-inference:endpoints[0].sizing:" in text and "sizing file not found" in text
    assert "ncp sizing --model Qwen/Qwen3-32B --system h200_sxm" in text


# RA: Model Optimization And Runtime Preparation: "New model bring-up should use versioned recipes"
def test_sizing_file_for_other_inputs():
    raw, secrets = _prod_config()
    raw["endpoints"][0]["slo"]["isl"] = 2000
    text = _problems(raw, secrets)
    assert "was sized for a different endpoint (isl 4000 != 2000)" in text
    assert "the endpoint changed since it was sized; re-size it:" in text and "--isl 2000" in text


# RA: Operations And Lifecycle Management: "treat unsupported feature gaps as explicit disposition items"
def test_backend_blocked_by_the_disposition_matrix():
    raw, secrets = _prod_config()
    raw["endpoints"][1]["backend"] = "sglang"
    text = _problems(raw, secrets)
    assert "ncp-inference:endpoints[1].backend: sglang is not accepted for moe-llm in prod" in text
    assert "Switch the endpoint's backend back to trtllm" in text


def test_prod_needs_image_digests():
    raw, secrets = _prod_config()
    raw["components"]["serving"].pop("imageDigests")
    assert "ncp-inference:components.serving.imageDigests.trtllm: is required in prod" in _problems(raw, secrets)


def test_storage_tiers_must_not_share_a_class():
    raw, secrets = _prod_config()
    raw["components"]["serving"]["storage"]["benchmarkOutput"]["storageClass"] = "vast-models"
    assert "share storageClass 'vast-models'" in _problems(raw, secrets)


def test_nothing_is_registered_from_a_bad_endpoint(monkeypatch):
    import pulumi

    from ncp.readmodel import recorder

    seen = []
    original = recorder._RecordingMonitor.RegisterResource
    monkeypatch.setattr(recorder._RecordingMonitor, "RegisterResource",
                        lambda self, request: seen.append(request.type) or original(self, request))
    raw, secrets = _prod_config()
    raw["endpoints"][0]["tenant"] = "initech"
    with pytest.raises(pulumi.RunError, match="names unknown tenant"):
        run_program(raw, secrets | {"ngcApiKey"}, stack="bad")
    assert [t for t in seen if t != "pulumi:pulumi:Stack"] == []


def test_sizing_file_of_another_endpoint_is_not_overwritten_by_the_fix():
    raw, secrets = _prod_config()
    raw["endpoints"][1]["sizing"] = raw["endpoints"][0]["sizing"]  # reasoning-large points at chat-dense's file
    text = _problems(raw, secrets)
    assert "sites/prod/sizing/chat-dense.yaml belongs to another endpoint; size this one into its own file" in text
    assert "--out sites/prod/sizing/reasoning-large.yaml" in text
    assert "--out sites/prod/sizing/chat-dense.yaml" not in text
