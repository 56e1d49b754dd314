"""Config and profiles -> a validated deployment plan.

Everything here is pure data: no Pulumi resources are created in this package. Components read the plan; they
never read stack config, profile files or the compatibility matrix themselves.
"""
