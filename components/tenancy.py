"""Tenancy and security layer: one isolated namespace per tenant with complete quota, limits, default-deny
networking plus exactly the allows the platform needs, project-defined tenant Roles that cannot read platform
credentials or change platform-managed isolation, and a dedicated workload ServiceAccount."""
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components.kube import (
    POD_SECURITY_REASON, PRIORITY_SYSTEM, TENANT_LABEL, Layer, labels, ngc_pull_secret, policy_rules, psa_labels,
)
from components.network_policy import (
    DEFAULT_DENY, SAME_NAMESPACE, dns_egress, namespace_peer, tenant_platform_egress,
)
from plan.catalog import NetworkAccess, TenantAccess, integration_points
from plan.endpoints import PodSecurity

PULL_SECRET = "ngc-pull-secret"
WORKLOAD_SERVICE_ACCOUNT = "tenant-workload"
RBAC_GROUP = "rbac.authorization.k8s.io"
# Admission refuses a claim or pod the quota covers until the quota controller has written the quota's status
# ("status unknown for quota"): Pulumi waits for it (pulumi-kubernetes await annotation, provider >= 4.18), so
# whatever depends on the tenant environment is created after it.
QUOTA_STATUS_AWAIT = {"pulumi.com/waitFor": "jsonpath={.status.hard.pods}"}


@dataclass(frozen=True)
class TenantSpec:
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


@dataclass(frozen=True)
class TenancyArgs:
    tenants: list[TenantSpec]
    gateway_namespace: str
    monitoring_namespace: str
    platform_namespaces: dict[str, str]  # matrix component -> namespace: tenants reach the ports it admits them on
    network: NetworkAccess
    access: TenantAccess
    storage_classes: list[str]  # the classes tenant claims use: each gets its own storage quota
    ngc_api_key: Optional[pulumi.Output[str]]  # only with pullCredentials sharedKey (never in prod)


def quota_hard(tenant: TenantSpec, storage_classes: list[str]) -> dict[str, str]:
    """Every resource a tenant can consume, capped; cluster-exposing Service types not at all."""
    hard = {
        f"requests.{integration_points().gpu.resource}": str(tenant.gpu_limit),
        "requests.cpu": tenant.cpu_quota,
        "requests.memory": tenant.memory_quota,
        "limits.cpu": tenant.cpu_limit,
        "limits.memory": tenant.memory_limit,
        "pods": str(tenant.pods),
        "persistentvolumeclaims": str(tenant.claims),
        "requests.storage": tenant.storage,
        "services.loadbalancers": "0",
        "services.nodeports": "0",
    }
    for storage_class in sorted(set(storage_classes)):
        hard[f"{storage_class}.storageclass.storage.k8s.io/requests.storage"] = tenant.storage
        hard[f"{storage_class}.storageclass.storage.k8s.io/persistentvolumeclaims"] = str(tenant.claims)
    return hard


# RA: Software Defined Network Layer: "The network layer must provide tenant isolation"
def network_policies(args: TenancyArgs) -> dict[str, dict]:
    """name -> NetworkPolicy spec. Default-deny first; every other policy is one allow the platform needs."""
    policies = {
        "default-deny": DEFAULT_DENY,
        "allow-dns": dns_egress(args.network),
        "allow-same-namespace": SAME_NAMESPACE,
        "allow-gateway-ingress": {"podSelector": {}, "policyTypes": ["Ingress"],
                                  "ingress": [{"from": [namespace_peer(args.gateway_namespace)]}]},
        "allow-telemetry-scrape": {"podSelector": {}, "policyTypes": ["Ingress"],
                                   "ingress": [{"from": [namespace_peer(args.monitoring_namespace)]}]},
    }
    platform = tenant_platform_egress(args.network, args.platform_namespaces)
    if platform:
        policies["allow-platform-egress"] = platform
    return policies


