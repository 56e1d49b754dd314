"""Inference services (Triton + TensorRT): every bad input is a config error naming the key and the fix; a good one
composes the engine build, the server on the site's GPUs (whole or a MIG slice) in the tenant's queue, and its
telemetry; the engine-build and engine-check scripts run for real (bash + python3) with stand-ins for trtexec and
nvidia-smi, and the server's check refuses an engine built for another GPU product or precision."""
import copy
import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from components.serving.triton_repository import build_script, repository_files, verify_script
from tests.support.promtool import find_promtool, run_rule_tests
from ncp.readmodel.recorder import run_program
from ncp.offline.summary import render_summary
from tests.support.rule_tests import EVALUATION_INTERVAL, rule_test_suites
from tests.support.synthetic import record_storage, secret_keys, site_config
from ncp.plan.errors import ConfigError
from ncp.plan.inference_services import ENGINE_FILE, PROVENANCE_FILE
from ncp.plan.site_plan import build_plan
from ncp.plan.sources import read_stack_file
from tests.policy_helpers import LAB_CONFIG, PROD_CONFIG, clone, find, messages, remove, set_inputs, violations

ONNX = b"not really onnx, but bytes with a digest"
SERVICE = {
    "name": "vision", "tenant": "t0", "model": "resnet50",
    "artifact": {"source": "hf://example/resnet50", "revision": "0123456789abcdef0123456789abcdef01234567",
                 "file": "model.onnx", "sha256": hashlib.sha256(ONNX).hexdigest()},
    "engine": {"gpuProduct": "NVIDIA-H200", "precision": "fp16", "maxBatchSize": 16,
               "inputs": {"data": [3, 224, 224]}, "outputs": {"logits": [1000]}},
    "dynamicBatching": {"preferredBatchSizes": [8, 16], "maxQueueDelayMicroseconds": 200},
    "preprocessing": {"resize": [224, 224]},
    "slo": {"requestP95Ms": 50, "queueP95Ms": 10, "thresholds": {"requestLatencyP95Ms": 50,
                                                                 "preprocessingTimeAvgMs": 5}},
}
STORAGE = {"modelArtifacts": {"storageClass": "nfs", "size": "1Ti"}, "modelCache": {"storageClass": "nvme",
           "size": "1Ti"}, "benchmarkOutput": {"storageClass": "std", "size": "10Gi"}}


def config(environment: str = "lab", mig: dict = None, **changes) -> dict:
    raw = site_config("hgx-h200", environment)
    serving = raw.setdefault("components", {}).setdefault("serving", {})
    validation = {**serving.get("validation", {}), "benchmarkImage": "nvcr.io/org/aiperf:0.8.0@sha256:" + "1" * 64}
    serving.update({"storage": STORAGE, "validation": validation})
    if mig:
        raw["components"]["gpuOperator"] = {"mig": mig}
    service = copy.deepcopy(SERVICE)
    for key, value in changes.items():
        target = service
        *path, last = key.split(".")
        for part in path:
            target = target.setdefault(part, {})
        target[last] = value
    raw["inferenceServices"] = [service]
    return record_storage(raw)


def problems(raw: dict) -> dict[str, str]:
    with pytest.raises(ConfigError) as error:
        build_plan(raw, secret_keys(raw), "Pulumi.test.yaml")
    return {p.path: f"{p.message} | {p.fix}" for p in error.value.problems}


def problems_of(raw: dict, secrets: set, source: str) -> dict[str, str]:
    """{} for a valid config, else each problem's path -> message."""
    try:
        build_plan(raw, secrets, source)
    except ConfigError as error:
        return {p.path: p.message for p in error.problems}
    return {}


def plan_of(raw: dict):
    return build_plan(raw, secret_keys(raw), "Pulumi.test.yaml").inference_services[0]


# --- config errors --------------------------------------------------------------------------------------------------

def test_engine_for_another_gpu_product_is_refused():
    found = problems(config(**{"engine.gpuProduct": "NVIDIA-L40S"}))
    message = found["ncp-inference:inferenceServices[0].engine.gpuProduct"]
    assert "'NVIDIA-L40S'" in message and "NVIDIA-H200" in message
    assert "pulumi config set --path 'ncp-inference:inferenceServices[0].engine.gpuProduct' NVIDIA-H200" in message


