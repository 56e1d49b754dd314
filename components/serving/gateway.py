"""The endpoint picker (EPP) an endpoint's InferencePool names: the Gateway API Inference Extension's ext-proc runner
as Dynamo 1.5's picker builds it, over a pool of the endpoint's Dynamo frontends. Until it runs, the gateway has
nothing to ask which frontend takes a request (the pool fails closed).

Why a program-owned picker over frontends and not the graph's `componentType: epp` over worker pods: the frontend's
own KV router already picks the worker with the graph's router settings (the RA: the extension is "not a replacement
for Dynamo Router"), the tenant's frontends stay the north-south entry the policies and telemetry describe, and the
picker's pod security, priority, RBAC and egress stay the program's. Dynamo's own path (deploy/operator/internal/
dynamo/component_epp.go and epp/inference_pool.go@2a6da14c) pools *worker* pods that each carry a frontend sidecar in
`direct` router mode and scores them with Dynamo's KV plugins; adopting it means a pool per graph named `<dgd>-pool`
that the operator, not the program, owns. The picker therefore runs with an explicit configuration whose plugins
need no model-server metrics (data/integration-points.yaml endpointPicker), never the runner's defaults."""
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components.kube import (
    container_resources,
    PRIORITY_SERVING, TENANT_LABEL, Layer, labels, restricted_deployment,
)
from components.serving.endpoint import api_server_egress_policy
from ncp.plan.catalog import EndpointPickerNames, WorkloadPin, integration_points
from ncp.plan.names import ENDPOINT_LABEL
from ncp.plan.serving import ApiServerEgress

HEALTH_SERVICE = "inference-extension"  # the gRPC health service name the EPP registers (dynamo-epp.yaml probes)
PICKER_COMPONENT = "endpoint-picker"  # app.kubernetes.io/component of the picker (the policy pack finds it by it)


@dataclass(frozen=True)
class EndpointPickerArgs:
    """Arguments of EndpointPicker: the Gateway API inference extension's endpoint picker for one endpoint.

    Attributes:
        endpoint: the endpoint name, also the InferencePool's and the DynamoGraphDeployment's name.
        tenant: the tenant that owns the endpoint.
        namespace: the tenant's namespace.
        pin: the endpoint picker's ports and KV block size (compatibility matrix `workloads.endpointPicker`).
        image: the picker's image, by digest in prod (ncp/plan/gateway.py endpoint_picker_image).
        api_server_egress: where the picker reaches the Kubernetes API (it watches its pool and the pool's pods).
        skip_await: whether Pulumi skips waiting for the Deployment to become ready.
    """

    endpoint: str
    tenant: str
    namespace: pulumi.Input[str]
    pin: WorkloadPin
    image: str
    api_server_egress: ApiServerEgress
    skip_await: bool


def picker_name(endpoint: str) -> str:
    return f"{endpoint}-epp"


def _field_env(name: str, path: str) -> k8s.core.v1.EnvVarArgs:
    return k8s.core.v1.EnvVarArgs(name=name, value_from=k8s.core.v1.EnvVarSourceArgs(
        field_ref=k8s.core.v1.ObjectFieldSelectorArgs(field_path=path)))


def picker_env(args: EndpointPickerArgs, namespace: str) -> list[k8s.core.v1.EnvVarArgs]:
    """Kubernetes discovery as the platform's operator is configured (discoveryBackend: kubernetes), and no
    NATS_SERVER: the platform runs no NATS, and the runtime would otherwise open a NATS connection at start
    (data/integration-points.yaml dynamo.natsDecision); KV events reach the picker's router over ZMQ."""
    dynamo = integration_points().dynamo
    values = {
        "DYN_DISCOVERY_BACKEND": "kubernetes",
        "DYNAMO_NAMESPACE": dynamo.dynamo_namespace(namespace, args.endpoint),
        "DYNAMO_KV_BLOCK_SIZE": str(args.pin.overrides["kvBlockSize"]),
        "USE_STREAMING": "true",
    }
    return [_field_env("POD_NAME", "metadata.name"), _field_env("POD_NAMESPACE", "metadata.namespace"),
            _field_env("POD_UID", "metadata.uid")] + [
        k8s.core.v1.EnvVarArgs(name=key, value=value) for key, value in values.items()]


def picker_config(names: EndpointPickerNames) -> str:
    """The picker's EndpointPickerConfig: one profile scoring frontends by prefix affinity, saturation by in-flight
    requests, and a data layer of endpoint events only (no scrape of model-server metrics the frontends do not
    export; an explicit section is kept as given, pkg/epp/config/loader/defaults.go:292-301, and must not be empty:
    data/integration-points.yaml endpointPicker.dataSource)."""
    config = {
        "apiVersion": names.config_api_version, "kind": names.config_kind,
        "plugins": [{"type": plugin} for plugin in (names.profile_handler, names.scorer, names.picker,
                                                     names.saturation_detector, names.data_source)],
        "schedulingProfiles": [{"name": "default", "plugins": [{"pluginRef": names.scorer, "weight": 1},
                                                               {"pluginRef": names.picker}]}],
        "saturationDetector": {"pluginRef": names.saturation_detector},
        "dataLayer": {"sources": [{"pluginRef": names.data_source}]},
    }
    return yaml.safe_dump(config, sort_keys=False)


