"""What the plan resolves for each tenant's environment (the Tenancy component builds it)."""
from dataclasses import dataclass, field
from typing import Optional

from ncp.plan.admission import TenantExceptions
from ncp.plan.config import Tenant
from ncp.plan.names import tenant_namespace
from ncp.plan.pod_security import PodSecurity


@dataclass(frozen=True)
class TenantSpec:
    """A tenant's environment as the plan resolves it: namespace, queue, quotas with their defaults applied, access,
    Pod Security and node placement."""

    name: str
    namespace: str
    queue: str
    gpu_limit: int
    cpu_quota: str
    memory_quota: str
    cpu_limit: str
    memory_limit: str
    pods: int
    claims: int
    storage: str
    admins: list[str] = field(default_factory=list)
    viewers: list[str] = field(default_factory=list)
    pod_security: Optional[PodSecurity] = None  # the plan's exception to `restricted` (RDMA workers), with its reason
    node_selector: Optional[dict[str, str]] = None  # the tenant's dedicated nodes, enforced on every pod it creates
    exceptions: TenantExceptions = TenantExceptions()  # what admission lets its pods do beyond `restricted`
    platform_workloads: tuple[str, ...] = ()  # the platform's workloads in its namespace, whose pods it may not enter


@dataclass(frozen=True)
class TenantQueue:
    """A tenant's KAI leaf queue under the site's root queue."""

    tenant: str
    queue: str
    gpu_quota: int
    gpu_limit: int
    over_quota_weight: int


def tenant_queue(tenant: Tenant) -> TenantQueue:
    return TenantQueue(tenant=tenant.name, queue=tenant_namespace(tenant.name), gpu_quota=tenant.gpu_quota,
                       gpu_limit=tenant.gpu_limit, over_quota_weight=tenant.over_quota_weight)


def tenant_spec(tenant: Tenant, pod_security: Optional[PodSecurity], node_selector: Optional[dict[str, str]],
                exceptions: TenantExceptions, platform_workloads: tuple[str, ...] = ()) -> TenantSpec:
    namespace = tenant_namespace(tenant.name)
    return TenantSpec(name=tenant.name, namespace=namespace, queue=namespace, gpu_limit=tenant.gpu_limit,
                      cpu_quota=tenant.cpu_quota, memory_quota=tenant.memory_quota,
                      cpu_limit=tenant.cpu_limit or tenant.cpu_quota,
                      memory_limit=tenant.memory_limit or tenant.memory_quota,
                      pods=tenant.pod_quota, claims=tenant.claim_quota, storage=tenant.storage_quota,
                      admins=tenant.admins, viewers=tenant.viewers, pod_security=pod_security,
                      node_selector=node_selector, exceptions=exceptions, platform_workloads=platform_workloads)