@pytest.mark.parametrize("key, value, path, text", [
    ("artifact.revision", "main", "artifact.revision", "moves"),
    ("artifact.sha256", "abc", "artifact.sha256", "does not match"),
    ("artifact.file", "../x.onnx", "artifact.file", "relative path inside"),
    ("artifact.source", "http://x/y", "artifact.source", "not an allowlisted source"),
    ("engine.precision", "int8", "engine.precision", "must be"),
    ("tenant", "nobody", "tenant", "unknown tenant"),
    ("gpus", {"count": 1, "migProfile": "1g.18gb"}, "gpus.migProfile", "no MIG layout"),
    ("replicas", 64, "replicas", "gpuQuota"),
    ("dynamicBatching", {"preferredBatchSizes": [32]}, "", "1..engine.maxBatchSize"),
    ("slo.thresholds", {"timeToFirstTokenP95Ms": 10}, "slo.thresholds.timeToFirstTokenP95Ms", "token streams"),
    ("preprocessing", None, "slo.thresholds.preprocessingTimeAvgMs", "no preprocessing stage"),
])
def test_bad_service_inputs(key, value, path, text):
    found = problems(config(**{key: value}))
    where = "ncp-inference:inferenceServices[0]" + (f".{path}" if path else "")
    assert where in found and text in found[where], found


def test_mig_slice_must_be_the_sites_layout():
    mig = {"strategy": "single", "layout": {"2g.35gb": 3}}
    found = problems(config(mig=mig, gpus={"count": 1, "migProfile": "1g.18gb"}))
    assert "pulumi config set --path 'ncp-inference:inferenceServices[0].gpus.migProfile' 2g.35gb" in \
        found["ncp-inference:inferenceServices[0].gpus.migProfile"]
    mixed = problems(config(mig={"strategy": "mixed", "layout": {"1g.18gb": 7}},
                            gpus={"count": 1, "migProfile": "1g.18gb"}))
    assert "strategy single" in mixed["ncp-inference:inferenceServices[0].gpus.migProfile"]


def test_prod_pins_server_and_builder_by_digest():
    found = problems(config("prod"))
    for key in ("tritonserver", "tensorrt"):
        assert "pinned by digest" in found[f"ncp-inference:components.serving.imageDigests.{key}"]
    raw = config("prod")
    raw["components"]["serving"]["imageDigests"] |= {"tritonserver": "sha256:" + "a" * 64,
                                                   "tensorrt": "sha256:" + "b" * 64}
    service = plan_of(raw)
    assert service.server_image.endswith("@sha256:" + "a" * 64)
    assert service.builder_image.endswith("@sha256:" + "b" * 64)


def test_names_shared_with_an_endpoint_are_refused():
    raw, secrets = read_stack_file("lab")
    raw = copy.deepcopy(dict(raw))
    raw["inferenceServices"][0]["name"] = raw["endpoints"][0]["name"]
    with pytest.raises(ConfigError) as error:
        build_plan(raw, secrets, "Pulumi.lab.yaml")
    (clash,) = [p for p in error.value.problems if p.path == "ncp-inference:inferenceServices[0].name"]
    assert "also an endpoint's name" in clash.message


# --- composition --------------------------------------------------------------------------------------------------

def registered(recording, kind: str, name: str) -> dict:
    return next(r.inputs for r in recording.resources
                if r.inputs.get("kind") == kind and r.inputs.get("metadata", {}).get("name") == name)