def picker_args(names: EndpointPickerNames, pool: str, namespace: str, pool_group: str, grpc_port: int,
                health_port: int, metrics_port: int) -> list[str]:
    """The runner's GNU-style flags (pflag; options.go:126-192 at the pinned runner)."""
    values = {"pool-name": pool, "pool-namespace": namespace, "pool-group": pool_group, "grpc-port": str(grpc_port),
              "grpc-health-port": str(health_port), "metrics-port": str(metrics_port),
              "config-file": f"{names.config_mount_path}/{names.config_file}"}
    return [item for flag, value in values.items() for item in (f"--{flag}", value)]


# RA: Kubernetes Architecture For Inference: "Treat that extension as an API integration decision"
# RA: Cloud-Native Inference Gateway Integration: "Do not treat it as a replacement for Dynamo Router"
class EndpointPicker(Layer):
    """ServiceAccount + Role (reads the pool, pods and Dynamo's discovery records), ConfigMap (its configuration),
    egress to the API server, Deployment and Service `<endpoint>-epp` on the port the InferencePool names. A CPU pod:
    it never tolerates the GPU taint."""

    def __init__(self, name: str, args: EndpointPickerArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("EndpointPicker", name, opts)
        picker = picker_name(args.endpoint)
        gateway_names = integration_points().gateway_inference_extension
        runner = integration_points().endpoint_picker
        grpc_port = gateway_names.endpoint_picker_port
        health_port, metrics_port = args.pin.ports["health"], args.pin.ports["metrics"]
        meta_labels = labels(PICKER_COMPONENT, picker, **{ENDPOINT_LABEL: args.endpoint, TENANT_LABEL: args.tenant})

        def meta(**extra) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(name=picker, namespace=args.namespace, labels=meta_labels, **extra)

        account = k8s.core.v1.ServiceAccount(f"{name}-sa", metadata=meta(), opts=self.child())
        role = k8s.rbac.v1.Role(f"{name}-role", metadata=meta(), rules=[
            k8s.rbac.v1.PolicyRuleArgs(api_groups=[gateway_names.pool_group], resources=["inferencepools"],
                                       verbs=["get", "list", "watch"]),
            k8s.rbac.v1.PolicyRuleArgs(api_groups=[""], resources=["pods"], verbs=["get", "list", "watch"]),
            k8s.rbac.v1.PolicyRuleArgs(api_groups=["discovery.k8s.io"], resources=["endpointslices"],
                                       verbs=["get", "list", "watch"]),
            k8s.rbac.v1.PolicyRuleArgs(api_groups=["nvidia.com"], resources=["dynamoworkermetadatas"],
                                       verbs=["get", "list", "watch"]),
        ], opts=self.child())
        binding = k8s.rbac.v1.RoleBinding(
            f"{name}-binding", metadata=meta(),
            role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="Role", name=picker),
            subjects=[k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=picker, namespace=args.namespace)],
            opts=self.child(role, account))
        config = k8s.core.v1.ConfigMap(f"{name}-config", metadata=meta(),
                                       data={runner.config_file: picker_config(runner)}, opts=self.child())
        k8s.networking.v1.NetworkPolicy(
            f"{name}-api-server-egress",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{picker}-api-server-egress", namespace=args.namespace,
                                                labels=meta_labels),
            # Keyed on a label only the platform may set on pods (admission, platform-labels): a tenant's own pod
            # named like the picker gets no API-server egress.
            spec=api_server_egress_policy({"app.kubernetes.io/name": picker, ENDPOINT_LABEL: args.endpoint},
                                          args.api_server_egress),
            opts=self.child())
        probe = k8s.core.v1.ProbeArgs(grpc=k8s.core.v1.GRPCActionArgs(port=health_port, service=HEALTH_SERVICE),
                                      initial_delay_seconds=5, period_seconds=10)
        env = pulumi.Output.from_input(args.namespace).apply(lambda namespace: picker_env(args, namespace))
        restricted_deployment(
            f"{name}-deployment", name=picker, namespace=args.namespace, labels=meta_labels,
            pod=k8s.core.v1.PodSpecArgs(
                service_account_name=picker,
                # The picker watches the API server: the only pod of the endpoint that gets a token.
                automount_service_account_token=True,
                priority_class_name=PRIORITY_SERVING,
                containers=[k8s.core.v1.ContainerArgs(
                    name="epp", image=args.image,
                    args=pulumi.Output.from_input(args.namespace).apply(lambda namespace: picker_args(
                        runner, args.endpoint, namespace, gateway_names.pool_group, grpc_port, health_port,
                        metrics_port)),
                    env=env,
                    volume_mounts=[k8s.core.v1.VolumeMountArgs(name="config", mount_path=runner.config_mount_path,
                                                               read_only=True)],
                    ports=[k8s.core.v1.ContainerPortArgs(name="grpc", container_port=grpc_port),
                           k8s.core.v1.ContainerPortArgs(name="grpc-health", container_port=health_port),
                           k8s.core.v1.ContainerPortArgs(name="metrics", container_port=metrics_port)],
                    resources=container_resources("endpointPicker"),
                    liveness_probe=probe, readiness_probe=probe,
                )],
                volumes=[k8s.core.v1.VolumeArgs(name="config", config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
                    name=picker))],
            ),
            skip_await=args.skip_await, opts=self.child(binding, config),
        )
        k8s.core.v1.Service(
            f"{name}-service", metadata=meta(),
            spec=k8s.core.v1.ServiceSpecArgs(selector={"app.kubernetes.io/name": picker}, ports=[
                k8s.core.v1.ServicePortArgs(name="grpc", port=grpc_port, target_port="grpc", app_protocol="http2"),
                k8s.core.v1.ServicePortArgs(name="metrics", port=metrics_port, target_port="metrics")]),
            opts=self.child())
        self.service = picker
        self.register_outputs({"service": picker, "port": grpc_port})
