"""NetworkPolicy specs shared by the platform and tenant namespaces: default-deny plus the allows of
data/network-access.yaml, nothing else; and the one route to the model source for the pods that fetch from it."""
import pulumi
import pulumi_kubernetes as k8s

from components.kube import TENANT_LABEL, labels
from ncp.plan.catalog import TENANTS_PEER, NetworkAccess, PlatformAccess
from ncp.plan.names import ENDPOINT_LABEL
from ncp.plan.serving import ModelStagingSettings

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set by the API server on every namespace

DEFAULT_DENY = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
SAME_NAMESPACE = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                  "ingress": [{"from": [{"podSelector": {}}]}], "egress": [{"to": [{"podSelector": {}}]}]}


def namespace_peer(namespace: str) -> dict:
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}}}


def tcp(ports: list[int]) -> list[dict]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def dns_egress(access: NetworkAccess) -> dict:
    return {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
        "to": [{**namespace_peer(access.dns.namespace), "podSelector": {"matchLabels": access.dns.pod_labels}}],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]}


def api_server_egress(access: NetworkAccess) -> dict:
    return {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"ports": tcp(access.api_server_ports)}]}


def ingress_from(namespaces: list[str], ports: list[int]) -> dict:
    rule = {"from": [namespace_peer(ns) for ns in namespaces]}
    if ports:
        rule["ports"] = tcp(ports)
    return {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [rule]}


# RA: Security And Compliance: "Network policy should separate API ingress, control plane, metadata stores"
def platform_policies(access: NetworkAccess, layer: PlatformAccess, peers: dict[str, list[str]]) -> dict[str, dict]:
    """name -> spec for one platform namespace. `peers` resolves a peer name of the data file to namespaces."""
    policies: dict[str, dict] = {"default-deny": DEFAULT_DENY, "allow-same-namespace": SAME_NAMESPACE,
                                 "allow-dns": dns_egress(access)}
    if layer.egress.api_server:
        policies["allow-api-server"] = api_server_egress(access)
    if layer.egress.anywhere:
        policies["allow-egress-anywhere"] = {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]}
    webhook_ports = sorted({port for allow in layer.ingress for port in allow.webhook_ports})
    if webhook_ports:
        policies["allow-webhooks"] = {"podSelector": {}, "policyTypes": ["Ingress"],
                                      "ingress": [{"ports": tcp(webhook_ports)}]}
    for allow in layer.ingress:
        if allow.from_ is None:
            continue
        namespaces = peers.get(allow.from_)
        if namespaces is None:
            raise KeyError(f"network-access.yaml names unknown peer {allow.from_!r}")
        if namespaces:
            suffix = "-".join(str(p) for p in allow.ports) or "all"
            policies[f"allow-from-{allow.from_.lower()}-{suffix}"] = ingress_from(namespaces, allow.ports)
    return policies


def tenant_platform_egress(access: NetworkAccess, platform_namespaces: dict[str, str]) -> dict:
    """One egress rule per platform namespace that admits tenants, on exactly the ports it admits them on."""
    rules = []
    for layer, namespace in sorted(platform_namespaces.items()):
        ports = sorted({p for allow in access.of(layer).ingress if allow.from_ == TENANTS_PEER for p in allow.ports})
        if ports:
            rules.append({"to": [namespace_peer(namespace)], "ports": tcp(ports)})
    return {"podSelector": {}, "policyTypes": ["Egress"], "egress": rules} if rules else {}


# --- the route to the model source, for the pods that fetch from it ---------------------------------------------

HTTPS_PORT = 443


def source_env(access: ModelStagingSettings) -> dict[str, str]:
    """How the downloader reaches the source: HF_ENDPOINT points huggingface_hub at a mirror
    (huggingface/huggingface_hub src/huggingface_hub/constants.py); the *_PROXY variables send it through a proxy."""
    if access.mirror is not None:
        return {"HF_ENDPOINT": access.mirror.url}
    if access.proxy is not None:
        return {"HTTPS_PROXY": access.proxy.url, "HTTP_PROXY": access.proxy.url,
                "NO_PROXY": "localhost,127.0.0.1,.svc,.cluster.local"}
    return {}


def source_egress(access: ModelStagingSettings) -> list[dict]:
    """The NetworkPolicy egress rules that open exactly the route to the model source."""
    if access.mirror is not None:
        return [{"to": [{"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: access.mirror.namespace}}}],
                 "ports": [{"protocol": "TCP", "port": access.mirror.port}]}]
    if access.proxy is not None:
        return [{"to": [{"ipBlock": {"cidr": cidr}} for cidr in access.proxy.cidrs],
                 "ports": [{"protocol": "TCP", "port": access.proxy.port}]}]
    return [{"to": [{"ipBlock": {"cidr": cidr}} for cidr in access.allowed_cidrs],
             "ports": [{"protocol": "TCP", "port": HTTPS_PORT}]}]


def model_source_access(resource_name: str, *, owner: str, tenant: str, namespace: pulumi.Input[str], component: str,
                        access: ModelStagingSettings, opts: pulumi.ResourceOptions) -> k8s.networking.v1.NetworkPolicy:
    """The NetworkPolicy `<owner>-model-source`: the tenant namespace denies egress by default, and this opens
    exactly the site's route to the model source (source_egress) for the pods of one workload that fetch from it
    (an endpoint's staging Job, an inference service's engine build), selected by component and owner."""
    return k8s.networking.v1.NetworkPolicy(
        resource_name,
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=f"{owner}-model-source", namespace=namespace,
            labels=labels("model-source-access", owner, **{ENDPOINT_LABEL: owner, TENANT_LABEL: tenant})),
        spec={"podSelector": {"matchLabels": {"app.kubernetes.io/component": component, ENDPOINT_LABEL: owner}},
              "policyTypes": ["Egress"], "egress": source_egress(access)},
        opts=opts)
