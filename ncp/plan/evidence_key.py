"""The like-for-like key of acceptance evidence: the facts of a deployment that, when any of them changes, make
earlier evidence say nothing about it. The program stamps the key on each served resource (annotation
EVIDENCE_KEY_ANNOTATION), every evidence record carries the key it was measured under, and the promotion gate and
`ncp evidence compare` match the two field by field."""
# RA: Serving Performance: "Reject comparisons that omit backend version, model artifact revision, network mode"
# RA: Validation Methodology: "Kubernetes version, network mode, storage path, prompt profile, output profile"
import hashlib
import json

from ncp.plan.catalog import ROOT
from ncp.plan.endpoint_plan import EndpointPlan
from ncp.plan.inference_services import InferenceServicePlan
from ncp.plan.profile import DriverManagement
from ncp.plan.site_plan import SitePlan

# The fields of a deployment's key, in the order records and messages show them; cacheState is the run's (the gate
# asks for the states its config names), not the deployment's.
DEPLOYMENT_FIELDS = ("modelRevision", "image", "sizingFile", "sizingSha256", "gpuDriver", "kubernetesVersion",
                     "networkMode")
KEY_FIELDS = DEPLOYMENT_FIELDS + ("cacheState",)


def gpu_driver(site_plan: SitePlan) -> str:
    """The GPU driver the stack runs: the GPU Operator's driver container where it manages the driver, else the node
    image's (not known to the program, so recorded as such)."""
    if site_plan.driver == DriverManagement.MANAGED:
        return site_plan.matrix.pin("gpuOperator").images.get("driver", "managed (no driver image pinned)")
    return "preinstalled (node image)"


def network_mode(site_plan: SitePlan, endpoint_plan: EndpointPlan) -> str:
    rails = endpoint_plan.mode == "disaggregated" and site_plan.network_enabled
    return endpoint_plan.mode + (" over RDMA rails" if rails else "")


def sha256_of_file(relative: str) -> str:
    return hashlib.sha256((ROOT / relative).read_bytes()).hexdigest()


def endpoint_key(site_plan: SitePlan, endpoint_plan: EndpointPlan) -> dict[str, str]:
    endpoint = endpoint_plan.endpoint
    return {"modelRevision": endpoint.model.revision, "image": endpoint_plan.image, "sizingFile": endpoint.sizing,
            "sizingSha256": sha256_of_file(endpoint.sizing), "gpuDriver": gpu_driver(site_plan),
            "kubernetesVersion": site_plan.kubernetes_version, "networkMode": network_mode(site_plan, endpoint_plan)}


def service_key(site_plan: SitePlan, service_plan: InferenceServicePlan) -> dict[str, str]:
    """A Triton service has no AIConfigurator sizing: its engine directory (source digest, GPU product, precision)
    and its serving settings stand in for the sizing file."""
    service = service_plan.service
    serving = json.dumps(service.model_dump(by_alias=True, mode="json", include={
        "engine", "gpus", "replicas", "instances_per_gpu", "dynamic_batching", "preprocessing"}), sort_keys=True)
    return {"modelRevision": service.artifact.revision, "image": service_plan.server_image,
            "sizingFile": service_plan.engine_dir, "sizingSha256": hashlib.sha256(serving.encode()).hexdigest(),
            "gpuDriver": gpu_driver(site_plan), "kubernetesVersion": site_plan.kubernetes_version,
            "networkMode": f"single server x {service.replicas} (no KV transfer)"}


def annotation_value(key: dict[str, str]) -> str:
    """The key as the resource annotation holds it (compact, sorted JSON; the gate parses it)."""
    return json.dumps(key, sort_keys=True, separators=(",", ":"))
