"""Rules over the gateway path of the Gateway API Inference Extension: the site settings it needs, each route's
tenant and backends, and every endpoint reached by a route. Each problem names the config key and the fix."""
from ncp.plan.catalog import CompatibilityMatrix
from ncp.plan.config import Environment, StackConfig
from ncp.plan.errors import Problem, rm_command, set_command
from ncp.plan.gateway import EPP_IMAGE, GATEWAY_KEY, PERCENT
from ncp.plan.names import PROJECT
from ncp.plan.rules.registry import RuleInputs
from ncp.plan.serving import Endpoint, GatewaySettings


def _site_problems(config: StackConfig, matrix: CompatibilityMatrix) -> list[Problem]:
    serving = config.components.serving
    problems = []
    if serving.gateway is not None and not serving.gateway_inference_extension:
        problems.append(Problem(GATEWAY_KEY, "routes to InferencePools, and components.serving."
                                "gatewayInferenceExtension is false (no endpoint has a pool)",
                                set_command(f"{PROJECT}:components.serving.gatewayInferenceExtension", "true")
                                + ", or remove the gateway: " + rm_command(GATEWAY_KEY)))
    if not (serving.gateway_inference_extension and config.endpoints):
        return problems
    if serving.gateway is None:
        problems.append(Problem(GATEWAY_KEY, "is required with gatewayInferenceExtension: the endpoints' "
                                "InferencePools are reached only through an HTTPRoute from the site's Gateway",
                                "name the site's Gateway (in components.tenancy.gatewayNamespace), record it and "
                                "route the endpoints: " + " && ".join(
                                    set_command(f"{GATEWAY_KEY}.{key}", f"'<{what}>'") for key, what in (
                                        ("name", "Gateway name"), ("localDecision.decision", "its implementation"),
                                        ("localDecision.reason", "why the site chose it"),
                                        ("routes[0].name", "route name"), ("routes[0].tenant", "tenant"),
                                        ("routes[0].backends[0].endpoint", "endpoint"),
                                        ("routes[0].backends[0].weight", "100")))))
    if config.site.environment == Environment.PROD and EPP_IMAGE not in serving.image_digests:
        problems.append(Problem(f"{PROJECT}:components.serving.imageDigests.{EPP_IMAGE}",
                                "is required in prod with gatewayInferenceExtension: the endpoint picker's image is "
                                "pinned by digest like the serving images",
                                f"pulumi config set --path '{PROJECT}:components.serving.imageDigests.{EPP_IMAGE}' "
                                f"sha256:<digest of {matrix.workload('endpointPicker').images[EPP_IMAGE]}>"))
    return problems


def _route_problems(index: int, gateway: GatewaySettings, endpoints: dict[str, Endpoint],
                    tenants) -> list[Problem]:
    route = gateway.routes[index]
    key = f"{GATEWAY_KEY}.routes[{index}]"
    if route.tenant not in tenants:
        return [Problem(f"{key}.tenant", f"names unknown tenant {route.tenant!r}",
                        set_command(f"{key}.tenant", f"<one of: {', '.join(sorted(tenants))}>"))]
    problems = []
    names = [backend.endpoint for backend in route.backends]
    own = sorted(name for name, endpoint in endpoints.items() if endpoint.tenant == route.tenant)
    for position, name in enumerate(names):
        at = f"{key}.backends[{position}].endpoint"
        endpoint = endpoints.get(name)
        if endpoint is None:
            problems.append(Problem(at, f"names unknown endpoint {name!r}",
                                    set_command(at, f"<an endpoint of tenant {route.tenant}: "
                                                    f"{', '.join(own) or 'none'}>")))
        elif endpoint.tenant != route.tenant:
            problems.append(Problem(at, f"endpoint {name!r} belongs to tenant {endpoint.tenant}, not "
                                    f"{route.tenant}: a route lives in its tenant's namespace and reaches only that "
                                    "tenant's pools", f"route {name} from a route of tenant {endpoint.tenant}: "
                                    + rm_command(f"{key}.backends[{position}]")))
        elif names.index(name) != position:
            problems.append(Problem(at, f"repeats endpoint {name!r}", "list each endpoint once with its weight: "
                                    + rm_command(f"{key}.backends[{position}]")))
    models = {endpoints[n].model.name for n in names if n in endpoints}
    if len(models) > 1:
        problems.append(Problem(f"{key}.backends", f"mixes served models {', '.join(sorted(models))}: clients of "
                                "one route ask for one model name, and a weight moves them between endpoints",
                                "give each model its own route (its own hostname or pathPrefix): "
                                + set_command(f"{GATEWAY_KEY}.routes[{len(gateway.routes)}].name", "<route name>")
                                + " and move the other model's backends there"))
    total = sum(backend.weight for backend in route.backends)
    if total != PERCENT:
        problems.append(Problem(f"{key}.backends", f"weights add up to {total}; they are percentages of the "
                                "route's requests", f"make them add up to {PERCENT}, e.g. 90 and 10: " + " && ".join(
                                    set_command(f"{key}.backends[{i}].weight", "<percent>")
                                    for i in range(len(route.backends)))))
    return problems


