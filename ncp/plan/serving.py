"""Serving config schema: `ncp-inference:endpoints` and `components.serving` (storage tiers, gateway, ModelExpress,
validation suite)."""
import ipaddress
import re
from typing import Annotated, Literal, Optional, Union

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel

from ncp.plan.catalog import LocalDecision, load_allowlists, load_dynamo_runtime
from ncp.plan.behaviour_thresholds import FailureThresholds, StartupThresholds
from ncp.plan.strict import OneOf, StrictModel, Text
from ncp.plan.thresholds import AcceptanceThresholds

# Names that move, in any spelling: branches and tags (refs/heads/..., refs/tags/..., a remote's name in front).
FLOATING_REVISIONS = {"main", "master", "latest", "head", "stable", "dev", "develop", "nightly", "release"}
_REF_PREFIXES = ("refs/heads/", "refs/tags/", "refs/remotes/", "origin/", "heads/", "tags/")


def backend_names() -> tuple[str, ...]:
    """The backends Dynamo runs for us: the keys of data/dynamo-backends.yaml `backends`, their one home."""
    return tuple(load_dynamo_runtime().backends)


Backend = Annotated[str, AfterValidator(OneOf(backend_names, "data/dynamo-backends.yaml backends"))]
Role = Literal["worker", "prefill", "decode"]


def revision_problem(source: str, revision: str) -> Optional[str]:
    """Why `revision` of `source` is not an immutable revision, or None. A source whose revisions have a known form
    (data/allowlists.yaml modelRevisions: a Hugging Face repository's full commit hash) takes only that form; any
    other source refuses a branch or tag name however it is spelled."""
    forms = load_allowlists().model_revisions
    prefix = next((prefix for prefix in forms if source.startswith(prefix)), None)
    if prefix is not None:
        if re.fullmatch(forms[prefix], revision):
            return None
        return (f"revision {revision!r} is not a commit hash of the {prefix} repository (a branch or tag name moves; "
                f"the form is {forms[prefix]}); look up the commit it points at, e.g. curl -s "
                f"https://huggingface.co/api/models/<repo>/revision/{revision.strip() or 'main'} | jq -r .sha")
    spelled = revision.strip().lower()
    for ref_prefix in _REF_PREFIXES:
        spelled = spelled.removeprefix(ref_prefix)
    if spelled in FLOATING_REVISIONS or revision.strip().lower().startswith(_REF_PREFIXES):
        return f"revision {revision!r} names a branch or tag, which moves; pin the immutable version or commit"
    return None


class Model(StrictModel):
    name: Text = Field(description="served model name, e.g. Qwen/Qwen3-32B")
    source: str = Field(pattern=r"^[a-z0-9]+://.+", description="artifact URI, e.g. hf://Qwen/Qwen3-32B")
    revision: Text = Field(description="the commit (hf://: the full commit hash); never a branch or tag")
    model_class: Text = Field(alias="class", description="a model class of data/backend-disposition.yaml")
    tokenizer: Optional[Text] = Field(default=None, description="defaults to the model name")
    credentials_secret: Optional[Text] = Field(
        default=None, description="Secret in the tenant namespace with key HF_TOKEN, for gated sources")

    # RA: Security And Compliance: "Model artifact sources should have access controls, provenance checks"
    @field_validator("revision")
    @classmethod
    def _pinned(cls, revision: str, info: ValidationInfo) -> str:
        problem = revision_problem(info.data.get("source", ""), revision)
        if problem:
            raise ValueError(problem)
        return revision


