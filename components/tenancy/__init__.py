"""Tenancy and security layer: one isolated namespace per tenant with complete quota, limits, default-deny
networking plus exactly the allows the platform needs, project-defined tenant Roles that cannot read platform
credentials or change platform-managed isolation, and a dedicated workload ServiceAccount."""
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components.tenancy.admission import WORKLOAD_SERVICE_ACCOUNT, AdmissionGuardrails, namespace_annotations
from components.kube import (
    PRIORITY_SYSTEM, TENANT_LABEL, Layer, at_least, labels, network_attachment, ngc_pull_secret, policy_rules,
    psa_labels, repeated,
)
from components.network_policy import (
    DEFAULT_DENY, SAME_NAMESPACE, dns_egress, namespace_peer, tenant_platform_egress,
)
from ncp.plan.admission import AdmissionPlan
from ncp.plan.catalog import AccessRule, NetworkAccess, TenantAccess, integration_points
from ncp.plan.names import POD_SECURITY_REASON
from ncp.plan.pod_security import RESTRICTED
from ncp.plan.site_plan import RailAttachment
from ncp.plan.tenancy import TenantSpec
from ncp.plan.tenant_pods import load_tenant_pods

PULL_SECRET = "ngc-pull-secret"
RBAC_GROUP = "rbac.authorization.k8s.io"
# Admission refuses a claim or pod the quota covers until the quota controller has written the quota's status
# ("status unknown for quota"): Pulumi waits for it (pulumi-kubernetes await annotation, provider >= 4.18), so
# whatever depends on the tenant environment is created after it.
QUOTA_STATUS_AWAIT = {"pulumi.com/waitFor": "jsonpath={.status.hard.pods}"}


@dataclass(frozen=True)
class TenancyArgs:
    """Arguments of Tenancy: every tenant's namespace, quota, RBAC, network policies and pull secret.

    Attributes:
        tenants: the tenants.
        gateway_namespace: the namespace of the site's gateway, admitted to every tenant namespace on gateway_ports.
        gateway_ports: the ports the gateway reaches in a tenant namespace (the pools' target port, the endpoint
            picker's ext-proc port): nothing else of a tenant's pods is open to it.
        monitoring_namespace: the namespace of the site's Prometheus, admitted to scrape every tenant namespace.
        platform_namespaces: compatibility-matrix component -> its namespace: tenants reach the ports it admits them on.
        network: the network data (DNS, API server ports, platform ports) the tenant policies allow.
        access: the RBAC rules of the tenant admin and viewer roles and the priority classes tenants may use.
        storage_classes: the storage classes tenant claims use: each gets its own storage quota.
        ngc_api_key: the NGC API key (a secret) for a tenant pull secret, only with pullCredentials `sharedKey` (never
            in prod); None creates none.
        admission: what admission holds tenants to (the policies bound to every tenant namespace).
        signer_keys: the public keys of the site's cosign signers: images in tenant namespaces must be signed by one
            (the Sigstore policy-controller verifies them; the namespaces opt in); () verifies none. Default: ().
        rail_attachments: the site's RDMA rails as attachments: every tenant whose workers use the rails gets its own
            copy in its namespace and may attach to those (by name) only.
    """

    tenants: list[TenantSpec]
    gateway_namespace: str
    gateway_ports: list[int]
    monitoring_namespace: str
    platform_namespaces: dict[str, str]
    network: NetworkAccess
    access: TenantAccess
    storage_classes: list[str]
    ngc_api_key: Optional[pulumi.Output[str]]
    admission: AdmissionPlan
    rail_attachments: tuple[RailAttachment, ...]
    signer_keys: tuple[str, ...] = ()


