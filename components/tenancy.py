"""Tenancy and security layer: one isolated namespace per tenant with quota, limits, default-deny networking plus
the platform's required allows, RBAC, a dedicated workload ServiceAccount, and an nvcr.io pull secret."""
import base64
import json
from dataclasses import dataclass, field
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components.kube import NAMESPACE_NAME_LABEL, POD_SECURITY_REASON, TENANT_LABEL, Layer, labels, psa_labels
from plan.catalog import integration_points
from plan.endpoints import PodSecurity

NGC_REGISTRY = "nvcr.io"
NGC_USERNAME = "$oauthtoken"  # NGC's fixed username for API-key logins
PULL_SECRET = "ngc-pull-secret"
WORKLOAD_SERVICE_ACCOUNT = "tenant-workload"


@dataclass(frozen=True)
class TenantSpec:
    name: str
    namespace: str
    queue: str
    gpu_limit: int
    cpu_quota: str
    memory_quota: str
    admins: list[str] = field(default_factory=list)
    viewers: list[str] = field(default_factory=list)
    pod_security: Optional[PodSecurity] = None  # the plan's exception to `restricted` (RDMA workers), with its reason


@dataclass(frozen=True)
class TenancyArgs:
    tenants: list[TenantSpec]
    gateway_namespace: str
    monitoring_namespace: str
    platform_namespaces: list[str]  # tenant workloads may call these (e.g. Dynamo's NATS)
    ngc_api_key: Optional[pulumi.Output[str]]


def docker_config_json(api_key: str) -> str:
    auth = base64.b64encode(f"{NGC_USERNAME}:{api_key}".encode()).decode()
    return json.dumps({"auths": {NGC_REGISTRY: {"username": NGC_USERNAME, "password": api_key, "auth": auth}}})


def _namespace_peer(namespace: str) -> dict:
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}}}


def network_policies(args: TenancyArgs) -> dict[str, dict]:
    """name -> NetworkPolicy spec. Default-deny first; every other policy is one allow the platform needs."""
    same_namespace = [{"podSelector": {}}]
    return {
        "default-deny": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        "allow-dns": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{
                "to": [{**_namespace_peer("kube-system"), "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
            }],
        },
        "allow-same-namespace": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": same_namespace}],
            "egress": [{"to": same_namespace}],
        },
        "allow-gateway-ingress": {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [_namespace_peer(args.gateway_namespace)]}],
        },
        "allow-telemetry-scrape": {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [_namespace_peer(args.monitoring_namespace)]}],
        },
        "allow-platform-egress": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"to": [_namespace_peer(ns) for ns in args.platform_namespaces]}],
        },
    }


class TenantEnvironment(Layer):
    def __init__(self, name: str, tenant: TenantSpec, args: TenancyArgs, opts: pulumi.ResourceOptions = None):
        super().__init__("TenantEnvironment", name, opts)
        child = self.child()
        tenant_labels = labels("tenancy", tenant.namespace, **{TENANT_LABEL: tenant.name})
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=tenant.namespace,
                labels={**tenant_labels,
                        **psa_labels(tenant.pod_security.level if tenant.pod_security else "restricted"),
                        integration_points().kai.queue_label: tenant.queue},
                annotations={POD_SECURITY_REASON: tenant.pod_security.reason} if tenant.pod_security else None),
            opts=child,
        )
        ns = self.namespace.metadata.name
        in_namespace = self.child(self.namespace)

        def meta(object_name: str) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(name=object_name, namespace=ns, labels=tenant_labels)

        self.quota = k8s.core.v1.ResourceQuota(
            f"{name}-quota",
            metadata=meta("tenant-quota"),
            spec=k8s.core.v1.ResourceQuotaSpecArgs(hard={
                f"requests.{integration_points().gpu.resource}": str(tenant.gpu_limit),
                "requests.cpu": tenant.cpu_quota,
                "requests.memory": tenant.memory_quota,
            }),
            opts=in_namespace,
        )
        k8s.core.v1.LimitRange(
            f"{name}-limits",
            metadata=meta("tenant-limits"),
            spec=k8s.core.v1.LimitRangeSpecArgs(limits=[k8s.core.v1.LimitRangeItemArgs(
                type="Container",
                default_request={"cpu": "500m", "memory": "1Gi"},
                default={"cpu": "4", "memory": "16Gi"},
            )]),
            opts=in_namespace,
        )
        self.network_policies = []
        for policy_name, spec in network_policies(args).items():
            self.network_policies.append(k8s.networking.v1.NetworkPolicy(
                f"{name}-netpol-{policy_name}", metadata=meta(policy_name), spec=spec, opts=in_namespace))
        for role, cluster_role, groups in (("admins", "admin", tenant.admins), ("viewers", "view", tenant.viewers)):
            if groups:
                k8s.rbac.v1.RoleBinding(
                    f"{name}-{role}",
                    metadata=meta(f"tenant-{role}"),
                    role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="ClusterRole",
                                                     name=cluster_role),
                    subjects=[k8s.rbac.v1.SubjectArgs(kind="Group", name=group,
                                                      api_group="rbac.authorization.k8s.io") for group in groups],
                    opts=in_namespace,
                )
        pull_secrets = None
        if args.ngc_api_key is not None:
            k8s.core.v1.Secret(
                f"{name}-ngc-pull-secret",
                metadata=meta(PULL_SECRET),
                type="kubernetes.io/dockerconfigjson",
                string_data={".dockerconfigjson": pulumi.Output.secret(args.ngc_api_key.apply(docker_config_json))},
                opts=in_namespace,
            )
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
