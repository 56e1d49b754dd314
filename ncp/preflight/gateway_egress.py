"""The site's gateway namespace is a prerequisite (components.tenancy.gatewayNamespace): the program admits it into
every tenant namespace on the pools' ports but creates nothing in it. A gateway sends requests where an endpoint
picker says; were its egress open, a steered picker could point it at node IPs or the cloud metadata service. So
preflight checks, from the namespace's NetworkPolicies, that egress is isolated for every pod there and that no
egress rule reaches a metadata endpoint (data/network-access.yaml gatewayEgress)."""
import ipaddress
from typing import Iterable

from ncp.plan.catalog import network_access


def _reaches(rule: dict, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether one egress rule admits traffic to `address` (an empty `to` admits every destination)."""
    peers = rule.get("to") or []
    if not peers:
        return True
    for peer in peers:
        block = peer.get("ipBlock")
        if not block:
            continue  # pod and namespace selectors name pods, never the metadata address
        if address in ipaddress.ip_network(block["cidr"], strict=False) and not any(
                address in ipaddress.ip_network(e, strict=False) for e in block.get("except") or []):
            return True
    return False


def gateway_egress_problems(namespace: str, policies: Iterable[dict], pool_ports: list[int]) -> list[tuple[str, str]]:
    """(problem, fix) for the gateway namespace's egress, from its NetworkPolicies."""
    policies = list(policies)
    egress = [p for p in policies if "Egress" in (p.get("spec") or {}).get("policyTypes", [])]
    fix = (f"create in {namespace} a NetworkPolicy with podSelector {{}} and policyTypes [Egress] that allows DNS, "
           f"the tenant namespaces on the pools' ports {pool_ports} and what the gateway product itself needs (its "
           "controller), and no ipBlock that covers the cloud metadata address")
    if not any(p["spec"].get("podSelector") in ({}, None) for p in egress):
        return [(f"no NetworkPolicy in {namespace} isolates egress for every pod: the gateway may reach any pod, "
                 "node IP and the cloud metadata service wherever a picker points it", fix)]
    problems = []
    for endpoint in network_access().gateway_egress.metadata_endpoints:
        address = ipaddress.ip_network(endpoint).network_address
        open_rules = [p["metadata"]["name"] for p in egress for rule in p["spec"].get("egress") or []
                      if _reaches(rule, address)]
        if open_rules:
            problems.append((f"egress in {namespace} reaches the metadata endpoint {endpoint} "
                             f"(NetworkPolicy {', '.join(sorted(set(open_rules)))})",
                             f"add {endpoint} to the ipBlock's except list, or narrow its cidr"))
    return problems
