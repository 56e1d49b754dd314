"""Config and profiles -> a validated deployment plan.

Everything here is pure data: no Pulumi resources are created in this package. Components read the plan; they
never read stack config, profile files or the compatibility matrix themselves.

Four parts, each importing only its own or a lower one (docs/architecture.md, "Inside the plan"): the inputs (schema,
data catalog, errors), the derivation (what the plan computes from valid inputs), the rules (`ncp.plan.rules`: every
validation as data) and the assembly (`site_plan.build_plan`: the rules first, then the derivation).
"""
