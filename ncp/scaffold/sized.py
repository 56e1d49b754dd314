"""The scaffold's endpoints and tenant quotas from the site's AIConfigurator sizing files (`--endpoint TENANT:FILE`).

Each sizing file becomes an endpoint of its tenant, and the tenant's quotas are what quota admission will count for
its pods at once: the plan's own count (ncp/plan/tenant_pods.py) over the sized workers, the frontends, the picker and
the
staging and benchmark Jobs, each number written with where it came from. `ncp check` re-counts the same pods,
so a quota written here holds the endpoints as sized."""
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ncp.plan.catalog import ROOT
from ncp.plan.endpoint_plan import WorkerGroup
from ncp.plan.profile import HardwareProfile
from ncp.plan.rules.raw import PLACEHOLDER
from ncp.plan.sizing_file import SizingFileError, SizingResult, load_sizing
from ncp.plan.tenant_pods import QUOTA_KEYS, TenantDemand, endpoint_pod_groups

NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")
# The host quotas written from the sizing (GPUs are written beside the tenant's answer).
WRITTEN_KEYS = ("cpuQuota", "cpuLimit", "memoryQuota", "memoryLimit")


class SizingInputError(ValueError):
    pass


@dataclass(frozen=True)
class SizedEndpoint:
    """One endpoint of the new site, from its sizing file."""

    tenant: str
    name: str
    sizing: str  # the file, relative to the project root where it is inside it
    result: SizingResult

    @property
    def gpus(self) -> int:
        return self.result.total_gpus_used()

    def workers(self) -> list[WorkerGroup]:
        return [WorkerGroup(role=role, **group.model_dump()) for role, group in self.result.groups().items()]


def parse_endpoint(spec: str, profile: HardwareProfile) -> SizedEndpoint:
    """TENANT:FILE -> the endpoint named after the file, checked against the profile it will run on."""
    tenant, _, file = spec.partition(":")
    if not tenant or not file:
        raise SizingInputError(f"--endpoint {spec!r}: write TENANT:SIZING_FILE, e.g. acme:sites/west/sizing/chat.yaml")
    path = Path(file) if Path(file).is_absolute() else ROOT / file
    try:
        result = load_sizing(path)
    except SizingFileError as error:
        raise SizingInputError(f"--endpoint {spec!r}: {error.problem}; fix: {error.fix}") from None
    name = path.stem
    if not NAME.match(name):
        raise SizingInputError(f"--endpoint {spec!r}: the endpoint is named after the file, and {name!r} is not a DNS "
                               "label: rename the file, e.g. chat-dense.yaml")
    system = profile.aiconfigurator_system
    if result.request.system != system:
        raise SizingInputError(f"--endpoint {spec!r}: {file} was sized for system {result.request.system!r}; profile "
                               f"{profile.name} is {system!r}: re-size it with --system {system} (its header's "
                               "command)")
    sizing = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
    return SizedEndpoint(tenant, name, sizing, result)


def tenant_demand(tenant: str, endpoints: Sequence[SizedEndpoint], profile: HardwareProfile,
                  picker: bool) -> TenantDemand:
    """What the tenant's endpoints take at once, counted as the plan counts it (no planner, no KV offload)."""
    demand = TenantDemand(tenant)
    for endpoint in endpoints:
        demand.groups += endpoint_pod_groups(endpoint.name, endpoint.result.request.backend, endpoint.workers(),
                                             profile.gpu.per_node, kv_offload=False, planner=False, picker=picker)
    return demand


def quota_lines(demand: TenantDemand, endpoints: Sequence[SizedEndpoint]) -> list[str]:
    """cpuQuota/cpuLimit/memoryQuota/memoryLimit of the tenant, each with what it holds."""
    lines = ["      # GPUs and quotas: what quota admission counts for its pods at once (tenant_pods.py), from",
             *[f"      #   {e.sizing}: endpoint {e.name}, {e.gpus} GPUs" for e in endpoints],
             "      # with the workers' host resources per GPU and /dev/shm of data/dynamo-backends.yaml and the other",
             "      # pods' of data/tenant-pods.yaml. Raise them for pods the tenant runs itself; offline.check",
             "      # re-counts them."]
    for key in WRITTEN_KEYS:
        quota_key, attribute, _ = QUOTA_KEYS[key]
        value = demand.shown(attribute)
        shown = f'"{value}"' if key.startswith("cpu") else value
        lines.append(f"      {key}: {shown}  # {quota_key}: {demand.breakdown(attribute)}")
    return lines