def _add_backend(gateway: GatewaySettings, tenant: str, endpoint: str) -> str:
    """The command adding an endpoint to its tenant's first route (a new route where the tenant has none)."""
    index = next((i for i, route in enumerate(gateway.routes) if route.tenant == tenant), None)
    if index is None:
        return (set_command(f"{GATEWAY_KEY}.routes[{len(gateway.routes)}].tenant", tenant) + " && "
                + set_command(f"{GATEWAY_KEY}.routes[{len(gateway.routes)}].backends[0].endpoint", endpoint))
    return set_command(f"{GATEWAY_KEY}.routes[{index}].backends[{len(gateway.routes[index].backends)}].endpoint",
                       endpoint)


def _coverage_problems(gateway: GatewaySettings, endpoints: dict[str, Endpoint]) -> list[Problem]:
    """Every endpoint's pool is reached by exactly one route, and no two routes answer the same host and path."""
    problems: list[Problem] = []
    routed: dict[str, str] = {}
    answered: dict[tuple, str] = {}
    for index, route in enumerate(gateway.routes):
        for backend in route.backends:
            if backend.endpoint in routed and routed[backend.endpoint] != route.name:
                problems.append(Problem(f"{GATEWAY_KEY}.routes[{index}].backends",
                                        f"endpoint {backend.endpoint!r} is already a backend of route "
                                        f"{routed[backend.endpoint]}", "route each endpoint from one route: "
                                        + rm_command(f"{GATEWAY_KEY}.routes[{index}].backends"
                                                     f"[{route.backends.index(backend)}]")))
            routed.setdefault(backend.endpoint, route.name)
        for host in route.hostnames or ["*"]:
            match = (host, route.path_prefix)
            if match in answered:
                problems.append(Problem(f"{GATEWAY_KEY}.routes[{index}].hostnames",
                                        f"route {answered[match]} already answers host {host} on path "
                                        f"{route.path_prefix}", "give the route its own hostname or pathPrefix: "
                                        + set_command(f"{GATEWAY_KEY}.routes[{index}].pathPrefix", "/<path>")))
            answered.setdefault(match, route.name)
    for name in endpoints:
        if name not in routed:
            problems.append(Problem(f"{GATEWAY_KEY}.routes", f"reach no backend endpoint {name!r}: its "
                                    "InferencePool would serve nothing", f"add {name} to a route of tenant "
                                    f"{endpoints[name].tenant} (weight 0 keeps it on standby): "
                                    + _add_backend(gateway, endpoints[name].tenant, name)))
    return problems


def site_settings(i: RuleInputs) -> list[Problem]:
    return _site_problems(i.config, i.matrix)


def _routed(config: StackConfig) -> bool:
    return config.components.serving.gateway is not None and config.components.serving.gateway_inference_extension


def routes(i: RuleInputs) -> list[Problem]:
    """Each route names a tenant and that tenant's endpoints once, serving one model, weights adding up to 100."""
    if not _routed(i.config):
        return []
    gateway = i.config.components.serving.gateway
    assert gateway is not None
    by_name = {endpoint.name: endpoint for endpoint in i.config.endpoints}
    tenants = {tenant.name: tenant for tenant in i.config.tenants}
    return [p for index in range(len(gateway.routes)) for p in _route_problems(index, gateway, by_name, tenants)]


def coverage(i: RuleInputs) -> list[Problem]:
    if not _routed(i.config):
        return []
    gateway = i.config.components.serving.gateway
    assert gateway is not None
    return _coverage_problems(gateway, {endpoint.name: endpoint for endpoint in i.config.endpoints})
