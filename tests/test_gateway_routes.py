"""The gateway path (#12 item 1): an HTTPRoute from the site's Gateway to the endpoints' InferencePools, weighted so a
blue/green rollout is a config change; the endpoint picker's image pinned by digest in prod.

Fixtures are the prod stack's config with a second (green) endpoint of the same model added here. The rendered routes
are judged by the reference check (tests/support/references.py) and by the HTTPRoute schema the e2e cluster serves
(tests/e2e/crds/httproutes.yaml, bounds from kubernetes-sigs/gateway-api@v1.6.1)."""
import copy
from pathlib import Path

import pytest
import yaml

from ncp.readmodel.recorder import run_program
from tests.support.references import dangling_references, effective_config
from ncp.plan.errors import ConfigError
from ncp.plan.site_plan import build_plan
from ncp.plan.sources import read_stack_file
from tests.policy_helpers import find, set_inputs, violations
from tests.test_upstream_schemas import _validate

ROUTE_CRD = Path(__file__).parent / "e2e" / "crds" / "httproutes.yaml"
GATEWAY = "components.serving.gateway"


def _route_schema() -> dict:
    (version,) = yaml.safe_load(ROUTE_CRD.read_text())["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


def blue_green(weights=(90, 10)) -> tuple[dict, set]:
    """prod with chat-dense (blue) and chat-dense-green, the same model in tenant acme-chat, behind one route."""
    raw, secrets = read_stack_file("prod")
    raw = copy.deepcopy(raw)
    blue = next(e for e in raw["endpoints"] if e["name"] == "chat-dense")
    raw["endpoints"].append({**copy.deepcopy(blue), "name": "chat-dense-green"})
    chat = next(r for r in raw["components"]["serving"]["gateway"]["routes"] if r["name"] == "chat")
    chat["backends"] = [{"endpoint": "chat-dense", "weight": weights[0]},
                        {"endpoint": "chat-dense-green", "weight": weights[1]}]
    return raw, secrets


def _problems(raw: dict, secrets: set) -> dict[str, str]:
    with pytest.raises(ConfigError) as error:
        build_plan(raw, secrets, "Pulumi.prod.yaml")
    return {problem.path: problem.message for problem in error.value.problems}


def _routes(recording) -> dict[str, dict]:
    return {r.inputs["metadata"]["name"]: r for r in recording.custom_resources("HTTPRoute")}


def test_blue_green_is_one_route_with_two_weighted_pools():
    raw, secrets = blue_green()
    recording = run_program(raw, secrets, stack="prod")
    route = _routes(recording)["chat"]
    assert route.inputs["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route.inputs["metadata"]["namespace"] == "tenant-acme-chat"
    spec = route.inputs["spec"]
    assert spec["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                   "name": "inference-gateway", "namespace": "ncp-gateway", "sectionName": "https"}]
    backends = spec["rules"][0]["backendRefs"]
    assert [(b["group"], b["kind"], b["name"], b["weight"]) for b in backends] == [
        ("inference.networking.k8s.io", "InferencePool", "chat-dense", 90),
        ("inference.networking.k8s.io", "InferencePool", "chat-dense-green", 10)]
    pools = {r.inputs["metadata"]["name"] for r in recording.custom_resources("InferencePool")}
    assert {"chat-dense", "chat-dense-green"} <= pools
    # The route is created after the pools it names.
    pool_urns = {r.urn for r in recording.custom_resources("InferencePool")
                 if r.inputs["metadata"]["name"].startswith("chat-dense")}
    assert len(pool_urns) == 2 and pool_urns <= set(route.dependencies)
    assert not dangling_references(recording, effective_config(raw))
    for registration in _routes(recording).values():
        _validate(registration.inputs["spec"], _route_schema()["properties"]["spec"])


def test_shifting_traffic_changes_only_the_weights():
    before = _routes(run_program(*blue_green((90, 10)), stack="prod"))["chat"].inputs
    after = _routes(run_program(*blue_green((0, 100)), stack="prod"))["chat"].inputs
    assert [b["weight"] for b in after["spec"]["rules"][0]["backendRefs"]] == [0, 100]
    for backend in after["spec"]["rules"][0]["backendRefs"]:
        backend["weight"] = next(b["weight"] for b in before["spec"]["rules"][0]["backendRefs"]
                                 if b["name"] == backend["name"])
    assert after == before


def test_the_route_schema_refuses_what_the_api_server_would():
    spec = copy.deepcopy(_routes(run_program(*blue_green(), stack="prod"))["chat"].inputs["spec"])
    schema = _route_schema()["properties"]["spec"]
    spec["rules"][0]["backendRefs"][0]["weight"] = 1000001
    with pytest.raises(Exception, match="1000001"):
        _validate(spec, schema)


def test_a_route_naming_a_missing_pool_is_a_dangling_reference():
    raw, secrets = blue_green()
    recording = run_program(raw, secrets, stack="prod")
    without_green = [r for r in recording.resources if not (r.inputs.get("kind") == "InferencePool"
                                                           and r.inputs["metadata"]["name"] == "chat-dense-green")]
    recording.resources[:] = without_green
    dangling = [str(ref) for ref in dangling_references(recording, effective_config(raw))]
    assert dangling == ["route-chat-httproute spec.rules.backendRefs -> InferencePool "
                        "tenant-acme-chat/chat-dense-green"]


def test_an_undeclared_gateway_is_a_dangling_reference():
    raw, secrets = blue_green()
    recording = run_program(raw, secrets, stack="prod")
    renamed = copy.deepcopy(raw)
    renamed["components"]["serving"]["gateway"]["name"] = "other-gateway"
    dangling = {str(ref) for ref in dangling_references(recording, effective_config(renamed))}
    assert "route-chat-httproute spec.parentRefs -> Gateway ncp-gateway/inference-gateway" in dangling


def _route(raw: dict) -> dict:
    return next(r for r in raw["components"]["serving"]["gateway"]["routes"] if r["name"] == "chat")


def _unknown_endpoint(raw):
    _route(raw)["backends"][1]["endpoint"] = "chat-typo"


def _other_tenant(raw):
    _route(raw)["backends"][1]["endpoint"] = "reasoning-large"


def _weights(raw):
    _route(raw)["backends"][1]["weight"] = 5


def _repeated(raw):
    _route(raw)["backends"][1]["endpoint"] = "chat-dense"


def _other_model(raw):
    next(e for e in raw["endpoints"] if e["name"] == "chat-dense-green")["model"]["name"] = "Qwen/Qwen3-8B"


def _unrouted(raw):
    _route(raw)["backends"] = [{"endpoint": "chat-dense", "weight": 100}]


def _twice(raw):
    raw["components"]["serving"]["gateway"]["routes"].append(
        {"name": "chat-canary", "tenant": "acme-chat", "hostnames": ["canary.example.net"],
         "backends": [{"endpoint": "chat-dense-green", "weight": 100}]})


def _same_host(raw):
    next(r for r in raw["components"]["serving"]["gateway"]["routes"] if r["name"] == "reasoning")["hostnames"] = \
        list(_route(raw)["hostnames"])


def _no_gateway(raw):
    del raw["components"]["serving"]["gateway"]


def _gateway_without_pools(raw):
    raw["components"]["serving"]["gatewayInferenceExtension"] = False


def _no_epp_digest(raw):
    del raw["components"]["serving"]["imageDigests"]["epp"]


def _unknown_tenant(raw):
    _route(raw)["tenant"] = "nobody"


ROUTES = f"ncp-inference:{GATEWAY}.routes"


@pytest.mark.parametrize("mutation, path, message", [
    (_unknown_endpoint, f"{ROUTES}[0].backends[1].endpoint", "names unknown endpoint 'chat-typo'"),
    (_other_tenant, f"{ROUTES}[0].backends[1].endpoint", "belongs to tenant globex-research, not acme-chat"),
    (_weights, f"{ROUTES}[0].backends", "weights add up to 95"),
    (_repeated, f"{ROUTES}[0].backends[1].endpoint", "repeats endpoint 'chat-dense'"),
    (_other_model, f"{ROUTES}[0].backends", "mixes served models Qwen/Qwen3-32B, Qwen/Qwen3-8B"),
    (_unrouted, ROUTES, "reach no backend endpoint 'chat-dense-green'"),
    (_twice, f"{ROUTES}[2].backends", "'chat-dense-green' is already a backend of route chat"),
    (_same_host, f"{ROUTES}[1].hostnames", "route chat already answers host chat.acme"),
    (_unknown_tenant, f"{ROUTES}[0].tenant", "names unknown tenant 'nobody'"),
    (_no_gateway, f"ncp-inference:{GATEWAY}", "is required with gatewayInferenceExtension"),
    (_gateway_without_pools, f"ncp-inference:{GATEWAY}", "gatewayInferenceExtension is false"),
    (_no_epp_digest, "ncp-inference:components.serving.imageDigests.epp", "is required in prod"),
])
def test_refused_routes_name_the_key(mutation, path, message):
    raw, secrets = blue_green()
    build_plan(raw, secrets, "Pulumi.prod.yaml")  # the fixture itself is valid
    mutation(raw)
    problems = _problems(raw, secrets)
    assert path in problems and message in problems[path], problems


def test_the_picker_runs_the_digest_pinned_image_in_prod():
    raw, secrets = read_stack_file("prod")
    recording = run_program(raw, secrets, stack="prod")
    digest = raw["components"]["serving"]["imageDigests"]["epp"]
    pickers = [r for r in recording.custom_resources("Deployment") if r.inputs["metadata"]["name"].endswith("-epp")]
    assert pickers
    for picker in pickers:
        (container,) = picker.inputs["spec"]["template"]["spec"]["containers"]
        assert container["image"] == f"nvcr.io/nvidia/ai-dynamo/dynamo-frontend:1.5.0@{digest}"


def test_the_policy_pack_refuses_a_prod_picker_pinned_by_tag():
    raw, secrets = read_stack_file("prod")
    recording = run_program(raw, secrets, stack="prod")
    assert not [v for v in violations(recording, policy="image-references") if "-epp" in v.message]
    picker = find(recording, "Deployment", "chat-dense-epp")
    manifest = copy.deepcopy(picker.wire_inputs)
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    container["image"] = container["image"].split("@")[0]
    set_inputs(picker, manifest)
    found = [v.message for v in violations(recording, policy="image-references")]
    assert any("must be pinned by digest" in m and "dynamo-frontend:1.5.0" in m for m in found), found