def tenancy_problems(args: TenancyArgs) -> list[str]:
    """What makes the tenants unusable: none at all, a name or namespace twice, a count the quota cannot hold."""
    if not args.tenants:
        return ["needs at least one tenant"]
    problems = (repeated("tenant", [tenant.name for tenant in args.tenants])
                + repeated("namespace", [tenant.namespace for tenant in args.tenants]))
    for tenant in args.tenants:
        own = [*(["namespace is empty"] if not tenant.namespace else []), *at_least("gpu_limit", tenant.gpu_limit, 0),
               *at_least("pods", tenant.pods, 1), *at_least("claims", tenant.claims, 0)]
        problems += [f"tenant {tenant.name}: {problem}" for problem in own]
    return problems


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
                                  "ingress": [{"from": [namespace_peer(args.gateway_namespace)],
                                               "ports": [{"protocol": "TCP", "port": port}
                                                         for port in sorted(set(args.gateway_ports))]}]},
        "allow-telemetry-scrape": {"podSelector": {}, "policyTypes": ["Ingress"],
                                   "ingress": [{"from": [namespace_peer(args.monitoring_namespace)]}]},
    }
    platform = tenant_platform_egress(args.network, args.platform_namespaces)
    if platform:
        policies["allow-platform-egress"] = platform
    return policies


