"""ncp-inference RA guardrails: every policy, importable without starting the analyzer server."""
from ncp_guardrails import platform_rules, readiness_rules, serving_rules, tenancy_rules, workload_rules

PACK_NAME = "ncp-inference-ra-guardrails"
POLICIES = (platform_rules.POLICIES + workload_rules.POLICIES + tenancy_rules.POLICIES + serving_rules.POLICIES
            + readiness_rules.POLICIES)
