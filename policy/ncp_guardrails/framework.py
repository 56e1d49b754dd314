"""Small constructors so every policy carries a description, remediation text and the RA section it enforces."""
from pulumi_policy import (
    PolicyComplianceFramework,
    PolicyConfigSchema,
    ResourceValidationPolicy,
    StackValidationPolicy,
)

RA = "NVIDIA Inference Reference Architecture"


def _framework(section: str) -> PolicyComplianceFramework:
    return PolicyComplianceFramework(name=RA, reference=section)


def resource_policy(name, description, section, remediation, validate, config=None):
    return ResourceValidationPolicy(
        name=name, description=description, validate=validate, remediation_steps=remediation,
        framework=_framework(section), config_schema=PolicyConfigSchema(properties=config) if config else None)


def stack_policy(name, description, section, remediation, validate, config=None):
    return StackValidationPolicy(
        name=name, description=description, validate=validate, remediation_steps=remediation,
        framework=_framework(section), config_schema=PolicyConfigSchema(properties=config) if config else None)
