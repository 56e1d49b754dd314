"""#22 item 3: no NATS JetStream shared by every tenant. Decision and sources: data/integration-points.yaml
dynamo.natsDecision (Dynamo 1.5 needs no NATS with its default TCP request plane and ZMQ event plane; the operator
gives pods NATS_SERVER only when the platform release configures a NATS address).

Each example stack is checked as rendered: no NATS installed or addressed, no pod told to use one, no NetworkPolicy
port for it. The real Dynamo 1.5.0 frontend (.venv-twin) shows the difference is behavioural: with what the operator
adds under the rendered platform values it serves; with the former shared NATS in those values it refuses to start."""
import copy
import os
import time
import urllib.error
from pathlib import Path
from typing import Any, Iterator

import pytest

from ncp.readmodel.recorder import Recording, run_stack_file
from ncp.plan.catalog import integration_points, load_dynamo_runtime
from ncp.plan.names import MODELS_MOUNT
from tests.conftest import EXAMPLE_STACKS
from ncp.twin.graph import PortPool, graph_processes, platform_env
from ncp.twin.run import Twin, TwinStartError, http_json, twin_python

DYNAMO = integration_points().dynamo
PLATFORM = "dynamo-platform"
_RECORDINGS: dict[str, Recording] = {}


def recording(stack: str) -> Recording:
    if stack not in _RECORDINGS:
        _RECORDINGS[stack] = run_stack_file(stack)
    return _RECORDINGS[stack]


def _env_entries(value: Any) -> Iterator[tuple[str, Any]]:
    """Every {name, value} env entry anywhere in a rendered object (containers, DGD services' envs, ...)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("env", "envs") and isinstance(item, list):
                yield from ((e["name"], e.get("value")) for e in item if isinstance(e, dict) and "name" in e)
            else:
                yield from _env_entries(item)
    elif isinstance(value, list):
        for item in value:
            yield from _env_entries(item)


def _platform_addition(rec: Recording) -> dict[str, str]:
    release = rec.releases().get(PLATFORM)
    if release is None:
        return {}
    return platform_env(release.inputs["name"], release.inputs["namespace"], release.inputs["values"])


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_no_stack_installs_or_addresses_a_nats(stack):
    rec = recording(stack)
    release = rec.releases().get(PLATFORM)
    if release is not None:
        values = release.inputs["values"]
        assert values["global"]["nats"] == {"install": False}, f"{stack}: the platform release installs NATS"
        assert not values["dynamo-operator"].get("natsAddr"), f"{stack}: the operator is pointed at a NATS"
    assert _platform_addition(rec) == {}, f"{stack}: the operator would give every Dynamo pod NATS_SERVER"


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_no_rendered_workload_is_told_to_use_nats(stack):
    rec = recording(stack)
    told = [(r.name, name, value) for r in rec.resources for name, value in _env_entries(r.inputs)
            if name == DYNAMO.nats_server_env or (name, value) in DYNAMO.nats_plane_env.items()]
    assert not told, f"{stack}: workloads would open a NATS connection: {told}"


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_no_network_policy_opens_the_nats_port(stack):
    rec = recording(stack)
    policies = [r.inputs for r in rec.resources if r.inputs.get("kind") == "NetworkPolicy"]
    assert policies, f"{stack}: no NetworkPolicy rendered"
    opened = [p["metadata"]["namespace"] + "/" + p["metadata"]["name"] for p in policies
              for rule in p["spec"].get("ingress", []) + p["spec"].get("egress", [])
              for port in rule.get("ports", []) if port.get("port") == DYNAMO.nats_port]
    assert not opened, f"{stack}: NetworkPolicies still open the NATS port {DYNAMO.nats_port}: {opened}"


def test_the_operator_env_follows_the_chart_rule():
    """platform_env is the chart's rule (operator-config.yaml:67-72), so the checks above fail if NATS comes back."""
    assert platform_env("dp", "dynamo-system", {"global": {"nats": {"install": False}}}) == {}
    assert platform_env("dp", "dynamo-system", {"global": {"nats": {"install": True}}}) == {
        "NATS_SERVER": "nats://dp-nats.dynamo-system.svc.cluster.local:4222"}
    assert platform_env("dp", "x", {"global": {"nats": {"install": False}},
                                    "dynamo-operator": {"natsAddr": "nats://ext:4222"}}) == {"NATS_SERVER": "nats://ext:4222"}


# --- the real frontend -------------------------------------------------------------------------------------------

def _frontend(rec: Recording, platform: dict[str, str], directory: Path) -> Twin:
    graph = next(r.inputs for r in rec.custom_resources("DynamoGraphDeployment"))
    ports = PortPool(int(os.environ.get("NCP_TWIN_PORT_BASE", "21000")) + 700)
    processes = graph_processes(graph, load_dynamo_runtime(), directory / "models", MODELS_MOUNT, ports,
                                python=twin_python(), services={"Frontend"}, platform=platform)
    return Twin(processes, directory)


def _serves(twin: Twin, timeout: float = 90) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        twin._check_alive()
        try:
            return isinstance(http_json(f"{twin.url}/v1/models", timeout=5)["data"], list)
        except (urllib.error.URLError, ConnectionError, TimeoutError, KeyError, ValueError):
            time.sleep(0.5)
    raise TwinStartError(f"the frontend did not answer /v1/models within {timeout:.0f}s\n{twin.logs()}")


def test_the_real_frontend_starts_without_nats_and_not_with_the_former_shared_one(tmp_path):
    rec = recording("prod")
    with _frontend(rec, _platform_addition(rec), tmp_path / "rendered") as twin:
        assert _serves(twin), twin.logs()
    release = rec.releases()[PLATFORM]
    former = copy.deepcopy(release.inputs["values"])
    former["global"]["nats"] = {"install": True}
    shared = platform_env(release.inputs["name"], release.inputs["namespace"], former)
    assert set(shared) == {DYNAMO.nats_server_env}
    with _frontend(rec, shared, tmp_path / "former") as twin:
        with pytest.raises(TwinStartError, match="Failed to connect to NATS"):
            _serves(twin)