class TenantEnvironment(Layer):
    def __init__(self, name: str, tenant: TenantSpec, args: TenancyArgs, opts: pulumi.ResourceOptions = None):
        super().__init__("TenantEnvironment", name, opts)
        child = self.child()
        tenant_labels = labels("tenancy", tenant.namespace, **{TENANT_LABEL: tenant.name})
        annotations = {POD_SECURITY_REASON: tenant.pod_security.reason} if tenant.pod_security else {}
        if tenant.node_selector:
            # With the site's PodNodeSelector admission plugin, every pod of the namespace (also those a tenant admin
            # creates) gets this selector, and a pod selecting another tenant's nodes is refused.
            annotations[integration_points().kubernetes.pod_node_selector_annotation] = ",".join(
                f"{key}={value}" for key, value in sorted(tenant.node_selector.items()))
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=tenant.namespace,
                labels={**tenant_labels,
                        **psa_labels(tenant.pod_security.level if tenant.pod_security else "restricted"),
                        integration_points().kai.queue_label: tenant.queue},
                annotations=annotations or None),
            opts=child,
        )
        ns = self.namespace.metadata.name
        in_namespace = self.child(self.namespace)

        def meta(object_name: str) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(name=object_name, namespace=ns, labels=tenant_labels)

        self.quota = k8s.core.v1.ResourceQuota(
            f"{name}-quota", metadata=k8s.meta.v1.ObjectMetaArgs(name="tenant-quota", namespace=ns,
                                                                labels=tenant_labels, annotations=QUOTA_STATUS_AWAIT),
            spec=k8s.core.v1.ResourceQuotaSpecArgs(hard=quota_hard(tenant, args.storage_classes)),
            opts=in_namespace,
        )
        # Tenant pods may not run at the platform's priorities (and so never preempt platform pods or other tenants
        # with them): a quota of zero pods scoped to those classes.
        k8s.core.v1.ResourceQuota(
            f"{name}-platform-priorities", metadata=meta("platform-priorities"),
            spec=k8s.core.v1.ResourceQuotaSpecArgs(
                hard={"pods": "0"},
                scope_selector=k8s.core.v1.ScopeSelectorArgs(match_expressions=[
                    k8s.core.v1.ScopedResourceSelectorRequirementArgs(
                        scope_name="PriorityClass", operator="In",
                        values=[PRIORITY_SYSTEM, *args.access.platform_priority_classes])])),
            opts=in_namespace,
        )
        k8s.core.v1.LimitRange(
            f"{name}-limits",
            metadata=meta("tenant-limits"),
            spec=k8s.core.v1.LimitRangeSpecArgs(limits=[k8s.core.v1.LimitRangeItemArgs(
                type="Container",
                default_request={"cpu": "500m", "memory": "1Gi"},
                default={"cpu": "4", "memory": "16Gi"},
                # No container may claim more than the whole namespace may, nor a sliver that defeats the quota.
                max={"cpu": tenant.cpu_limit, "memory": tenant.memory_limit},
                min={"cpu": "10m", "memory": "16Mi"},
            )]),
            opts=in_namespace,
        )
        self.network_policies = []
        for policy_name, spec in network_policies(args).items():
            self.network_policies.append(k8s.networking.v1.NetworkPolicy(
                f"{name}-netpol-{policy_name}", metadata=meta(policy_name), spec=spec, opts=in_namespace))
        for role, rules, groups in (("admins", args.access.admin, tenant.admins),
                                    ("viewers", args.access.viewer, tenant.viewers)):
            if not groups:
                continue
            # Project-defined Roles, not the built-in admin/view: those read Secrets and edit NetworkPolicies.
            k8s.rbac.v1.Role(f"{name}-{role}-role", metadata=meta(f"tenant-{role}"), rules=policy_rules(rules),
                             opts=in_namespace)
            k8s.rbac.v1.RoleBinding(
                f"{name}-{role}",
                metadata=meta(f"tenant-{role}"),
                role_ref=k8s.rbac.v1.RoleRefArgs(api_group=RBAC_GROUP, kind="Role", name=f"tenant-{role}"),
                subjects=[k8s.rbac.v1.SubjectArgs(kind="Group", name=group, api_group=RBAC_GROUP)
                          for group in groups],
                opts=in_namespace,
            )
        pull_secrets = None
        if args.ngc_api_key is not None:
            ngc_pull_secret(f"{name}-ngc-pull-secret", meta(PULL_SECRET), args.ngc_api_key, in_namespace)
            pull_secrets = [k8s.core.v1.LocalObjectReferenceArgs(name=PULL_SECRET)]
        self.service_account = k8s.core.v1.ServiceAccount(
            f"{name}-workload-sa",
            metadata=meta(WORKLOAD_SERVICE_ACCOUNT),
            automount_service_account_token=False,
            image_pull_secrets=pull_secrets,
            opts=in_namespace,
        )
        self.register_outputs({"namespace": ns, "serviceAccount": WORKLOAD_SERVICE_ACCOUNT, "queue": tenant.queue})


class Tenancy(Layer):
    def __init__(self, name: str, args: TenancyArgs, opts: pulumi.ResourceOptions = None):
        super().__init__("Tenancy", name, opts)
        self.tenants = {
            tenant.name: TenantEnvironment(f"{name}-{tenant.name}", tenant, args, self.child())
            for tenant in args.tenants
        }
        self.namespaces = {tenant: env.namespace.metadata.name for tenant, env in self.tenants.items()}
        self.register_outputs({"namespaces": self.namespaces})
