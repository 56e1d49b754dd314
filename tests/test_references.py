"""Reference integrity of every composition: each name an object refers to resolves inside the stack, to what an
installed operator creates from it, to a Kubernetes built-in, or to a site prerequisite the config declares; and
every namespaced object depends on the Namespace the stack creates for it."""
import copy
import dataclasses

import pytest

from ncp.readmodel.recorder import Recording, run_program, run_stack_file
from tests.support.references import dangling_references, effective_config, missing_namespace_dependencies
from tests.support.synthetic import secret_keys, site_config
from ncp.plan.sources import read_stack_file
from tests.test_composition import ENVIRONMENTS, REQUIRED_PROFILES

EXAMPLE_STACKS = ["lab", "prod", "e2e"]


def _check(recording: Recording, raw: dict) -> None:
    dangling = dangling_references(recording, effective_config(raw))
    assert not dangling, "dangling references:\n" + "\n".join(map(str, dangling))
    missing = missing_namespace_dependencies(recording)
    assert not missing, "no dependency on their Namespace:\n" + "\n".join(missing)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
@pytest.mark.parametrize("profile", sorted(REQUIRED_PROFILES))
def test_every_composition_resolves(profile, environment):
    config = site_config(profile, environment)
    _check(run_program(config, secret_keys(config), stack=f"refs-{profile}-{environment}"), config)


@pytest.fixture(scope="module")
def stacks() -> dict[str, tuple[Recording, dict]]:
    return {stack: (run_stack_file(stack), read_stack_file(stack)[0]) for stack in EXAMPLE_STACKS}


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_example_stacks_resolve(stacks, stack):
    """The example stacks carry endpoints: claims, staging, graphs, pools and endpoint pickers."""
    _check(*stacks[stack])


def _without(recording: Recording, kind: str, name: str) -> Recording:
    kept = [r for r in recording.resources
            if not (r.inputs.get("kind") == kind and (r.inputs.get("metadata") or {}).get("name") == name)]
    assert len(kept) < len(recording.resources), f"{kind} {name} is not in the stack"
    return dataclasses.replace(recording, resources=kept)


def _edited(recording: Recording, resource: str, edit) -> Recording:
    resources = []
    for registration in recording.resources:
        if registration.name == resource:
            registration = dataclasses.replace(registration, inputs=copy.deepcopy(registration.inputs))
            edit(registration.inputs)
        resources.append(registration)
    return dataclasses.replace(recording, resources=resources)


@pytest.mark.parametrize("kind, name, expected", [
    ("PersistentVolumeClaim", "model-artifacts", "-> PersistentVolumeClaim tenant-acme-chat/model-artifacts"),
    ("Service", "chat-dense-epp", "spec.endpointPickerRef -> Service tenant-acme-chat/chat-dense-epp"),
    ("ServiceAccount", "tenant-workload", "-> ServiceAccount tenant-acme-chat/tenant-workload"),
    ("Secret", "ngc-pull-secret", "-> Secret ncp-validation/ngc-pull-secret"),  # tenants pull through the node
    ("ConfigMap", "chat-dense-engine", "-> ConfigMap tenant-acme-chat/chat-dense-engine"),
    ("PriorityClass", "ncp-serving", "-> PriorityClass ncp-serving"),
    ("Queue", "tenant-acme-chat", "-> Queue tenant-acme-chat"),
    ("Queue", "ncp-root", "spec.parentQueue -> Queue ncp-root"),
    ("NetworkAttachmentDefinition", "rail-3", "-> NetworkAttachmentDefinition tenant-globex-research/rail-3"),
    ("Namespace", "dynamo-system", "-> Namespace dynamo-system"),
    ("Service", "modelexpress", "-> Service tenant-acme-chat/modelexpress port 8001"),
    ("Role", "chat-dense-epp", "roleRef -> Role tenant-acme-chat/chat-dense-epp"),
])
def test_a_missing_object_is_a_dangling_reference(stacks, kind, name, expected):
    recording, raw = stacks["prod"]
    dangling = [str(ref) for ref in dangling_references(_without(recording, kind, name), effective_config(raw))]
    assert any(expected in ref for ref in dangling), dangling


def test_wrong_port_undeclared_storage_class_and_unknown_network_fail(stacks):
    recording, raw = stacks["prod"]

    def pool_port(inputs):
        inputs["spec"]["endpointPickerRef"]["port"]["number"] = 9999

    def storage_class(inputs):
        inputs["spec"]["storageClassName"] = "fast-ssd"

    def network(inputs):
        service = inputs["spec"]["services"]["TRTLLMDecodeWorker"]
        # The rails' attachments are the tenant's own: none is left in the Network Operator's namespace (#22 item 4).
        service["extraPodMetadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"] += ",nvidia-network-operator/rail-0"

    broken = _edited(recording, "endpoint-chat-dense-inference-pool", pool_port)
    broken = _edited(broken, "storage-acme-chat-model-artifacts", storage_class)
    broken = _edited(broken, "endpoint-reasoning-large-graph", network)
    dangling = [str(ref) for ref in dangling_references(broken, effective_config(raw))]
    assert any("Service tenant-acme-chat/chat-dense-epp port 9999" in ref for ref in dangling), dangling
    assert any("-> StorageClass fast-ssd" in ref for ref in dangling), dangling
    assert any("NetworkAttachmentDefinition nvidia-network-operator/rail-0" in ref for ref in dangling), dangling
    assert len(dangling) == 3, dangling


def test_site_prerequisites_resolve_only_when_the_config_declares_them(stacks):
    recording, raw = stacks["prod"]
    assert not dangling_references(recording, effective_config(raw))
    undeclared = copy.deepcopy(raw)
    undeclared["components"]["tenancy"]["gatewayNamespace"] = "other-gateway"
    dangling = [str(ref) for ref in dangling_references(recording, effective_config(undeclared))]
    assert dangling and all("-> Namespace ncp-gateway" in ref for ref in dangling), dangling


def test_an_object_without_its_namespace_dependency_is_reported(stacks):
    recording, _ = stacks["prod"]
    namespace = next(r.urn for r in recording.resources if r.inputs.get("kind") == "Namespace"
                     and r.inputs["metadata"]["name"] == "tenant-acme-chat")
    resources = [dataclasses.replace(r, dependencies=[], property_dependencies={})
                 if r.name == "model-chat-dense-provenance" else r for r in recording.resources]
    assert namespace in {u for r in recording.resources if r.name == "model-chat-dense-provenance"
                         for u in r.dependencies}
    missing = missing_namespace_dependencies(dataclasses.replace(recording, resources=resources))
    assert missing == ["model-chat-dense-provenance (ConfigMap in tenant-acme-chat)"]


# RA: Kubernetes Architecture For Inference: "Gateway API Inference Extension can be included"
def test_an_endpoint_picker_exactly_when_the_gateway_extension_is_on(stacks):
    lab, prod = stacks["lab"][0], stacks["prod"][0]
    assert lab.custom_resources("DynamoGraphDeployment") and not lab.custom_resources("InferencePool")
    assert not lab.of_type("ncp-inference:layers:EndpointPicker")
    pools = {r.inputs["spec"]["endpointPickerRef"]["name"] for r in prod.custom_resources("InferencePool")}
    pickers = {r.inputs["metadata"]["name"] for r in prod.custom_resources("Deployment")
               if r.inputs["metadata"]["name"].endswith("-epp")}
    assert pools == pickers == {"chat-dense-epp", "reasoning-large-epp"}
