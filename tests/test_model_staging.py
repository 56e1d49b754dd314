"""Model staging reaches its source through exactly the route the site names (direct HTTPS, a proxy, or an in-cluster
mirror), and nothing else in the tenant namespace gains that route; an air-gapped site must name a mirror."""
import copy

import pytest

from ncp.readmodel.recorder import Recording, run_program
from tests.support.references import dangling_references, effective_config
from tests.support.synthetic import mutate
from ncp.plan.errors import ConfigError
from ncp.plan.local_overlay import CONTROL_PLANE_OVERLAY, OVERLAY_ENV
from ncp.plan.site_plan import build_plan
from ncp.plan.sources import read_stack_file
from tests.netpol import Destination, may_egress

NAMESPACE = "tenant-dev"
HUB = Destination(ip="18.164.174.23", port=443)  # an address of huggingface.co's CDN
PROXY = {"url": "http://proxy.corp.example:3128", "cidrs": ["10.20.30.40/32"]}
MIRROR = {"service": "hf-mirror", "namespace": "model-mirror", "port": 8080}


def _config(staging=None) -> dict:
    raw, _ = read_stack_file("e2e")
    raw = mutate(raw, "components.serving.modelStaging", staging) if staging is not None else copy.deepcopy(raw)
    # The API server's own endpoint, as prod requires: the lab default (any address on 443/6443) lets the pods that
    # watch the API server (Dynamo's, the endpoint picker) reach any HTTPS address, the hub included.
    raw["components"]["serving"]["apiServerEgress"] = {"cidrs": ["10.96.0.1/32"], "ports": [6443]}
    if (staging or {}).get("mirror"):  # an in-cluster model mirror is a partner product (ncp/plan/rules/ra.py)
        raw["localDecisions"] = [*raw.get("localDecisions", []), {
            "kind": "registry", "decision": "the site's in-cluster model mirror", "reason": "air-gapped site"}]
    return raw


def _run(config: dict) -> Recording:
    return run_program(config, stack="staging-test")


def _policies(recording: Recording) -> list[dict]:
    return [r.inputs["spec"] for r in recording.custom_resources("NetworkPolicy")
            if r.inputs["metadata"]["namespace"] == NAMESPACE]


def _pod(recording: Recording, kind: str, name: str) -> tuple[dict, dict]:
    """(pod labels, container env) of a workload's pod template."""
    workload = next(r for r in recording.custom_resources(kind) if r.inputs["metadata"]["name"] == name)
    template = workload.inputs["spec"]["template"]
    env = {e["name"]: e.get("value") for e in template["spec"]["containers"][0].get("env") or []}
    return template["metadata"]["labels"], env


def _may(recording: Recording, labels: dict, to: Destination) -> bool:
    return may_egress(_policies(recording), NAMESPACE, labels, to)


@pytest.fixture(scope="module")
def direct() -> Recording:
    return _run(_config())


FETCHERS = (("Job", "chat-dense-model-staging"), ("Job", "vision-classify-engine-build"))


# RA: Security And Compliance: "Network policy should separate API ingress, control plane, metadata stores"
def test_direct_egress_opens_https_for_staging_and_engine_build_pods_only(direct):
    for kind, name in FETCHERS:
        pod, env = _pod(direct, kind, name)
        assert _may(direct, pod, HUB), f"{name} must reach the model source"
        assert not _may(direct, pod, Destination(ip=HUB.ip, port=80))
        assert "HF_ENDPOINT" not in env and "HTTPS_PROXY" not in env
    for kind, name in (("Job", "chat-dense-aiperf"), ("Deployment", "chat-dense-epp"),
                       ("Deployment", "vision-classify"), ("Job", "vision-classify-aiperf")):
        labels, _ = _pod(direct, kind, name)
        assert not _may(direct, labels, HUB), f"{name} must not reach the model source"


def test_without_the_staging_policy_the_tenant_default_deny_blocks_staging(direct):
    """The judge itself: the recorded tenant policies deny the source unless the staging policy opens it."""
    staging, _ = _pod(direct, "Job", "chat-dense-model-staging")
    others = [p for p in _policies(direct) if "chat-dense-model-staging" not in repr(p)
              and p["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/component") != "model-staging"]
    assert len(others) < len(_policies(direct))
    assert not may_egress(others, NAMESPACE, staging, HUB)


def test_without_its_source_policy_the_engine_build_cannot_fetch(direct):
    build, _ = _pod(direct, "Job", "vision-classify-engine-build")
    others = [p for p in _policies(direct)
              if p["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/component") != "engine-build"]
    assert len(others) == len(_policies(direct)) - 1
    assert not may_egress(others, NAMESPACE, build, HUB)


@pytest.mark.parametrize("kind, name", FETCHERS)
def test_a_proxy_is_the_only_route(kind, name):
    recording = _run(_config({"proxy": PROXY}))
    pod, env = _pod(recording, kind, name)
    assert env["HTTPS_PROXY"] == PROXY["url"]
    assert _may(recording, pod, Destination(ip="10.20.30.40", port=3128))
    assert not _may(recording, pod, HUB)
    assert not _may(recording, pod, Destination(ip="10.20.30.41", port=3128))


# RA: Security And Compliance: "provenance checks, and air-gap behavior when needed"
@pytest.mark.parametrize("kind, name", FETCHERS)
def test_a_mirror_is_the_only_route_and_a_declared_prerequisite(kind, name, monkeypatch):
    monkeypatch.setenv(OVERLAY_ENV, CONTROL_PLANE_OVERLAY)  # air-gapped: charts from the control plane's stand-ins
    config = _config({"airGapped": True, "mirror": MIRROR})
    recording = _run(config)
    pod, env = _pod(recording, kind, name)
    assert env["HF_ENDPOINT"] == "http://hf-mirror.model-mirror.svc.cluster.local:8080"
    assert _may(recording, pod, Destination(namespace="model-mirror", port=8080))
    assert not _may(recording, pod, Destination(namespace="model-mirror", port=22))
    assert not _may(recording, pod, HUB)
    assert not dangling_references(recording, effective_config(config))


@pytest.mark.parametrize("staging, message", [
    ({"airGapped": True}, "an air-gapped site has no egress to the model source: name an in-cluster mirror"),
    ({"proxy": PROXY, "mirror": MIRROR}, "either a proxy or a mirror"),
    ({"airGapped": True, "proxy": PROXY, "mirror": MIRROR}, "either a proxy or a mirror"),
    ({"proxy": {"url": "http://proxy.corp.example:3128", "cidrs": ["10.20.30.400/32"]}},
     "Octet 400 (> 255) not permitted"),
])
def test_bad_staging_routes_are_config_errors(staging, message):
    with pytest.raises(ConfigError) as error:
        build_plan(_config(staging), set(), "Pulumi.e2e.yaml")
    text = str(error.value)
    assert "ncp-inference:components.serving.modelStaging" in text and message in text, text
    assert "nothing was deployed" in text
