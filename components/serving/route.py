"""An HTTPRoute from the site's Gateway to the InferencePools of a tenant's endpoints: the gateway path's last hop.
Weights across pools of one served model make a blue/green rollout a config change."""
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components.kube import TENANT_LABEL, Layer, labels
from ncp.plan.catalog import integration_points


@dataclass(frozen=True)
class RouteArgs:
    """Args of one HTTPRoute.

    Attributes:
        name: the HTTPRoute's name in the tenant namespace (no default).
        tenant: the tenant the route and every pool it names belong to (no default).
        namespace: the tenant namespace (no default).
        gateway: name of the site's Gateway the route attaches to (no default; a site prerequisite).
        gateway_namespace: namespace of that Gateway (no default); its listeners' allowedRoutes must admit routes
            from tenant namespaces (a site prerequisite).
        section_name: the Gateway listener to attach to; None attaches to every listener. Default: None.
        hostnames: host names the route answers; empty answers every host of the listener. Default: ().
        path_prefix: the request path prefix the route matches. Default: '/'.
        backends: (InferencePool name, weight in percent of the route's requests) per pool (no default).
    """

    name: str
    tenant: str
    namespace: pulumi.Input[str]
    gateway: str
    gateway_namespace: str
    backends: tuple[tuple[str, int], ...]
    section_name: Optional[str] = None
    hostnames: tuple[str, ...] = ()
    path_prefix: str = "/"


def route_spec(args: RouteArgs) -> dict:
    """HTTPRoute spec (gateway.networking.k8s.io/v1): parentRef to the Gateway in its own namespace, one rule with a
    weighted backendRef per InferencePool (kubernetes-sigs/gateway-api-inference-extension
    conformance/tests/gateway_weighted_two_pools.yaml@v1.6.0). The pools live in the route's namespace: no
    ReferenceGrant; the parentRef crosses namespaces, which the Gateway's allowedRoutes must permit."""
    names = integration_points().gateway_inference_extension
    parent = {"group": names.route_group, "kind": names.gateway_kind, "name": args.gateway,
              "namespace": args.gateway_namespace}
    if args.section_name:
        parent["sectionName"] = args.section_name
    spec = {
        "parentRefs": [parent],
        "rules": [{
            "matches": [{"path": {"type": "PathPrefix", "value": args.path_prefix}}],
            "backendRefs": [{"group": names.pool_group, "kind": names.pool_kind, "name": pool, "weight": weight}
                            for pool, weight in args.backends],
        }],
    }
    if args.hostnames:
        spec["hostnames"] = list(args.hostnames)
    return spec


class InferenceRoute(Layer):
    """The HTTPRoute `<route>` in the tenant namespace."""

    def __init__(self, name: str, args: RouteArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("InferenceRoute", name, opts)
        self.refuse([] if args.backends else [f"route {args.name} names no InferencePool"])
        names = integration_points().gateway_inference_extension
        self.route = k8s.apiextensions.CustomResource(
            f"{name}-httproute",
            api_version=names.route_api_version,
            kind="HTTPRoute",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=args.name, namespace=args.namespace,
                                                labels=labels("gateway-route", args.name,
                                                              **{TENANT_LABEL: args.tenant})),
            spec=route_spec(args),
            opts=self.child())
        self.register_outputs({"route": args.name, "gateway": f"{args.gateway_namespace}/{args.gateway}"})