class Slo(StrictModel):
    """The endpoint's service profile: traffic shape for sizing and benchmarking, and its acceptance bar."""

    isl: int = Field(gt=0, description="input sequence length (tokens)")
    osl: int = Field(gt=0, description="output sequence length (tokens)")
    ttft_ms: float = Field(gt=0, description="time-to-first-token target (ms) the sizing and planner aim at")
    tpot_ms: float = Field(gt=0, description="time-per-output-token target (ms) the sizing and planner aim at")
    concurrency: int = Field(default=16, gt=0, description="concurrent requests of the benchmark; thresholds are "
                                                           "judged at this level")
    request_count: int = Field(default=200, gt=0, description="requests the benchmark sends")
    isl_stddev: int = Field(default=0, ge=0, description="spread of the benchmark's input lengths (tokens)")
    osl_stddev: int = Field(default=0, ge=0, description="spread of the benchmark's output lengths (tokens)")
    concurrency_sweep: list[Annotated[int, Field(gt=0)]] = Field(
        default_factory=list, description="further concurrency levels AIPerf measures, for the knee (evidence)")
    thresholds: AcceptanceThresholds = Field(description="the acceptance bar of the benchmark run")
    startup: Optional[StartupThresholds] = Field(
        default=None, description="cold/warm start thresholds; set, the evidence needs the serving twin's startup "
                                  "record")
    failure: Optional[FailureThresholds] = Field(
        default=None, description="worker-kill thresholds; set, the evidence needs the twin's failure record")


class PlannerSettings(StrictModel):
    """Bounds of the Dynamo SLA planner, which scales the endpoint's workers to slo.ttftMs and slo.tpotMs. Unset
    bounds derive from the sizing file: at least 1 worker per role, at most the sized replicas per role."""

    min_replicas: dict[Role, Annotated[int, Field(ge=1)]] = Field(
        default_factory=dict, description="role (worker, or prefill and decode) -> fewest workers; default 1")
    max_replicas: dict[Role, Annotated[int, Field(ge=1)]] = Field(
        default_factory=dict, description="role -> most workers; default the sized replicas. The pinned planner "
                                          "caps the total, so these add up to its GPU budget")
    adjustment_interval_seconds: int = Field(
        default=180, gt=0, description="seconds between SLA scaling decisions (Dynamo's default 180)")


class Endpoint(StrictModel):
    """An LLM serving endpoint: a DynamoGraphDeployment in its tenant's namespace, shaped by its sizing file."""

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=40,
                      description="the endpoint's name: its graph, Jobs, rules and evidence carry it")
    tenant: Text = Field(description="the tenant that serves it (its namespace, queue and quota)")
    model: Model = Field(description="the served model, pinned to a revision")
    backend: Backend = Field(default="trtllm", description="the inference engine Dynamo runs "
                                                          "(data/dynamo-backends.yaml; the disposition matrix decides)")
    sizing: Text = Field(description="AIConfigurator sizing file, relative to the project root")
    router: Literal["kv", "round-robin", "random"] = Field(
        default="kv", description="how the Dynamo frontend routes requests to workers (kv: KV-cache aware)")
    planner: Optional[PlannerSettings] = Field(
        default=None, description="run the Dynamo SLA planner against slo.ttftMs and slo.tpotMs: true, or its bounds")
    kv_offload: Optional[bool] = Field(
        default=None, description="offload KV blocks to the kvOffload storage tier through Dynamo's KV block manager; "
                                  "default: on when the site has that tier")
    slo: Slo = Field(description="the service profile: traffic shape and acceptance thresholds")

    @field_validator("planner", mode="before")
    @classmethod
    def _planner_switch(cls, value):
        """planner: true takes every bound from the sizing file; false is no planner."""
        if value is True:
            return {}
        return None if value is False else value


class StorageTier(StrictModel):
    """One storage tier: the class its volumes use, their size and access mode."""

    storage_class: Text = Field(description="an existing StorageClass (a recorded local decision)")
    size: str = Field(pattern=r"^[0-9]+(Mi|Gi|Ti)$", description="size of each claim (or per-pod volume) of the tier")
    access_mode: Literal["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany"] = Field(
        default="ReadWriteOnce", description="the claims' access mode")


