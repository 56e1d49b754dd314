"""Every cross-field rule of the policy pack that config can know is refused by config validation too, naming the
camelCase key as the user writes it (ncp/plan/rules/cross_field.py). Each case starts from a fixture stack that
validates and breaks one rule; where the pack's own verdict is the point (its mandatory level per environment), the
pack configs are read."""
import json
from pathlib import Path

import pytest

from tests.support.synthetic import mutate, record_storage, secret_keys, site_config
from ncp.plan import endpoints as endpoints_module
from ncp.plan.config import Environment
from ncp.plan.rules.cross_field import MANDATORY_ENVIRONMENTS
from ncp.plan.errors import ConfigError
from ncp.plan.site_plan import build_plan
from ncp.plan.endpoint_plan import WorkerGroup
from ncp.plan.sizing_bridge import Layout
from ncp.plan.sizing_file import load_sizing

ROOT = Path(__file__).resolve().parents[1]
P = "ncp-inference:"
DIGEST = "sha256:" + "1" * 64


def _plan(config):
    return build_plan(config, secret_keys(config), "Pulumi.fixture.yaml")


def _refused(config, key: str) -> str:
    with pytest.raises(ConfigError) as error:
        _plan(config)
    paths = [problem.path for problem in error.value.problems]
    assert P + key in paths, f"{key} not named; problems: {paths}"
    return str(error.value)


def _serving(config: dict, environment: str) -> dict:
    """A fixture site with one dense endpoint sized by its AIConfigurator file (8 H200 GPUs, aggregated)."""
    config = mutate(config, "tenants[0].gpuQuota", 8)
    config = mutate(config, "tenants[0].gpuLimit", 8)
    config["tenants"][0].update({"cpuQuota": "96", "memoryQuota": "1Ti"})
    serving = config.setdefault("components", {}).setdefault("serving", {})
    serving["storage"] = {"modelArtifacts": {"storageClass": "fx-shared", "size": "10Gi",
                                             "accessMode": "ReadWriteMany"},
                          "modelCache": {"storageClass": "fx-local", "size": "10Gi"},
                          "benchmarkOutput": {"storageClass": "fx-bench", "size": "1Gi"}}
    serving.setdefault("validation", {})["benchmarkImage"] = (
        "nvcr.io/test-org/tools/aiperf:0.8.0" + ("@" + DIGEST if environment == "prod" else ""))
    if environment == "prod":
        serving["imageDigests"] = {"trtllm": DIGEST, "dcgm": DIGEST, "ncclTests": DIGEST}
        serving["apiServerEgress"] = {"cidrs": ["10.0.0.1/32"], "ports": [6443]}
    config["endpoints"] = [{
        "name": "chat", "tenant": config["tenants"][0]["name"], "backend": "trtllm",
        "sizing": "sites/prod/sizing/chat-dense.yaml",
        "model": {"name": "Qwen/Qwen3-32B", "source": "hf://Qwen/Qwen3-32B",
                  "revision": "9216db5781bf21249d130ec9da846c4624c16137", "class": "dense-llm"},
        "slo": {"isl": 4000, "osl": 500, "ttftMs": 1000, "tpotMs": 30, "concurrency": 128, "requestCount": 2000,
                "thresholds": {"timeToFirstTokenP95Ms": 1200}}}]
    return record_storage(config)


@pytest.fixture(scope="module")
def prod_serving():
    config = _serving(site_config("hgx-h200", "prod", tenants=1, gpu_nodes=2), "prod")
    _plan(config)
    return config


def test_mandatory_environments_follow_the_pack_configs():
    for environment in Environment:
        level = json.loads((ROOT / "policy" / "config" / f"{environment.value}.json").read_text())["all"]
        assert (level == "mandatory") == (environment in MANDATORY_ENVIRONMENTS), environment


@pytest.mark.parametrize("environment", ["staging", "prod"])
def test_hardware_profile_and_evidence(environment):
    config = site_config("lab", environment)
    _plan(config)
    del config["site"]["validationEvidence"]
    text = _refused(config, "site.validationEvidence")
    assert "hardware-profile-and-evidence" in text and "validationEvidence.owner" in text


