"""The rule over what quota admission counts: every pod the program puts in a tenant namespace, at once, against the
tenant's ResourceQuota keys (the count is ncp/plan/tenant_pods.py, which the components read too)."""
from ncp.plan.catalog import integration_points
from ncp.plan.errors import Problem
from ncp.plan.names import PROJECT, tenant_namespace
from ncp.plan.rules.registry import RuleInputs
from ncp.plan.tenant_pods import QUOTA_KEYS, quantity, quota_of, tenant_demands


def quota_problems(i: RuleInputs) -> list[Problem]:
    """Each quota key a tenant's pods exceed at once, once per stack key (cpuQuota also sets limits.cpu where the
    stack sets no cpuLimit): the key, the sum, what makes it up and the command that fixes it."""
    assert i.profile is not None
    config, problems = i.config, []
    demands = tenant_demands(config, i.endpoints, i.services, i.profile.gpu.per_node)
    gpu = integration_points().gpu.resource
    for index, tenant in enumerate(config.tenants):
        demand = demands[tenant.name]
        over: dict[str, list[tuple[float, str, str]]] = {}
        for key, (quota_key, attribute, _) in QUOTA_KEYS.items():
            set_key, have = quota_of(tenant, key)
            if demand.total(attribute) > quantity(have) + 1e-9:
                counted = (f"{demand.shown(attribute)} of {quota_key.format(gpu=gpu)} "
                           f"({demand.breakdown(attribute)})")
                over.setdefault(set_key, []).append((demand.total(attribute), demand.shown(attribute), counted))
        for set_key, exceeded in over.items():
            need = max(exceeded)[1]
            path = f"{PROJECT}:tenants[{index}].{set_key}"
            problems.append(Problem(
                path, f"is {quota_of(tenant, set_key)[1]}; quota admission counts "
                      f"{' and '.join(counted for _, _, counted in exceeded)} for tenant {tenant.name}'s pods in "
                      f"{tenant_namespace(tenant.name)} at once",
                f"raise {set_key} to at least {need}: pulumi config set --path '{path}' {need}"))
    return problems
