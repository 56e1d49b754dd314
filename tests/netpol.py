"""Egress semantics of Kubernetes NetworkPolicies (networking.k8s.io/v1, as documented for the API: policies are
additive; a pod selected by no Egress policy may reach anything, a selected pod only what some rule allows), for
judging the recorded policies of a namespace without a CNI."""
import ipaddress
from dataclasses import dataclass, field
from typing import Optional

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Destination:
    port: int
    protocol: str = "TCP"
    ip: Optional[str] = None  # an address outside the cluster
    namespace: Optional[str] = None  # or a pod in this namespace
    pod_labels: dict = field(default_factory=dict)


def _selects(selector: dict, labels: dict) -> bool:
    if selector.get("matchExpressions"):
        raise NotImplementedError("matchExpressions are not judged here")
    return all(labels.get(key) == value for key, value in (selector.get("matchLabels") or {}).items())


def _peer_matches(peer: dict, source_namespace: str, to: Destination) -> bool:
    if "ipBlock" in peer:
        if to.ip is None:
            return False
        address = ipaddress.ip_address(to.ip)
        block = peer["ipBlock"]
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(excluded) for excluded in block.get("except") or [])
    if to.namespace is None:
        return False
    if "namespaceSelector" in peer:
        namespace_ok = _selects(peer["namespaceSelector"], {NAMESPACE_NAME_LABEL: to.namespace})
    else:
        namespace_ok = to.namespace == source_namespace
    return namespace_ok and _selects(peer.get("podSelector") or {}, to.pod_labels)


def _port_matches(ports: list, to: Destination) -> bool:
    return not ports or any(p.get("protocol", "TCP") == to.protocol and p.get("port") in (None, to.port)
                            for p in ports)


def may_egress(policies: list[dict], namespace: str, pod_labels: dict, to: Destination) -> bool:
    """policies: the NetworkPolicy specs of `namespace`."""
    applying = [p for p in policies if "Egress" in p.get("policyTypes", [])
                and _selects(p.get("podSelector") or {}, pod_labels)]
    if not applying:
        return True
    return any(_port_matches(rule.get("ports") or [], to) and (
        not rule.get("to") or any(_peer_matches(peer, namespace, to) for peer in rule["to"]))
        for policy in applying for rule in policy.get("egress") or [])
