"""A site that installs the pinned charts from a chart mirror (`components.chartMirror`) gets exactly the policy
results it gets from the charts' own repositories (issue #13): every policy identifies a Helm release one way, by
chart name (policy/ncp_guardrails/releases.py). Fixture stacks, lab and prod, each also broken the same way in both
variants so that every policy that looks a release up has something to report."""
import importlib
import os
from unittest import mock

import pytest
import yaml

from ncp.offline.policy_check import load_pack
from ncp.plan.local_overlay import CONTROL_PLANE_OVERLAY, OVERLAY_ENV
from ncp.readmodel.recorder import run_program
from tests.support.synthetic import EXAMPLE_SIGNER_KEY, secret_keys, site_config
from tests.policy_helpers import LAB_CONFIG, PROD_CONFIG, add, dgd, find, find_release, remove, set_inputs, violations
from tests.test_dedicated_nodes import serving_site

MIRROR = "tests/e2e/charts"
RELEASE_POLICIES = {"charts-pinned", "gpu-sharing", "disaggregation-fabric"}  # the policies that look releases up


def _prod_site() -> dict:
    """HGX H200, two tenants on their own nodes, a KV-routed and a disaggregated endpoint, prod's digests."""
    config = serving_site()
    config["site"]["environment"] = "prod"
    config["ngcApiKey"] = "test-ngc-key"
    serving = config["components"]["serving"]
    serving["validation"] = {
        "benchmarkImage": "nvcr.io/test-org/tools/aiperf:0.8.0@sha256:" + "1" * 64,
        "suiteImage": "nvcr.io/test-org/tools/isv-ncp-validation-suite:0.6.8@sha256:" + "0" * 64,
        "storageImage": "nvcr.io/test-org/tools/fio:3.38@sha256:" + "4" * 64,
        "ncclImage": "nvcr.io/test-org/tools/nccl-tests:25.06@sha256:" + "7" * 64}
    config["components"].setdefault("tenancy", {})["imageSignatures"] = {"publicKeys": [EXAMPLE_SIGNER_KEY]}
    serving["imageDigests"] = {"trtllm": "sha256:" + "2" * 64, "planner": "sha256:" + "3" * 64,
                              "dcgm": "sha256:" + "5" * 64, "ncclTests": "sha256:" + "6" * 64}
    serving["apiServerEgress"] = {"cidrs": ["10.10.0.10/32"], "ports": [6443]}
    return config


SITES = {"lab": (lambda: site_config("lab", "lab"), LAB_CONFIG), "prod": (_prod_site, PROD_CONFIG)}


def _recording(config: dict, mirror: bool):
    """With the mirror, the stand-in charts come from the local control plane's overlay: prod refuses them in the
    stack file itself (ncp/plan/local_overlay.py)."""
    if not mirror:
        return run_program(config, secret_keys(config), stack="mirror")
    with mock.patch.dict(os.environ, {OVERLAY_ENV: CONTROL_PLANE_OVERLAY}):
        return run_program(config, secret_keys(config), stack="mirror")


def _break(recording) -> None:
    """The same faults in either variant: a drifted chart version, GPU sharing the site cannot back, a disaggregated
    endpoint without the Network Operator."""
    gpu = find_release(recording, "gpu-operator")
    sliced = yaml.safe_dump({"version": "v1", "sharing": {"timeSlicing": {"resources": [
        {"name": "nvidia.com/gpu", "replicas": 4}]}}})
    values = {**gpu.wire_inputs["values"], "mig": {"strategy": "single"},
              "devicePlugin": {"config": {"create": True, "name": "ts", "default": "ts", "data": {"ts": sliced}}}}
    set_inputs(gpu, {**gpu.wire_inputs, "version": "v0.0.1", "values": values})
    if "network-operator" in recording.releases():
        remove(recording, find_release(recording, "network-operator"))
    tenant = find(recording, "Namespace", "tenant-t0").wire_inputs["metadata"]["name"]
    add(recording, dgd("split", tenant, disaggregated=True))


def results(recording, config: dict) -> list:
    return sorted((v.policy, v.level, v.message, v.urn) for v in violations(recording, config))


def _both(site: str, broken: bool) -> tuple:
    make, config = SITES[site]
    pair = []
    for mirror in (False, True):
        recording = _recording(make(), mirror)
        if broken:
            _break(recording)
        pair.append(results(recording, config))
    return tuple(pair)


@pytest.mark.parametrize("broken", [False, True], ids=["clean", "broken"])
@pytest.mark.parametrize("site", sorted(SITES))
def test_a_chart_mirror_changes_no_policy_result(site: str, broken: bool):
    from_repositories, from_mirror = _both(site, broken)
    assert from_mirror == from_repositories
    fired = {policy for policy, *_ in from_mirror}
    assert fired >= (RELEASE_POLICIES if broken else set()), f"not every release policy was exercised: {fired}"
    if broken:
        assert {level for _, level, *_ in from_mirror} == {"advisory" if site == "lab" else "mandatory"}


def _whole_chart_string(props):
    """The identification the pack used before issue #13: a release is a component only if its chart string equals
    the pin's (so `./<mirror>/gpu-operator` is no gpu-operator)."""
    pins = importlib.import_module("ncp_guardrails.data").pins()
    return next((key for key, pin in pins.items() if pin["chart"] == props.get("chart")), None)


@pytest.mark.parametrize("broken", [False, True], ids=["clean", "broken"])
def test_whole_chart_string_matching_would_diverge(monkeypatch, broken: bool):
    """The comparison above can fail: with the old identification the prod results differ, in each release policy."""
    load_pack()
    monkeypatch.setattr(importlib.import_module("ncp_guardrails.releases"), "component_of", _whole_chart_string)
    from_repositories, from_mirror = _both("prod", broken)
    differing = {policy for policy, *_ in set(from_repositories) ^ set(from_mirror)}
    assert differing == ({"charts-pinned", "disaggregation-fabric"} if not broken else RELEASE_POLICIES)