def test_lab_needs_no_evidence_location():
    config = site_config("lab", "lab")
    del config["site"]["validationEvidence"]
    _plan(config)  # the lab pack config makes the policy advisory


@pytest.mark.parametrize("image, cause", [("docker.io/library/busybox:latest", "mutable tag latest"),
                                          ("docker.io/library/busybox:1.36", "not from an allowlisted registry"),
                                          ("nvcr.io/test-org/tools/aiperf", "no tag or digest")])
def test_image_references(image, cause):
    config = _serving(site_config("hgx-h200", "staging", tenants=1, gpu_nodes=1), "staging")
    _plan(config)
    text = _refused(mutate(config, "components.serving.validation.benchmarkImage", image),
                    "components.serving.validation.benchmarkImage")
    assert cause in text and "image-references" in text


def test_image_reference_with_a_registry_port_is_a_tag_not_a_port():
    config = _serving(site_config("hgx-h200", "staging", tenants=1, gpu_nodes=1), "staging")
    _plan(mutate(config, "components.serving.validation.benchmarkImage", "nvcr.io/test-org/tools/aiperf:0.8.0"))


def test_acceptance_evidence(prod_serving):
    text = _refused(mutate(prod_serving, "components.serving.validation.suite", False),
                    "components.serving.validation.suite")
    assert "acceptance-evidence" in text


@pytest.mark.parametrize("image, cause", [(None, "is not set"),
                                          ("nvcr.io/test-org/tools/nccl-tests:25.06", "is not pinned by digest")])
def test_prod_runs_the_nccl_readiness_job_only_from_the_sites_image_by_digest(prod_serving, image, cause):
    """#22 item 12: root with IPC_LOCK on every GPU node, so prod takes no tag (staging may, as the other tools)."""
    config = mutate(prod_serving, "components.serving.validation.ncclImage", image)
    if image is None:
        del config["components"]["serving"]["validation"]["ncclImage"]
    text = _refused(config, "components.serving.validation.ncclImage")
    assert cause in text and "image-references" in text and "@sha256:<digest>" in text
    staging = _serving(site_config("hgx-h200", "staging", tenants=1, gpu_nodes=1), "staging")
    _plan(mutate(staging, "components.serving.validation.ncclImage", "nvcr.io/test-org/tools/nccl-tests:25.06"))


def test_gpu_sharing(prod_serving):
    sliced = mutate(prod_serving, "components.gpuOperator.timeSlicing", {"replicas": 2})
    assert "gpu-sharing" in _refused(sliced, "components.gpuOperator.timeSlicing")
    _plan(mutate(sliced, "components.gpuOperator.timeSlicing.validationEvidence", "evidence/slicing.md"))


def test_disaggregation_fabric(monkeypatch):
    """A lab (no RDMA) site whose endpoint's sizing file says disaggregated: the layout AIConfigurator would write
    for it is the prod example's disaggregated one (its GPUs are beside the point)."""
    config = _serving(site_config("hgx-h200", "staging", tenants=1, gpu_nodes=1), "staging")
    disaggregated = ROOT / "sites" / "prod" / "sizing" / "reasoning-large.yaml"
    lab = mutate(config, "site.hardwareProfile", "lab")
    del lab["components"]["networkOperator"]
    monkeypatch.setattr(endpoints_module, "read_layout",
                        lambda path, endpoint, profile: _layout(disaggregated, endpoint, profile))
    text = _refused(lab, "endpoints[0].sizing")
    assert "disaggregation-fabric" in text and "no east-west RDMA fabric" in text


def _layout(path, endpoint, profile) -> Layout:
    result = load_sizing(path)
    assert result.mode == "disaggregated"
    return Layout(mode=result.mode, workers=[WorkerGroup(role=role, **group.model_dump())
                                                for role, group in result.groups().items()],
                  estimate=result.estimate_summary())