def _placeholder(what: str) -> str:
    return f'"{PLACEHOLDER}({what})"'


def endpoint_lines(endpoints: Sequence[SizedEndpoint]) -> list[str]:
    """The endpoints section: model, backend, sizing and SLO from each sizing file's request; what only the site
    knows (revision, model class) as placeholders."""
    if not endpoints:
        return []
    lines = ["  ncp-inference:endpoints:"]
    for endpoint in endpoints:
        request, estimate = endpoint.result.request, endpoint.result.estimates
        lines += [f"    - name: {endpoint.name}",
                  f"      tenant: {endpoint.tenant}",
                  "      model:",
                  f"        name: {request.model}",
                  f"        source: hf://{request.model}  # where staging downloads it (the allowlisted hf:// source)",
                  f"        revision: {_placeholder(f'full commit hash of {request.model} you serve')}",
                  f"        class: {_placeholder('model class of data/backend-disposition.yaml, e.g. dense-llm')}",
                  f"      backend: {request.backend}",
                  f"      sizing: {endpoint.sizing}",
                  "      slo:  # the sized request; the acceptance bar is the sized SLO",
                  f"        isl: {request.isl}",
                  f"        osl: {request.osl}",
                  f"        ttftMs: {request.ttft_ms:g}",
                  f"        tpotMs: {request.tpot_ms:g}",
                  f"        concurrency: {estimate.concurrency}  # AIConfigurator's estimate for the layout",
                  "        thresholds:",
                  f"          timeToFirstTokenP95Ms: {request.ttft_ms:g}",
                  f"          interTokenLatencyP95Ms: {request.tpot_ms:g}"]
    return lines


def _tier(what: str, size: str, access: str = "") -> str:
    return (f"{{storageClass: {_placeholder(f'existing StorageClass for {what}')}, "
            f"size: {_placeholder(f'size, e.g. {size}')}{access}}}")


def storage_lines(endpoints: Sequence[SizedEndpoint]) -> list[str]:
    """What endpoints need of the site's storage: a storage class and size per tier."""
    if not endpoints:
        return []
    return ["      storage:",
            "        modelArtifacts: " + _tier("model artifacts", "10Ti", ", accessMode: ReadWriteMany"),
            "        modelCache: " + _tier("the node-local model cache", "2Ti"),
            "        benchmarkOutput: " + _tier("benchmark output", "1Ti")]


def benchmark_image_lines(endpoints: Sequence[SizedEndpoint]) -> list[str]:
    if not endpoints:
        return []
    return ["        # AIPerf publishes no image: build one with the pinned aiperf version and push it to the site's",
            "        # registry.",
            "        benchmarkImage: " + _placeholder("site-built AIPerf image, e.g. nvcr.io/<your NGC org>/tools/"
                                                      "aiperf:<version>")]


def sized_gpus(tenant: str, quota: Optional[int], limit: Optional[int],
               endpoints: Sequence[SizedEndpoint]) -> tuple[int, int]:
    """The tenant's gpuQuota and gpuLimit: what its endpoints are sized to where the answer gives none; an answer
    below that is refused."""
    sized = sum(e.gpus for e in endpoints)
    if quota is None:
        return sized, max(sized, limit or 0)
    if quota < sized:
        used = ", ".join(f"{e.sizing} {e.gpus}" for e in endpoints)
        raise SizingInputError(f"--tenant {tenant}:{quota}: its endpoints are sized to {sized} GPUs ({used}); give "
                               f"it a GPU quota of at least {sized}, or leave the quota out to take the sized one")
    return quota, limit if limit is not None else quota