# RA: Storage: "Inference needs more than one storage tier."
class StorageTiers(StrictModel):
    """One storage class per tier; the RA keeps artifacts, cache, KV offload, benchmark output and telemetry apart."""

    model_artifacts: StorageTier = Field(description="persistent model artifacts, per tenant")
    model_cache: StorageTier = Field(description="node-local model cache, a per-pod ephemeral volume")
    benchmark_output: StorageTier = Field(description="AIPerf and validation outputs, per tenant")
    kv_offload: Optional[StorageTier] = Field(
        default=None, description="KV cache offload to disk (KVBM), a per-pod ephemeral volume; turns KV offload on")
    telemetry_retention: Optional[StorageTier] = Field(
        default=None, description="the Prometheus stack's volume (only with telemetry.prometheusStack)")

    # RA: Storage: "distinguish persistent model artifact storage from ephemeral cache"
    @model_validator(mode="after")
    def _separate(self) -> "StorageTiers":
        seen: dict[str, str] = {}
        for key, value in self:  # named as the stack file spells them (modelArtifacts), not as claims are
            if value is None:
                continue
            key = to_camel(key)
            if value.storage_class in seen:
                raise ValueError(f"tiers {seen[value.storage_class]} and {key} share storageClass "
                                 f"{value.storage_class!r}; give each tier its own class")
            seen[value.storage_class] = key
        return self

    def named(self) -> list[tuple[str, StorageTier]]:
        tiers = [("model-artifacts", self.model_artifacts), ("model-cache", self.model_cache),
                 ("benchmark-output", self.benchmark_output), ("kv-offload", self.kv_offload),
                 ("telemetry-retention", self.telemetry_retention)]
        return [(name, value) for name, value in tiers if value is not None]


class Validation(StrictModel):
    """The validation, benchmark and readiness Jobs: the ISV NCP Validation Suite, AIPerf, fio and nccl-tests
    images."""

    suite: bool = Field(default=True, description="define the ISV NCP Validation Suite Job")
    suite_image: Optional[Text] = Field(default=None, description="site-built image of the pinned validation suite")
    benchmark_image: Optional[Text] = Field(default=None, description="site-built image with the pinned aiperf")
    storage_image: Optional[Text] = Field(default=None, description="site-built image with the pinned fio (storage "
                                         "readiness Jobs on RDMA profiles)")
    nccl_image: Optional[Text] = Field(default=None, description="site-built image with the pinned nccl-tests MPI "
                                       "binaries and openssh-server (the NCCL readiness Job; mpirun starts its ranks "
                                       "over ssh, which the NGC PyTorch image cannot serve); required by digest in "
                                       "prod, elsewhere the matrix's ncclTests image by tag")


IN_CLUSTER_URL = (r"^https?://[a-z0-9]([-a-z0-9]*[a-z0-9])?\.(?P<namespace>[a-z0-9]([-a-z0-9]*[a-z0-9])?)\.svc"
                  r"(\.cluster\.local)?(:(?P<port>[0-9]+))?(/.*)?$")


def in_cluster_target(url: Optional[str], key: str) -> Optional[tuple[str, int]]:
    """(namespace, port) of an in-cluster URL (IN_CLUSTER_URL), for the egress policy towards it; None for None."""
    if url is None:
        return None
    match = re.match(IN_CLUSTER_URL, url)
    if match is None:  # the field's validator admits only in-cluster URLs
        raise ValueError(f"{key} {url!r} is not an in-cluster URL")
    scheme_port = 443 if url.startswith("https") else 80
    return match.group("namespace"), int(match.group("port") or scheme_port)


