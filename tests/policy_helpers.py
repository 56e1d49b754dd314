"""Helpers to mutate real recorded stacks and evaluate the policy pack on them."""
import copy
import json

from ncp.offline.policy_check import PACK_DIR, evaluate, read_pack_config
from ncp.readmodel.recorder import Recording, Registration

LAB_CONFIG = read_pack_config(PACK_DIR / "config" / "lab.json")
PROD_CONFIG = read_pack_config(PACK_DIR / "config" / "prod.json")


def violations(recording: Recording, config: dict = None, policy: str = None) -> list:
    _, _, found = evaluate(recording, PROD_CONFIG if config is None else config)
    return [v for v in found if policy is None or v.policy == policy]


def messages(recording, policy, config=None) -> str:
    return "\n".join(v.message for v in violations(recording, config, policy))


def clone(recording: Recording) -> Recording:
    return copy.deepcopy(recording)


def find(recording: Recording, kind: str, name: str, namespace: str = None) -> Registration:
    for registration in recording.resources:
        meta = registration.wire_inputs.get("metadata", {})
        if registration.wire_inputs.get("kind") == kind and meta.get("name") == name and (
                namespace is None or meta.get("namespace") == namespace):
            return registration
    raise KeyError(f"{kind} {namespace}/{name}")


def find_release(recording: Recording, name: str) -> Registration:
    return recording.releases()[name]


def remove(recording: Recording, registration: Registration) -> None:
    recording.resources = [r for r in recording.resources if r.urn != registration.urn]


def set_inputs(registration: Registration, inputs: dict) -> None:
    registration.wire_inputs = json.loads(json.dumps(inputs))
    registration.inputs = json.loads(json.dumps(inputs))


def add(recording: Recording, manifest: dict, type_token: str = None) -> Registration:
    api_version, kind = manifest["apiVersion"], manifest["kind"]
    group_version = api_version if "/" in api_version else f"core/{api_version}"
    type_token = type_token or f"kubernetes:{group_version}:{kind}"
    name = manifest["metadata"]["name"]
    registration = Registration(
        urn=f"urn:pulumi:{recording.stack}::ncp-inference::{type_token}::test-{name}", type=type_token,
        name=f"test-{name}", custom=True, parent="", inputs={}, dependencies=[], property_dependencies={},
        options={"protect": False, "provider": "", "deleteBeforeReplace": False, "ignoreChanges": [],
                 "additionalSecretOutputs": []},
        wire_inputs={})
    set_inputs(registration, manifest)
    recording.resources.append(registration)
    return registration


def gpu_job(name: str, namespace: str, **pod) -> dict:
    spec = {"containers": [{"name": "main", "image": "nvcr.io/nvidia/cuda:12.8.0-base-ubuntu24.04",
                            "resources": {"limits": {"nvidia.com/gpu": 1}}}], "restartPolicy": "Never"}
    spec.update(pod)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": namespace},
            "spec": {"template": {"metadata": {"labels": {"kai.scheduler/queue": namespace}}, "spec": spec}}}


def dgd(name: str, namespace: str, disaggregated: bool = False, router: str = "kv", image: str = None,
        revision: str = "0123456789abcdef0123456789abcdef01234567", source: str = "hf://Qwen/Qwen3-8B") -> dict:
    image = image or "nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:1.2.1"
    worker = {"componentType": "worker", "replicas": 1, "resources": {"limits": {"gpu": "1"}},
              "extraPodSpec": {"mainContainer": {"image": image}}}
    services = {"Frontend": {"componentType": "frontend", "replicas": 1,
                             "envs": [{"name": "DYN_ROUTER_MODE", "value": router}],
                             "extraPodSpec": {"mainContainer": {"image": image}}}}
    if disaggregated:
        services["prefill"] = {**worker, "subComponentType": "prefill"}
        services["decode"] = {**worker, "subComponentType": "decode"}
    else:
        services["worker"] = worker
    return {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {"ncp-inference.io/endpoint": name},
                         "annotations": {"nvidia.com/kai-scheduler-queue": namespace,
                                         "ncp-inference.io/model-revision": revision,
                                         "ncp-inference.io/model-source": source}},
            "spec": {"backendFramework": "trtllm", "services": services}}
