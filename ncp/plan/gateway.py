"""The gateway path of the Gateway API Inference Extension: one HTTPRoute per configured route, from the site's
Gateway to the InferencePools of a tenant's endpoints, and the endpoint picker's image. The rules over
them are ncp/plan/rules/gateway.py."""
from dataclasses import dataclass
from typing import Optional

from ncp.plan.catalog import CompatibilityMatrix
from ncp.plan.config import StackConfig
from ncp.plan.names import PROJECT, tenant_namespace

GATEWAY_KEY = f"{PROJECT}:components.serving.gateway"
EPP_IMAGE = "epp"  # image key of the matrix workload endpointPicker, and of serving.imageDigests
PERCENT = 100


@dataclass(frozen=True)
class RouteBackendPlan:
    pool: str  # the InferencePool, named after its endpoint
    weight: int


@dataclass(frozen=True)
class RoutePlan:
    name: str
    tenant: str
    namespace: str
    gateway: str
    gateway_namespace: str
    section_name: Optional[str]
    hostnames: tuple[str, ...]
    path_prefix: str
    backends: tuple[RouteBackendPlan, ...]


def endpoint_picker_image(matrix: CompatibilityMatrix, digests: dict[str, str]) -> str:
    """The endpoint picker's image of the pinned Dynamo release, by digest where one is recorded."""
    image = matrix.workload("endpointPicker").images[EPP_IMAGE]
    return f"{image}@{digests[EPP_IMAGE]}" if EPP_IMAGE in digests else image



def plan_routes(config: StackConfig) -> list[RoutePlan]:
    """The HTTPRoutes of the gateway path (the gateway rules judge them against the endpoints they route to)."""
    gateway = config.components.serving.gateway
    if gateway is None or not config.components.serving.gateway_inference_extension:
        return []
    tenants = {tenant.name for tenant in config.tenants}
    return [RoutePlan(name=route.name, tenant=route.tenant, namespace=tenant_namespace(route.tenant),
                      gateway=gateway.name, gateway_namespace=config.components.tenancy.gateway_namespace,
                      section_name=gateway.section_name, hostnames=tuple(route.hostnames),
                      path_prefix=route.path_prefix,
                      backends=tuple(RouteBackendPlan(b.endpoint, b.weight) for b in route.backends))
            for route in gateway.routes if route.tenant in tenants]