def test_composes_build_server_and_telemetry_on_whole_gpus():
    raw = config()
    recording = run_program(raw, secret_keys(raw))
    server = registered(recording, "Deployment", "vision")
    pod = server["spec"]["template"]
    spec = pod["spec"]
    assert spec["schedulerName"] == "kai-scheduler"
    assert pod["metadata"]["labels"]["kai.scheduler/queue"] == "tenant-t0"
    assert pod["metadata"]["labels"]["ncp-inference.io/tenant"] == "t0"
    assert spec["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H200"}
    container = spec["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "--metrics-config=summary_latencies=true" in container["args"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": 8000, "grpc": 8001,
                                                                           "metrics": 8002}
    build = registered(recording, "Job", "vision-engine-build")
    assert build["spec"]["template"]["spec"]["nodeSelector"] == spec["nodeSelector"]
    assert build["spec"]["template"]["spec"]["containers"][0]["image"] == "nvcr.io/nvidia/tensorrt:26.04-py3"
    provenance = json.loads(registered(recording, "ConfigMap", "vision-engine-provenance")["data"]["provenance.json"])
    assert provenance["gpuProduct"] == "NVIDIA-H200" and provenance["precision"] == "fp16"
    assert provenance["sha256"] == SERVICE["artifact"]["sha256"]
    repository = registered(recording, "ConfigMap", "vision-model-repository")["data"]
    assert set(repository) == {"resnet50_trt.config.pbtxt", "resnet50_dali.config.pbtxt", "resnet50_dali.model.py",
                               "resnet50.config.pbtxt"}
    monitor = registered(recording, "PodMonitor", "vision")["spec"]
    assert monitor["podMetricsEndpoints"][0]["port"] == "metrics"
    assert registered(recording, "PrometheusRule", "vision-inference")
    benchmark = registered(recording, "Job", "vision-aiperf")
    command = benchmark["spec"]["template"]["spec"]["containers"][0]["command"]
    assert "/v2/models/resnet50/infer" in command  # the ensemble: DALI preprocessing, then the engine
    assert command[command.index("--server-metrics") + 1] == "http://vision.tenant-t0.svc:8002/metrics"
    thresholds = registered(recording, "ConfigMap", "vision-acceptance")["data"]["thresholds.yaml"]
    assert "preprocessingModel: resnet50_dali" in thresholds and "preprocessingTimeAvgMs: 5" in thresholds
    assert recording.outputs["inferenceServices"]["vision"]["gpus"] == 1


def test_the_benchmark_runs_the_preprocessing_its_threshold_judges():
    """#24 item 6: the preprocessing threshold reads the DALI model's compute time from Triton's counters
    (ncp/acceptance/check.py); a benchmark of the bare TensorRT model never runs DALI, so the gate always rejected. The
    benchmark now calls the ensemble (whose first step is the thresholds' preprocessingModel) with an encoded image,
    the ensemble's input; a service without preprocessing still calls its engine with zero tensors."""
    import io

    from PIL import Image
    recording = run_program(config(), secret_keys(config()))
    command = registered(recording, "Job", "vision-aiperf")["spec"]["template"]["spec"]["containers"][0]["command"]
    model = command[command.index("--model") + 1]
    thresholds = yaml.safe_load(registered(recording, "ConfigMap", "vision-acceptance")["data"]["thresholds.yaml"])
    ensemble = registered(recording, "ConfigMap", "vision-model-repository")["data"][f"{model}.config.pbtxt"]
    assert 'platform: "ensemble"' in ensemble
    first_step = ensemble.split("model_name:", 1)[1].split('"')[1]
    assert first_step == thresholds["preprocessingModel"]
    payload = json.loads(json.loads(command[command.index("--extra-inputs") + 1])["payload_template"])
    [tensor] = payload["inputs"]
    assert tensor["datatype"] == "UINT8" and tensor["shape"] == [1, len(tensor["data"])]
    assert f'name: "{tensor["name"]}"' in ensemble
    assert Image.open(io.BytesIO(bytes(tensor["data"]))).format == "JPEG"
    plain = copy.deepcopy(config())
    del plain["inferenceServices"][0]["preprocessing"]
    del plain["inferenceServices"][0]["slo"]["thresholds"]["preprocessingTimeAvgMs"]
    command = registered(run_program(plain, secret_keys(plain)), "Job", "vision-aiperf")["spec"]["template"][
        "spec"]["containers"][0]["command"]
    template = json.loads(command[command.index("--extra-inputs") + 1])["payload_template"]
    assert "/v2/models/resnet50/infer" in command and '"datatype":"FP32"' in template


def test_a_mig_slice_is_requested_where_the_site_is_partitioned():
    raw = config(mig={"strategy": "single", "layout": {"1g.18gb": 7}}, gpus={"count": 1, "migProfile": "1g.18gb"})
    recording = run_program(raw, secret_keys(raw))
    spec = registered(recording, "Deployment", "vision")["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H200-MIG-1g.18gb"}
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


# --- the engine build and the server's engine check, run ------------------------------------------------------------

def _stand_ins(bin_dir: Path, gpu_name: str) -> None:
    """trtexec writes an engine and logs its TensorRT version; nvidia-smi names the GPU."""
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "trtexec").write_text(
        "#!/bin/bash\nfor a in \"$@\"; do case $a in --saveEngine=*) printf 'engine:%s' \"$*\" > \"${a#*=}\";; "
        "esac; done\necho '[I] TensorRT version: 10.16.1'\n")
    (bin_dir / "nvidia-smi").write_text(f"#!/bin/bash\necho '{gpu_name}, 580.95.05'\n")
    for tool in ("trtexec", "nvidia-smi"):
        (bin_dir / tool).chmod(0o755)