class TenantEnvironment(Layer):
    """One tenant's namespace with everything that confines it: quotas, limits, network policies, roles and the
    workload ServiceAccount."""

    def __init__(self, name: str, tenant: TenantSpec, args: TenancyArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("TenantEnvironment", name, opts)
        self._tenant, self._verify_signatures = tenant, bool(args.signer_keys)
        self._rails = args.rail_attachments if tenant.exceptions.uses_rails else ()
        self._labels = labels("tenancy", tenant.namespace, **{TENANT_LABEL: tenant.name})
        self.namespace = self._namespace()
        self._in_namespace = self.child(self.namespace)
        self.quota = self._quotas(args)
        self.network_policies = [
            k8s.networking.v1.NetworkPolicy(f"{name}-netpol-{policy_name}", metadata=self._meta(policy_name),
                                            spec=spec, opts=self._in_namespace)
            for policy_name, spec in network_policies(args).items()]
        for role, rules, groups in (("admins", args.access.admin, tenant.admins),
                                    ("viewers", args.access.viewer, tenant.viewers)):
            if groups:
                self._role(role, rules, groups)
        self.service_account = self._service_account(args.ngc_api_key)
        for attachment in self._rails:
            network_attachment(f"{name}-nad-{attachment.name}", attachment, self.namespace.metadata.name,
                               self._in_namespace)
        self.register_outputs({"namespace": self.namespace.metadata.name, "serviceAccount": WORKLOAD_SERVICE_ACCOUNT,
                               "queue": tenant.queue})

    def _meta(self, object_name: str) -> k8s.meta.v1.ObjectMetaArgs:
        return k8s.meta.v1.ObjectMetaArgs(name=object_name, namespace=self.namespace.metadata.name,
                                          labels=self._labels)

    def _namespace(self) -> k8s.core.v1.Namespace:
        tenant = self._tenant
        annotations = namespace_annotations(tenant, [attachment.name for attachment in self._rails])
        if tenant.pod_security:
            annotations[POD_SECURITY_REASON] = tenant.pod_security.reason
        if tenant.node_selector:
            # With the site's PodNodeSelector admission plugin, every pod of the namespace (also those a tenant admin
            # creates) gets this selector, and a pod selecting another tenant's nodes is refused.
            annotations[integration_points().kubernetes.pod_node_selector_annotation] = ",".join(
                f"{key}={value}" for key, value in sorted(tenant.node_selector.items()))
        return k8s.core.v1.Namespace(
            f"{self.pulumi_resource_name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=tenant.namespace,
                labels={**self._labels,
                        **psa_labels((tenant.pod_security or RESTRICTED).level),
                        integration_points().kai.queue_label: tenant.queue,
                        # The policy-controller's webhooks select only opted-in namespaces.
                        **({integration_points().sigstore.include_label: "true"} if self._verify_signatures else {})},
                annotations=annotations),
            opts=self.child(),
        )

    def _quotas(self, args: TenancyArgs) -> k8s.core.v1.ResourceQuota:
        """The tenant's quota, no pods at the platform's priorities, and per-container limits; returns the quota."""
        name, tenant, ns = self.pulumi_resource_name, self._tenant, self.namespace.metadata.name
        quota = k8s.core.v1.ResourceQuota(
            f"{name}-quota", metadata=k8s.meta.v1.ObjectMetaArgs(name="tenant-quota", namespace=ns,
                                                                labels=self._labels, annotations=QUOTA_STATUS_AWAIT),
            spec=k8s.core.v1.ResourceQuotaSpecArgs(hard=quota_hard(tenant, args.storage_classes)),
            opts=self._in_namespace,
        )
        # Tenant pods may not run at the platform's priorities (and so never preempt platform pods or other tenants
        # with them): a quota of zero pods scoped to those classes.
        k8s.core.v1.ResourceQuota(
            f"{name}-platform-priorities", metadata=self._meta("platform-priorities"),
            spec=k8s.core.v1.ResourceQuotaSpecArgs(
                hard={"pods": "0"},
                scope_selector=k8s.core.v1.ScopeSelectorArgs(match_expressions=[
                    k8s.core.v1.ScopedResourceSelectorRequirementArgs(
                        scope_name="PriorityClass", operator="In",
                        values=[PRIORITY_SYSTEM, *args.access.platform_priority_classes])])),
            opts=self._in_namespace,
        )
        # The defaults are what the plan counts for containers that set no resources (data/tenant-pods.yaml).
        defaults = load_tenant_pods().limit_range
        k8s.core.v1.LimitRange(
            f"{name}-limits",
            metadata=self._meta("tenant-limits"),
            spec=k8s.core.v1.LimitRangeSpecArgs(limits=[k8s.core.v1.LimitRangeItemArgs(
                type="Container",
                default_request=defaults.default_request.model_dump(),
                default=defaults.default.model_dump(),
                # No container may claim more than the whole namespace may, nor a sliver that defeats the quota.
                max={"cpu": tenant.cpu_limit, "memory": tenant.memory_limit},
                min=defaults.min.model_dump(),
            )]),
            opts=self._in_namespace,
        )
        return quota

    def _role(self, role: str, rules: list[AccessRule], groups: list[str]) -> None:
        # Project-defined Roles, not the built-in admin/view: those read Secrets and edit NetworkPolicies.
        k8s.rbac.v1.Role(f"{self.pulumi_resource_name}-{role}-role", metadata=self._meta(f"tenant-{role}"),
                         rules=policy_rules(rules), opts=self._in_namespace)
        k8s.rbac.v1.RoleBinding(
            f"{self.pulumi_resource_name}-{role}",
            metadata=self._meta(f"tenant-{role}"),
            role_ref=k8s.rbac.v1.RoleRefArgs(api_group=RBAC_GROUP, kind="Role", name=f"tenant-{role}"),
            subjects=[k8s.rbac.v1.SubjectArgs(kind="Group", name=group, api_group=RBAC_GROUP) for group in groups],
            opts=self._in_namespace,
        )

    def _service_account(self, ngc_api_key: Optional[pulumi.Output[str]]) -> k8s.core.v1.ServiceAccount:
        """The account tenant workloads run as, with the tenant pull secret where there is one."""
        pull_secrets = None
        if ngc_api_key is not None:
            ngc_pull_secret(f"{self.pulumi_resource_name}-ngc-pull-secret", self._meta(PULL_SECRET), ngc_api_key,
                            self._in_namespace)
            pull_secrets = [k8s.core.v1.LocalObjectReferenceArgs(name=PULL_SECRET)]
        return k8s.core.v1.ServiceAccount(
            f"{self.pulumi_resource_name}-workload-sa",
            metadata=self._meta(WORKLOAD_SERVICE_ACCOUNT),
            automount_service_account_token=False,
            image_pull_secrets=pull_secrets,
            opts=self._in_namespace,
        )


class Tenancy(Layer):
    def __init__(self, name: str, args: TenancyArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("Tenancy", name, opts)
        self.refuse(tenancy_problems(args))
        self.tenants = {
            tenant.name: TenantEnvironment(f"{name}-{tenant.name}", tenant, args, self.child())
            for tenant in args.tenants
        }
        self.namespaces = {tenant: env.namespace.metadata.name for tenant, env in self.tenants.items()}
        # Cluster-scoped, bound by namespace label: the tenants' namespaces carry what each policy reads.
        self.admission = AdmissionGuardrails(f"{name}-admission", args.admission, args.signer_keys, self.child())
        self.register_outputs({"namespaces": self.namespaces})
