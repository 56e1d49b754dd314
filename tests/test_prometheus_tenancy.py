"""#22 item 4 remainder: preflight checks the site's Prometheus confines the tenants' monitors
(data/integration-points.yaml prometheusTenancy)."""
import pytest

from ncp.cluster_api import KubeError
from tests.support.synthetic import site_config
from ncp.plan.site_plan import build_plan
from ncp.plan.sources import plan_from_stack_file
from ncp.preflight.checks import prometheus_tenancy
from ncp.preflight.prometheus_tenancy import prometheus_tenancy_problems

CONFINED = {"metadata": {"name": "k8s", "namespace": "monitoring"}, "spec": {
    "enforcedNamespaceLabel": "namespace", "ignoreNamespaceSelectors": True,
    "arbitraryFSAccessThroughSMs": {"deny": True}}}


def test_a_confined_prometheus_passes():
    assert prometheus_tenancy_problems([CONFINED]) == []


@pytest.mark.parametrize("unset", ["enforcedNamespaceLabel", "ignoreNamespaceSelectors",
                                   "arbitraryFSAccessThroughSMs"])
def test_each_missing_setting_is_named(unset):
    open_one = {**CONFINED, "spec": {k: v for k, v in CONFINED["spec"].items() if k != unset}}
    [(problem, fix)] = prometheus_tenancy_problems([CONFINED, open_one])
    assert "monitoring/k8s" in problem and unset in problem and "enforcedNamespaceLabel: namespace" in fix


def test_no_prometheus_object_is_a_miss():
    [(problem, _)] = prometheus_tenancy_problems([])
    assert "prometheuses.monitoring.coreos.com" in problem


class Cluster:
    def __init__(self, objects=None, status=None):
        self.objects, self.status, self.asked = objects or [], status, []

    def custom_objects(self, group, version, plural):
        self.asked.append(f"{plural}.{group}/{version}")
        if self.status:
            raise KubeError("not served", self.status)
        return self.objects


def test_preflight_reads_the_sites_prometheus_objects():
    site_plan = plan_from_stack_file("prod")
    cluster = Cluster([CONFINED])
    assert prometheus_tenancy(cluster, site_plan) == [] and cluster.asked == ["prometheuses.monitoring.coreos.com/v1"]
    assert [m.check for m in prometheus_tenancy(Cluster(status=404), site_plan)] == ["prometheus tenancy"]
    with pytest.raises(KubeError):
        prometheus_tenancy(Cluster(status=403), site_plan)


def test_a_stack_that_installs_its_own_prometheus_is_not_asked():
    config = site_config("lab")
    telemetry = config.setdefault("components", {}).setdefault("telemetry", {})
    telemetry["prometheusStack"] = {"enabled": True, "localDecision": {
        "decision": "lab metrics backend", "reason": "no site Prometheus in the lab"}}
    site_plan = build_plan(config, set(), "test")
    assert site_plan.tenants, "the check applies to stacks with tenants"
    cluster = Cluster()
    assert prometheus_tenancy(cluster, site_plan) == [] and cluster.asked == []