def _run(script: str, tmp: Path, gpu_name: str = "NVIDIA H200") -> subprocess.CompletedProcess:
    """Run a script with stand-in tools, the Hub mirrored under tmp/hub (HF_ENDPOINT, as on a mirrored site)."""
    _stand_ins(tmp / "bin", gpu_name)
    env = {**os.environ, "PATH": f"{tmp / 'bin'}:{os.environ['PATH']}", "HF_ENDPOINT": f"file://{tmp / 'hub'}"}
    return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60)


def _local(script: str, plan, tmp: Path) -> str:
    """The scripts with the claim under tmp and the pinned file in the local Hub mirror."""
    artifact = SERVICE["artifact"]
    hosted = tmp / "hub" / "example" / "resnet50" / "resolve" / artifact["revision"] / artifact["file"]
    hosted.parent.mkdir(parents=True, exist_ok=True)
    hosted.write_bytes(ONNX)
    return script.replace(plan.engine_dir, str(tmp / "engine"))


def test_build_records_provenance_and_the_server_check_accepts_it(tmp_path):
    plan = plan_of(config())
    built = _run(_local(build_script(plan), plan, tmp_path), tmp_path)
    assert built.returncode == 0, built.stderr
    record = json.loads((tmp_path / "engine" / PROVENANCE_FILE).read_text())
    engine = (tmp_path / "engine" / ENGINE_FILE).read_bytes()
    assert record["outputs"][ENGINE_FILE] == hashlib.sha256(engine).hexdigest()
    assert (record["gpuName"], record["tensorrtVersion"], record["precision"]) == ("NVIDIA H200", "10.16.1", "fp16")
    assert b"--fp16" in engine and b"--maxShapes=data:16x3x224x224" in engine and b"--optShapes=data:16x3" in engine
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    for name, text in repository_files(plan).items():
        (config_dir / name).write_text(text)
    verify = _local(verify_script(plan, str(tmp_path / "repo"), str(config_dir)), plan, tmp_path)
    checked = _run(verify, tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert (tmp_path / "repo" / "resnet50_trt" / "1" / ENGINE_FILE).resolve() == tmp_path / "engine" / ENGINE_FILE
    assert (tmp_path / "repo" / "resnet50_dali" / "1" / "model.py").is_file()
    assert 'platform: "ensemble"' in (tmp_path / "repo" / "resnet50" / "config.pbtxt").read_text()


@pytest.mark.parametrize("field, value", [("gpuProduct", "NVIDIA-L40S"), ("precision", "fp32"),
                                          ("sha256", "0" * 64)])
def test_server_refuses_an_engine_built_for_something_else(tmp_path, field, value):
    plan = plan_of(config())
    assert _run(_local(build_script(plan), plan, tmp_path), tmp_path).returncode == 0
    record_path = tmp_path / "engine" / PROVENANCE_FILE
    record = json.loads(record_path.read_text())
    record[field] = value
    record_path.write_text(json.dumps(record))
    checked = _run(_local(verify_script(plan, str(tmp_path / "repo"), str(tmp_path)), plan, tmp_path), tmp_path)
    assert checked.returncode != 0 and "engine refused" in checked.stderr and field in checked.stderr


def test_server_refuses_an_engine_changed_after_the_build(tmp_path):
    plan = plan_of(config())
    assert _run(_local(build_script(plan), plan, tmp_path), tmp_path).returncode == 0
    (tmp_path / "engine" / ENGINE_FILE).write_bytes(b"another engine")
    checked = _run(_local(verify_script(plan, str(tmp_path / "repo"), str(tmp_path)), plan, tmp_path), tmp_path)
    assert checked.returncode != 0 and "sha256 differs" in checked.stderr


def test_build_refuses_another_source_file_or_gpu(tmp_path):
    plan = plan_of(config())
    (tmp_path / "a").mkdir()
    wrong_gpu = _run(_local(build_script(plan), plan, tmp_path / "a"), tmp_path / "a", gpu_name="NVIDIA H100 80GB HBM3")
    assert wrong_gpu.returncode != 0 and "not on the target NVIDIA-H200" in wrong_gpu.stderr
    assert not (tmp_path / "a" / "engine").exists(), "nothing is published where the server looks"
    other = plan_of(config(**{"artifact.sha256": "f" * 64}))
    (tmp_path / "b").mkdir()
    wrong_file = _run(_local(build_script(other), other, tmp_path / "b"), tmp_path / "b")
    assert wrong_file.returncode != 0 and "FAILED" in wrong_file.stdout + wrong_file.stderr


# --- telemetry, judged by promtool ------------------------------------------------------------------------------------

@pytest.mark.parametrize("preprocessing", [{"resize": [224, 224]}, None], ids=["dali-ensemble", "engine-only"])
@pytest.mark.engine
def test_inference_rules_fire_and_record_as_specified(preprocessing):
    """Generated cases (tests/support/rule_tests.py) for a service of its own stack, with and without the DALI stage."""
    promtool, reason = find_promtool()
    if promtool is None:
        pytest.skip(f"promtool is not available: {reason}")
    thresholds = {"requestLatencyP95Ms": 50, **({"preprocessingTimeAvgMs": 5} if preprocessing else {})}
    raw = config(preprocessing=preprocessing, replicas=2, **{"slo.thresholds": thresholds})
    plan = build_plan(raw, secret_keys(raw), "Pulumi.test.yaml")
    recording = run_program(raw, secret_keys(raw))
    (files, tests), = [suite for suite in rule_test_suites(plan, recording) if "vision" in suite[0]]
    records = {rule["record"] for group in files["vision"] for rule in group["rules"] if "record" in rule}
    assert ("ncp:inference_preprocess_time_avg:seconds" in records) == (preprocessing is not None)
    outcome = run_rule_tests(promtool, files, tests, EVALUATION_INTERVAL)
    assert outcome.ok, outcome.output


# --- guardrails: the policy pack covers the new kind ------------------------------------------------------------------

@pytest.fixture(scope="module")
def prod_service():
    raw = config("prod")
    raw["components"]["serving"]["imageDigests"] |= {"tritonserver": "sha256:" + "a" * 64,
                                                   "tensorrt": "sha256:" + "b" * 64}
    return run_program(raw, secret_keys(raw))


def _with_image(recording, kind: str, name: str, image: str):
    mutated = clone(recording)
    registration = find(mutated, kind, name)
    inputs = copy.deepcopy(registration.inputs)
    inputs["spec"]["template"]["spec"]["containers"][0]["image"] = image
    set_inputs(registration, inputs)
    return mutated


def test_prod_service_passes_the_pack(prod_service):
    for policy in ("image-references", "gpu-workloads-through-kai", "model-provenance", "acceptance-evidence"):
        assert messages(prod_service, policy, PROD_CONFIG) == "", policy


@pytest.mark.parametrize("kind, name", [("Deployment", "vision"), ("Job", "vision-engine-build")])
def test_prod_server_and_build_images_pinned_by_digest(prod_service, kind, name):
    tagged = _with_image(prod_service, kind, name, "nvcr.io/nvidia/tritonserver:26.04-py3")
    assert "pinned by digest" in messages(tagged, "image-references", PROD_CONFIG)
    assert "pinned by digest" not in messages(tagged, "image-references", LAB_CONFIG)


def test_service_without_a_benchmark_fails_acceptance_evidence(prod_service):
    mutated = clone(prod_service)
    remove(mutated, find(mutated, "Job", "vision-aiperf"))
    assert "vision: no AIPerf benchmark Job" in messages(mutated, "acceptance-evidence", PROD_CONFIG)


def test_floating_artifact_revision_fails_model_provenance(prod_service):
    mutated = clone(prod_service)
    registration = find(mutated, "Deployment", "vision")
    inputs = copy.deepcopy(registration.inputs)
    inputs["metadata"]["annotations"]["ncp-inference.io/model-revision"] = "main"
    set_inputs(registration, inputs)
    assert "'main' is not pinned" in messages(mutated, "model-provenance", PROD_CONFIG)


def test_gpu_server_outside_kai_fails(prod_service):
    mutated = clone(prod_service)
    registration = find(mutated, "Deployment", "vision")
    inputs = copy.deepcopy(registration.inputs)
    inputs["spec"]["template"]["spec"].pop("schedulerName")
    set_inputs(registration, inputs)
    assert "schedulerName kai-scheduler" in messages(mutated, "gpu-workloads-through-kai", PROD_CONFIG)


# --- the example stacks -----------------------------------------------------------------------------------------------

PINNED_ARTIFACT = {"revision": "0123456789abcdef0123456789abcdef01234567", "sha256": "ab" * 32}


def test_example_artifact_placeholders_are_refused_in_prod_only():
    """Marked placeholders (EXAMPLE(...)) of the artifact commit and digest stop a prod stack, naming each key; a lab
    composes with them (its build fails on them, see the build test)."""
    prefix = "ncp-inference:inferenceServices[0].artifact"
    marked = config("prod", **{f"artifact.{key}": f"EXAMPLE({key})" for key in PINNED_ARTIFACT})
    found = problems_of(marked, secret_keys(marked), "t")
    assert {f"{prefix}.revision", f"{prefix}.sha256"} <= set(found)
    assert "example placeholder 'EXAMPLE(" in found[f"{prefix}.sha256"]
    lab = config("lab", **{f"artifact.{key}": f"EXAMPLE({key})" for key in PINNED_ARTIFACT})
    assert build_plan(lab, secret_keys(lab), "t").inference_services
    pinned = config("prod")
    assert not set(problems_of(pinned, secret_keys(pinned), "t")) & {f"{prefix}.revision", f"{prefix}.sha256"}


def test_vision_example_serves_on_mig_slices_and_passes_the_prod_pack():
    """Pulumi.vision.yaml, validated as an example once the site has pinned its artifact (the test does it here):
    a whole-site MIG layout with a service on 1g.18gb slices."""
    raw, secrets = read_stack_file("vision")
    raw["inferenceServices"][0]["artifact"].update(PINNED_ARTIFACT)
    recording = run_program(raw, secrets, stack="vision")
    spec = registered(recording, "Deployment", "shelf-classify")["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H200-MIG-1g.18gb"}
    assert "@sha256:" in spec["containers"][0]["image"]
    assert violations(recording, PROD_CONFIG) == []
    summary = render_summary(build_plan(raw, secrets, "Pulumi.vision.yaml"), recording)
    assert "shelf-classify (triton, 8)" in summary and "1 inference services on 8 MIG devices (1g.18gb)" in summary


# --- model configurations, judged by Triton's ModelConfig message -----------------------------------------------------

def triton_model_config():
    """ModelConfig from the pinned release's client (loaded from its file: the package's grpc __init__ needs more)."""
    import importlib.util

    tritonclient = pytest.importorskip("tritonclient", reason="tritonclient (extra dev) is not installed")
    path = Path(tritonclient.__file__).parent / "grpc" / "model_config_pb2.py"
    spec = importlib.util.spec_from_file_location("triton_model_config_pb2", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ModelConfig


def parse_configs(plan) -> dict:
    from google.protobuf import text_format

    model_config = triton_model_config()
    return {name.removesuffix(".config.pbtxt"): text_format.Parse(text, model_config())
            for name, text in repository_files(plan).items() if name.endswith(".config.pbtxt")}


def test_model_configs_parse_as_triton_model_configs():
    plan = plan_of(config())
    configs = parse_configs(plan)
    engine, dali, ensemble = configs["resnet50_trt"], configs["resnet50_dali"], configs["resnet50"]
    assert (engine.platform, engine.max_batch_size) == ("tensorrt_plan", 16)
    assert list(engine.dynamic_batching.preferred_batch_size) == [8, 16]
    assert engine.dynamic_batching.max_queue_delay_microseconds == 200
    assert [(g.count, g.kind) for g in engine.instance_group] == [(1, 1)]  # KIND_GPU
    assert [i.name for i in engine.input] == ["data"] and list(engine.input[0].dims) == [3, 224, 224]
    assert dali.backend == "dali" and list(dali.output[0].dims) == [3, 224, 224]
    steps = ensemble.ensemble_scheduling.step
    assert [s.model_name for s in steps] == ["resnet50_dali", "resnet50_trt"]
    assert steps[0].output_map["DALI_OUTPUT_0"] == steps[1].input_map["data"], "DALI feeds the engine's input"
    assert dict(steps[1].output_map) == {o.name: o.name for o in ensemble.output}
    compile(repository_files(plan)["resnet50_dali.model.py"], "model.py", "exec")
    plain = parse_configs(plan_of(config(preprocessing=None, dynamicBatching=None,
                                         **{"slo.thresholds": {"requestLatencyP95Ms": 50}})))
    assert list(plain) == ["resnet50"] and not plain["resnet50"].HasField("dynamic_batching")


def test_a_misspelt_model_config_field_is_refused():
    from google.protobuf import text_format

    text = repository_files(plan_of(config()))["resnet50_trt.config.pbtxt"]
    with pytest.raises(text_format.ParseError, match="max_batch_sizes"):
        text_format.Parse(text.replace("max_batch_size", "max_batch_sizes"), triton_model_config()())