class ApiServerEgress(StrictModel):
    """Where Dynamo pods reach the Kubernetes API (Kubernetes discovery watches EndpointSlices and
    DynamoWorkerMetadata and each worker writes its own). A NetworkPolicy cannot name the API server: most CNIs apply
    policy after the `kubernetes` Service is translated to its endpoints, so egress must allow the endpoint addresses
    and port (`kubectl get endpointslice -n default -l kubernetes.io/service-name=kubernetes`), not the Service's
    ClusterIP and port 443."""

    cidrs: list[str] = Field(default_factory=lambda: ["0.0.0.0/0"], min_length=1,
                             description="API server endpoint addresses as CIDRs; required in prod")
    ports: list[int] = Field(default_factory=lambda: [443, 6443], min_length=1,
                             description="API server endpoint ports (6443 on kubeadm clusters, 443 on most managed)")

    @field_validator("cidrs")
    @classmethod
    def _cidrs(cls, cidrs: list[str]) -> list[str]:
        for cidr in cidrs:
            ipaddress.ip_network(cidr, strict=True)
        return cidrs


def _ipv4_cidr(value: str) -> str:
    ipaddress.IPv4Network(value)
    return value


Cidr = Annotated[str, AfterValidator(_ipv4_cidr)]


class SourceProxy(StrictModel):
    """An HTTP(S) proxy the staging Jobs reach the model source through."""

    url: str = Field(pattern=r"^https?://[A-Za-z0-9.-]+:[0-9]{1,5}/?$", description="http(s)://host:port")
    cidrs: list[Cidr] = Field(min_length=1, description="the proxy's addresses (NetworkPolicy selects by address)")

    @property
    def port(self) -> int:
        return int(self.url.rstrip("/").rsplit(":", 1)[1])


class SourceMirror(StrictModel):
    """An in-cluster mirror of the model hub (Hugging Face API compatible), run by the site."""

    service: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", description="the mirror's Service")
    namespace: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", description="the Service's namespace")
    port: int = Field(ge=1, le=65535, description="the Service's port")
    scheme: Literal["http", "https"] = Field(default="http", description="how the staging Jobs talk to it")

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.service}.{self.namespace}.svc.cluster.local:{self.port}"


class ModelStagingSettings(StrictModel):
    """How the model staging Jobs reach the model source; a NetworkPolicy opens exactly this for staging pods."""

    air_gapped: bool = Field(default=False, description="the site has no egress: staging uses the in-cluster mirror")
    allowed_cidrs: list[Cidr] = Field(
        default_factory=lambda: ["0.0.0.0/0"], min_length=1,
        description="direct HTTPS egress to the model source (used without proxy and mirror)")
    proxy: Optional[SourceProxy] = Field(default=None, description="reach the source through this proxy")
    mirror: Optional[SourceMirror] = Field(default=None, description="fetch from this in-cluster mirror instead")

    # RA: Security And Compliance: "provenance checks, and air-gap behavior when needed"
    @model_validator(mode="after")
    def _one_route(self) -> "ModelStagingSettings":
        if self.air_gapped and self.mirror is None:
            raise ValueError(
                "an air-gapped site has no egress to the model source: name an in-cluster mirror "
                "(modelStaging.mirror.{service,namespace,port}) or set airGapped: false")
        if self.proxy is not None and self.mirror is not None:
            raise ValueError("staging reaches the source through either a proxy or a mirror: remove one")
        if self.air_gapped and self.proxy is not None:
            raise ValueError("an air-gapped site has no proxy egress: remove modelStaging.proxy")
        return self


DNS_NAME = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# Gateway API bounds a rule's backendRefs and a route's hostnames (maxItems 16 each) and gives host names this
# pattern: kubernetes-sigs/gateway-api config/crd/standard/gateway.networking.k8s.io_httproutes.yaml@v1.6.1.
MAX_ROUTE_BACKENDS = 16


class RouteBackend(StrictModel):
    endpoint: Text = Field(description="an endpoint of the route's tenant (its InferencePool)")
    weight: int = Field(ge=0, le=100, description="percent of the route's requests; 0 keeps a standby endpoint")


