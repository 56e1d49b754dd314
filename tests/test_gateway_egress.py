"""#22 item 2 remainder: preflight checks the site's gateway namespace (a prerequisite the program does not create)
isolates egress for every pod and reaches no cloud metadata endpoint (data/network-access.yaml gatewayEgress)."""
from ncp.preflight.checks import gateway_egress
from ncp.preflight.gateway_egress import gateway_egress_problems
from ncp.plan.sources import plan_from_stack_file

NS, PORTS = "ncp-gateway", [8000, 9002]
DENY_ALL = {"metadata": {"name": "default-deny"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}
TO_TENANTS = {"metadata": {"name": "to-tenants"}, "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
    {"to": [{"namespaceSelector": {"matchExpressions": [{"key": "ncp-inference.io/tenant", "operator": "Exists"}]}}],
     "ports": [{"port": 8000}, {"port": 9002}]}]}}


def _egress(name: str, *rules: dict, selector: dict = None) -> dict:
    return {"metadata": {"name": name}, "spec": {"podSelector": selector or {}, "policyTypes": ["Egress"],
                                                  "egress": list(rules)}}


def test_restricted_egress_passes():
    assert gateway_egress_problems(NS, [DENY_ALL, TO_TENANTS], PORTS) == []
    internet_but_metadata = _egress("internet", {"to": [{"ipBlock": {"cidr": "0.0.0.0/0",
                                                                      "except": ["169.254.0.0/16"]}}]})
    assert gateway_egress_problems(NS, [DENY_ALL, internet_but_metadata], PORTS) == []


def test_no_policy_or_one_for_some_pods_only_is_a_miss():
    [(problem, fix)] = gateway_egress_problems(NS, [], PORTS)
    assert "isolates egress for every pod" in problem and "podSelector {}" in fix and "[8000, 9002]" in fix
    ingress_only = {"metadata": {"name": "in"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
    some_pods = _egress("some", selector={"matchLabels": {"app": "envoy"}})
    assert gateway_egress_problems(NS, [ingress_only, some_pods], PORTS)


def test_a_rule_that_reaches_the_metadata_service_is_a_miss():
    for rule in ({}, {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]},
                 {"to": [{"ipBlock": {"cidr": "169.254.0.0/16", "except": ["169.254.1.0/24"]}}]}):
        [(problem, _)] = gateway_egress_problems(NS, [DENY_ALL, _egress("open", rule)], PORTS)
        assert "169.254.169.254/32" in problem and "NetworkPolicy open" in problem


class Cluster:
    def __init__(self, policies: dict):
        self.policies, self.asked = policies, []

    def network_policies(self, namespace):
        self.asked.append(namespace)
        return self.policies.get(namespace, [])


def test_preflight_asks_the_stacks_gateway_namespace():
    site_plan = plan_from_stack_file("prod")
    namespace = site_plan.config.components.tenancy.gateway_namespace
    missing = gateway_egress(Cluster({}), site_plan)
    assert [m.check for m in missing] == ["gateway egress"] and namespace in missing[0].problem
    cluster = Cluster({namespace: [DENY_ALL, TO_TENANTS]})
    assert gateway_egress(cluster, site_plan) == [] and cluster.asked == [namespace]
