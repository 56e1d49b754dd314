"""Entry point the Pulumi CLI runs for `pulumi preview --policy-pack policy`. PolicyPack() serves forever, so the
policies live in the importable ncp_guardrails package (the offline checker uses them without this file)."""
from pulumi_policy import EnforcementLevel, PolicyPack

from ncp_guardrails import PACK_NAME, POLICIES

PolicyPack(name=PACK_NAME, policies=POLICIES, enforcement_level=EnforcementLevel.ADVISORY)