class Route(StrictModel):
    """One HTTPRoute from the site's Gateway to the InferencePools of a tenant's endpoints. Several backends of the
    same served model make a blue/green or canary rollout a change of weights."""

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=40, description="the HTTPRoute's name")
    tenant: Text = Field(description="the tenant whose namespace holds the route and its endpoints")
    hostnames: list[Annotated[str, Field(pattern=DNS_NAME, max_length=253)]] = Field(
        default_factory=list, max_length=16,
        description="host names the route answers (default: every host of the listener)")
    path_prefix: str = Field(default="/", pattern=r"^/[A-Za-z0-9/._~-]*$", description="request path prefix")
    backends: list[RouteBackend] = Field(min_length=1, max_length=MAX_ROUTE_BACKENDS,
                                         description="the endpoints requests go to; weights add up to 100")


class GatewaySettings(StrictModel):
    """The site's Gateway (gateway.networking.k8s.io/v1) that tenant routes attach to. The site runs it in
    components.tenancy.gatewayNamespace; the program never creates it (a site prerequisite)."""

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63, description="the Gateway's name")
    section_name: Optional[str] = Field(default=None, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
                                        description="the Gateway listener routes attach to (default: every one)")
    local_decision: LocalDecision = Field(description="the Gateway implementation the site chose, and why")
    routes: list[Route] = Field(default_factory=list, description="HTTPRoutes to the endpoints' InferencePools")

    @field_validator("routes")
    @classmethod
    def _unique_routes(cls, routes: list[Route]) -> list[Route]:
        names = [route.name for route in routes]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"route names must be unique; repeated: {', '.join(repeated)}")
        return routes


class ServingSettings(StrictModel):
    """Serving and model data: storage tiers, egress, gateway, ModelExpress, image digests, validation Jobs."""

    storage: Optional[StorageTiers] = Field(default=None, description="storage tiers (required to serve endpoints)")
    api_server_egress: Optional[ApiServerEgress] = Field(
        default=None, description="egress of Dynamo pods to the Kubernetes API; lab default: any address on 443/6443")
    planner_prometheus_url: Optional[str] = Field(
        default=None, pattern=IN_CLUSTER_URL,
        description="in-cluster Prometheus the Dynamo planner queries, http://<service>.<namespace>.svc:<port> "
                    "(required when an endpoint sets planner: true; tenant namespaces allow no other egress)")

    def planner_prometheus(self) -> Optional[tuple[str, int]]:
        """(namespace, port) of the planner's Prometheus, for the planner's egress."""
        return in_cluster_target(self.planner_prometheus_url, "plannerPrometheusUrl")
    model_staging: ModelStagingSettings = Field(default_factory=ModelStagingSettings)
    # RA: Kubernetes Architecture For Inference: "Gateway API Inference Extension can be included"
    # RA: Design Alternatives And Tradeoffs: "Direct platform API versus Kubernetes Gateway API Inference Extension"
    gateway_inference_extension: bool = Field(default=False, description="an InferencePool per endpoint")
    gateway: Optional[GatewaySettings] = Field(
        default=None, description="the site's Gateway and the routes to the endpoints' InferencePools")
    model_express: bool = Field(default=False, description="deploy ModelExpress and point workers at it")
    image_digests: dict[Union[Backend, Literal["planner", "epp", "tritonserver", "tensorrt", "dcgm", "ncclTests"]],
                        str] = Field(
        default_factory=dict, description="backend (planner, epp, tritonserver, tensorrt; dcgm and ncclTests: the "
                                          "return-to-service gate's images) -> sha256 digest of the pinned image "
                                          "(required in prod)")
    validation: Validation = Field(default_factory=Validation)

    @field_validator("image_digests")
    @classmethod
    def _digests(cls, digests: dict) -> dict:
        for backend, digest in digests.items():
            if not (digest.startswith("sha256:") and len(digest) == 71):
                raise ValueError(f"{backend}: {digest!r} is not a sha256 digest (sha256:<64 hex>)")
        return digests
