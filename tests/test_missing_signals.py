"""Signals the telemetry rules read that nothing used to scrape (#25): the KAI queue controller's per-queue GPU
gauges. KAI creates no ServiceMonitor unless its chart's `prometheus.enabled`, which also deploys KAI's own
Prometheus; the program's ServiceMonitor selects the queue controller's Service the way KAI's own
docs/metrics/service-monitors.yaml does (data/telemetry-signals.yaml `kai`). The monitor's schema is checked against
the Prometheus Operator CRD by tests/test_upstream_schemas.py."""
import pytest

from ncp.plan.catalog import load_signals
from tests.test_telemetry_rules import STACKS

KAI = load_signals()["kai"]


def kai_monitors(recording) -> list[dict]:
    return [r.inputs for r in recording.custom_resources("ServiceMonitor")
            if r.inputs["metadata"]["name"] == "kai-queue-controller"]


@pytest.mark.parametrize("stack", STACKS)
def test_the_kai_queue_controller_is_scraped(stack, request):
    recording = request.getfixturevalue(stack)
    [monitor] = kai_monitors(recording)
    kai_namespace = recording.releases()["kai-scheduler"].inputs["namespace"]
    assert monitor["metadata"]["namespace"] == kai_namespace, "a ServiceMonitor selects Services in its namespace"
    assert monitor["spec"]["selector"] == {"matchLabels": KAI.service_labels}
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] == KAI.ports["queueController"] and endpoint["honorLabels"] is False
    # the rules read these series; the tenant-usage PrometheusRule is rendered in the same stack
    rules = " ".join(rule["expr"] for r in recording.custom_resources("PrometheusRule")
                     for group in r.inputs["spec"]["groups"] for rule in group["rules"])
    assert all(KAI.metrics[m] in rules for m in ("queueAllocatedGpus", "queueDeservedGpus"))
    # KAI's own Prometheus stays off: the site's Prometheus scrapes through the monitor
    assert recording.releases()["kai-scheduler"].inputs["values"].get("prometheus", {}).get("enabled") in (None, False)
