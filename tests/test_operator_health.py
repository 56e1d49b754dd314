"""How the operator health rules' series reach Prometheus (#25): the Dynamo operator through its chart's
ServiceMonitor (forced on, labelled for the site's Prometheus), the Network Operator through the program's Service
and ServiceMonitor (its chart ships none), NVSentinel's modules through its chart's PodMonitor. Each test states the
upstream fact it relies on and fails on the broken wiring it guards against; tests/test_telemetry_rules.py runs the
rules themselves in promtool on these shapes."""

import pytest
import yaml

from components.network_enablement import NETWORK_OPERATOR_RELEASE
from components.serving.platform import DYNAMO_RELEASE, dynamo_platform_values
from ncp.plan.break_fix import nvsentinel_modules
from ncp.plan.catalog import load_matrix, load_signals
from ncp.plan.site_plan import build_plan
from ncp.plan.sources import read_stack_file
from tests.support.rule_tests import nvsentinel_running, rule_files, rules_of

SIGNALS = load_signals()
MATRIX = load_matrix()


@pytest.fixture(scope="module")
def telemetry():
    """The prod stack's telemetry settings (the labels its Prometheus selects by, its scrape interval)."""
    return build_plan(*read_stack_file("prod"), "prod").settings.telemetry


def alerts(recording) -> dict[str, dict]:
    return {rule["alert"]: rule for groups in rule_files(recording).values() for rule in rules_of(groups, "alert")}


def test_the_dynamo_operator_is_scraped_by_its_charts_servicemonitor_for_the_sites_prometheus(
    prod, upstream, telemetry
):
    """ai-dynamo/dynamo 2a6da14c: the manager takes its metrics address from the chart's OperatorConfiguration
    (operator-config.yaml:24-28, 0.0.0.0 and secure), and platform/values.yaml:136-141's `manager.args`
    (127.0.0.1:8080) are read by no template, so the program overrides no address. The ServiceMonitor
    (operator-servicemonitor.yaml:19-49) exists with `metricsService.enabled` true and carries `metricsService.labels`
    (default release: prometheus, which a site Prometheus selecting by its own release label never picks)."""
    platform = yaml.safe_load((upstream / "dynamo" / "platform" / "values.yaml").read_text())
    args = platform["dynamo-operator"]["controllerManager"]["manager"]["args"]
    assert "--metrics-bind-address=127.0.0.1:8080" in args  # the dead default this test's docstring is about
    operator = yaml.safe_load((upstream / "dynamo" / "operator" / "values.yaml").read_text())["metricsService"]
    assert operator["labels"] == {"release": "prometheus"} and operator["enabled"] is None
    assert [p["name"] for p in operator["ports"]] == [SIGNALS["dynamoOperator"].ports["metrics"]]
    values = prod.releases()[DYNAMO_RELEASE].inputs["values"]["dynamo-operator"]
    selector = telemetry.prometheus_selector_labels
    assert values["metricsService"] == {"enabled": True, "labels": {"release": None, **selector}}
    assert "controllerManager" not in values, "the manager's args are dead values: override nothing there"
    site = dynamo_platform_values({"prometheus": "site"})["dynamo-operator"]["metricsService"]["labels"]
    assert site == {"release": None, "prometheus": "site"}, "the chart's default label is removed, not kept"
    # The ServiceMonitor sets no jobLabel: the job is the Service's name, the subchart's fullname
    # <release>-<chart> (templates/_helpers.tpl:27-38; "dynamo-operator" is not part of the release name).
    chart = yaml.safe_load((upstream / "dynamo" / "operator" / "Chart.yaml").read_text())["name"]
    assert SIGNALS["dynamoOperator"].label_values["job"] == f"{DYNAMO_RELEASE}-{chart}"
    down = alerts(prod)["NcpDynamoOperatorDown"]["expr"]
    assert f'namespace="{MATRIX.pin("dynamoPlatform").namespace}"' in down and f'-{chart}"' in down


def test_the_network_operator_is_scraped_through_the_programs_service(prod, upstream, telemetry):
    """Mellanox/network-operator v26.4.1: the chart ships no Service or monitor and its container declares no metrics
    port; the manager serves controller-runtime's metrics on :8080 (main.go:167,186). The operator pod carries the
    chart's selector labels app.kubernetes.io/name (the chart's name) and app.kubernetes.io/instance (the release).
    A PodMonitor would find no target (the Prometheus Operator keeps pod targets by declared port, promcfg.go:1576-1581
    at v0.93.0): a Service with a numeric targetPort and a ServiceMonitor selecting it."""
    chart = yaml.safe_load((upstream / "network-operator" / "Chart.yaml").read_text())["name"]
    chart_values = (upstream / "network-operator" / "values.yaml").read_text()
    assert "serviceMonitor" not in chart_values and "metrics" not in chart_values, "the chart now offers metrics"
    namespace, job = MATRIX.pin("networkOperator").namespace, SIGNALS["networkOperator"].label_values["job"]
    [service] = [
        r.inputs for r in prod.of_type("kubernetes:core/v1:Service") if r.inputs["metadata"]["namespace"] == namespace
    ]
    [monitor] = [
        r.inputs for r in prod.custom_resources("ServiceMonitor") if r.inputs["metadata"]["namespace"] == namespace
    ]
    assert service["metadata"]["name"] == monitor["metadata"]["name"] == job
    assert service["spec"]["selector"] == {
        "app.kubernetes.io/name": chart,
        "app.kubernetes.io/instance": NETWORK_OPERATOR_RELEASE,
    }
    assert NETWORK_OPERATOR_RELEASE in prod.releases()
    [port] = service["spec"]["ports"]
    assert port["port"] == port["targetPort"] == 8080, "a numeric targetPort: the container names no metrics port"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"] == [
        {"port": port["name"], "path": "/metrics", "interval": telemetry.scrape_interval}
    ]
    assert telemetry.prometheus_selector_labels.items() <= monitor["metadata"]["labels"].items()
    assert f'namespace="{namespace}", job="{job}"' in alerts(prod)["NcpNetworkOperatorDown"]["expr"]


def test_lab_without_rdma_watches_no_network_operator(lab):
    assert "NcpNetworkOperatorDown" not in alerts(lab)
    assert not [
        r
        for r in lab.custom_resources("ServiceMonitor")
        if r.inputs["metadata"]["namespace"] == MATRIX.pin("networkOperator").namespace
    ]


def test_each_running_nvsentinel_module_is_watched_by_its_subchart_and_container(prod, lab, upstream):
    """NVSentinel's Chart.yaml (2083bfa9) enables each module's subchart by `global.<module>.enabled`; the module's
    metrics container is named after its subchart (data/telemetry-signals.yaml nvsentinel.labelValues). The rules
    watch exactly the modules the rendered release enables, plus the platform connector (part of the main chart)."""
    dependencies = {
        d["condition"]: d["name"]
        for d in yaml.safe_load((upstream / "nvsentinel" / "Chart.yaml").read_text())["dependencies"]
    }
    containers = SIGNALS["nvsentinel"].label_values
    for module in nvsentinel_modules(nic_monitor=True):
        assert dependencies[f"global.{module}.enabled"] == containers[module], module
    for recording, rdma in ((prod, True), (lab, False)):
        running = nvsentinel_running(recording)
        assert ("nicHealthMonitor" in running) is rdma
        expr = alerts(recording)["NcpNvsentinelModuleDown"]["expr"]
        assert sorted(c for c in containers.values() if f'container="{c}"' in expr) == sorted(
            containers[m] for m in running
        )
