"""One serving endpoint: its DynamoGraphDeployment, engine config, API server egress, PodMonitor, rules and optional
InferencePool."""
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components.kube import TENANT_LABEL, Layer, labels, required
from components.network_policy import NAMESPACE_NAME_LABEL
from components.serving.args import EndpointArgs
from components.serving.graph import dgd_spec, engine_config
from components.serving.rules import pod_monitor_spec, serving_rules
from ncp.plan.catalog import integration_points
from ncp.plan.names import ENDPOINT_LABEL, EVIDENCE_KEY_ANNOTATION, MODEL_REVISION, MODEL_SOURCE, SIZING_ANNOTATION
from ncp.plan.serving import ApiServerEgress


def api_server_egress_policy(pod_labels: dict[str, str], egress: ApiServerEgress) -> dict:
    """Egress from the pods `pod_labels` selects to the Kubernetes API server (the endpoint's Dynamo pods, and its
    endpoint picker, which watches its InferencePool and the pool's pods). Kubernetes discovery has every Dynamo pod
    watch EndpointSlices and DynamoWorkerMetadata and each worker write its own (ai-dynamo/dynamo@2a6da14c
    docs/fern/pages/developer-guide/knowledge-base/concepts/communication-planes/discovery-plane.md:16-28;
    deploy/operator/internal/discovery/resource.go:62-76, the Role the operator grants them); the tenant namespace
    otherwise denies egress outside DNS, the namespace and the platform namespaces. The operator labels every pod
    of the graph with its name (deploy/operator/internal/consts/consts.go:66)."""
    return {
        "podSelector": {"matchLabels": dict(pod_labels)},
        "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": cidr}} for cidr in egress.cidrs],
                    "ports": [{"protocol": "TCP", "port": port} for port in egress.ports]}],
    }


def planner_prometheus_policy(graph_label: str, component_label: str, graph: str,
                             prometheus: tuple[str, int]) -> dict:
    """Egress from the endpoint's planner to the Prometheus it scales from (PROMETHEUS_ENDPOINT); the tenant
    namespace allows no egress to the monitoring namespace otherwise."""
    return namespace_egress_policy({graph_label: graph, component_label: "planner"}, prometheus)


def namespace_egress_policy(selector: dict[str, str], target: tuple[str, int]) -> dict:
    """Egress from the selected pods to one port of another namespace (target: namespace, port)."""
    namespace, port = target
    return {"podSelector": {"matchLabels": selector}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}}}],
                        "ports": [{"protocol": "TCP", "port": port}]}]}


def egress_policies(args: EndpointArgs) -> dict[str, dict]:
    """name suffix -> NetworkPolicy spec of the egress the endpoint's Dynamo pods need beyond the tenant's allows."""
    graph_label, plan = args.signals.pod_labels["graph"], args.plan
    policies = {"api-server-egress": api_server_egress_policy({graph_label: plan.name}, args.api_server_egress)}
    if plan.endpoint.planner:
        policies["planner-prometheus-egress"] = planner_prometheus_policy(
            graph_label, args.signals.pod_labels["componentType"], plan.name,
            required(args.planner_prometheus, f"{plan.name}: the planner's Prometheus"))
    if args.otlp_collector is not None:
        # traces and logs to the site's OpenTelemetry Collector, from every pod of the graph
        policies["otlp-egress"] = namespace_egress_policy({graph_label: plan.name}, args.otlp_collector)
    return policies


class ServingEndpoint(Layer):
    def __init__(self, name: str, args: EndpointArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("ServingEndpoint", name, opts)
        plan = args.plan
        child = self.child()
        endpoint_labels = labels("serving", plan.name, **{ENDPOINT_LABEL: plan.name, TENANT_LABEL: plan.tenant.name})
        backend = args.runtime.backends[plan.endpoint.backend]
        depends = []
        if backend.engine_args:
            depends.append(k8s.core.v1.ConfigMap(
                f"{name}-engine",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{plan.name}-engine", namespace=plan.namespace,
                                                    labels=endpoint_labels),
                data={f"{group.role}.yaml": engine_config(backend, group) for group in plan.workers},
                opts=child,
            ))
        names = integration_points()
        annotations = {names.dynamo.queue_annotation: plan.queue, MODEL_SOURCE: plan.endpoint.model.source,
                       MODEL_REVISION: plan.endpoint.model.revision, SIZING_ANNOTATION: plan.sizing_file,
                       EVIDENCE_KEY_ANNOTATION: args.evidence_key}
        spec = pulumi.Output.from_input(args.model_express_url).apply(lambda url: dgd_spec(args, url))
        self.graph = k8s.apiextensions.CustomResource(
            f"{name}-graph",
            api_version="nvidia.com/v1alpha1",
            kind="DynamoGraphDeployment",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=plan.name, namespace=plan.namespace, labels=endpoint_labels,
                                                annotations=annotations),
            spec=spec,
            opts=self.child(*depends),
        )
        graph_label = args.signals.pod_labels["graph"]
        for policy, policy_spec in egress_policies(args).items():
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{policy}",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{plan.name}-{policy}", namespace=plan.namespace,
                                                    labels=endpoint_labels),
                spec=policy_spec,
                opts=child,
            )
        # A node drain takes at most one frontend at a time (north-south redundancy, see graph.py FRONTEND_REPLICAS).
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-frontend-pdb",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{plan.name}-frontend", namespace=plan.namespace,
                                                labels=endpoint_labels),
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                max_unavailable=1,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels={
                    graph_label: plan.name, args.signals.pod_labels["componentType"]: "frontend"})),
            opts=self.child(self.graph))
        monitor_labels = {**endpoint_labels, **args.selector_labels}
        k8s.apiextensions.CustomResource(
            f"{name}-podmonitor",
            api_version="monitoring.coreos.com/v1",
            kind="PodMonitor",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=plan.name, namespace=plan.namespace, labels=monitor_labels),
            spec=pod_monitor_spec(plan, args.signals, args.scrape_interval),
            opts=child,
        )
        k8s.apiextensions.CustomResource(
            f"{name}-rules",
            api_version="monitoring.coreos.com/v1",
            kind="PrometheusRule",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{plan.name}-serving", namespace=plan.namespace,
                                                labels=monitor_labels),
            spec={"groups": serving_rules(plan, args.signals)},
            opts=child,
        )
        if args.inference_pool:
            k8s.apiextensions.CustomResource(
                f"{name}-inference-pool",
                api_version=names.gateway_inference_extension.pool_api_version,
                kind=names.gateway_inference_extension.pool_kind,
                metadata=k8s.meta.v1.ObjectMetaArgs(name=plan.name, namespace=plan.namespace, labels=endpoint_labels),
                spec={
                    "selector": {"matchLabels": {graph_label: plan.name,
                                                 args.signals.pod_labels["componentType"]: "frontend"}},
                    "targetPorts": [{"number": args.runtime.frontend.http_port}],
                    "endpointPickerRef": {"name": f"{plan.name}-epp", "port": {
                        "number": names.gateway_inference_extension.endpoint_picker_port}},
                },
                opts=self.child(self.graph),
            )
        self.url = plan.url
        self.register_outputs({"graph": plan.name, "url": self.url, "mode": plan.mode, "gpus": plan.gpus})
