"""What admission enforces on what tenants create after deploy: the facts the policy pack checks at preview (image
allowlist, digests in prod, the recorded Pod Security exceptions, KAI queues, the labels NetworkPolicies select on),
resolved for the Tenancy layer, which renders them as ValidatingAdmissionPolicies bound to tenant namespaces."""
from dataclasses import dataclass

from ncp.plan.catalog import integration_points, load_allowlists, load_dynamo_runtime, load_signals
from ncp.plan.names import (
    BENCHMARK_CLAIM, ENDPOINT_LABEL, PART_OF_LABEL, PROJECT, READINESS_LABEL, SERIES_COMPONENT_TYPE, SERIES_ENDPOINT,
    SERIES_MODEL, SERIES_TENANT, TARGET_LABELS,
)


@dataclass(frozen=True)
class TenantExceptions:
    """What a tenant's own workers need beyond Pod Security `restricted`, the only exceptions admission lets pass in
    its namespace (plan.site_plan tenant_pod_security says why, on the namespace)."""

    host_paths: tuple[str, ...] = ()  # node paths its pods may mount, read-only (KV offload to disk: the udev database)
    capabilities: tuple[str, ...] = ()  # capabilities its containers may add (RDMA workers: IPC_LOCK)
    uses_rails: bool = False  # its workers attach to the site's east-west RDMA rails


def tenant_exceptions(rdma: bool, kvbm: bool) -> TenantExceptions:
    return TenantExceptions(host_paths=tuple(load_allowlists().tenant_host_paths) if kvbm else (),
                            capabilities=tuple(load_dynamo_runtime().rdma_capabilities) if rdma else (),
                            uses_rails=rdma)


@dataclass(frozen=True)
class AdmissionPlan:
    """The site-wide facts of the tenant admission policies.

    Attributes:
        image_registries: registry prefixes tenant images must start with (data/allowlists.yaml imageRegistries).
        require_digest: tenant images must be pinned by digest (prod, as the pack's requireDigestForServing).
        platform_labels: label keys only the platform may put on pods: the NetworkPolicies in tenant namespaces
            select pods by them (model-source egress, API server egress, planner -> Prometheus), and readiness and
            evidence find Jobs by them.
        owner_label: (key, value) marking platform-owned objects (read-only to tenants, never set by them).
        series_labels: series labels a tenant's monitors may not write: the ones the program's monitors write and
            its rules attribute usage and SLOs by, and the scrape's own target labels.
        results_claims: the platform's claims in tenant namespaces that acceptance evidence is read from (the
            benchmark outputs): tenants may mount them read-only only, so they cannot write or swap the results.
    """

    image_registries: tuple[str, ...]
    require_digest: bool
    platform_labels: tuple[str, ...]
    owner_label: tuple[str, str]
    series_labels: tuple[str, ...]
    gpu_resource: str
    scheduler_name: str
    queue_label: str
    dgd_queue_annotation: str
    networks_annotation: str
    default_network_annotation: str
    results_claims: tuple[str, ...]


def admission_plan(require_digest: bool) -> AdmissionPlan:
    names = integration_points()
    dynamo_labels = load_signals()["dynamo"].pod_labels
    return AdmissionPlan(
        image_registries=tuple(load_allowlists().image_registries), require_digest=require_digest,
        platform_labels=(ENDPOINT_LABEL, dynamo_labels["graph"], READINESS_LABEL),
        owner_label=(PART_OF_LABEL, PROJECT),
        series_labels=(SERIES_TENANT, SERIES_ENDPOINT, SERIES_MODEL, SERIES_COMPONENT_TYPE, *TARGET_LABELS),
        gpu_resource=names.gpu.resource, scheduler_name=names.kai.scheduler_name,
        queue_label=names.kai.queue_label, dgd_queue_annotation=names.dynamo.queue_annotation,
        networks_annotation=names.multus.networks_annotation,
        default_network_annotation=names.multus.default_network_annotation,
        results_claims=(BENCHMARK_CLAIM,))
