"""ncp-inference: the NVIDIA Inference Reference Architecture, composed per stack.

Validate the stack config first; nothing is registered from a config that did not validate."""
import pulumi

from ncp.composition import compose
from ncp.plan.errors import ConfigError
from ncp.plan.names import PROJECT
from ncp.plan.sources import plan_from_pulumi
from ncp.plan.wired import wired_plan

try:
    site_plan = plan_from_pulumi()
except ConfigError as error:
    raise pulumi.RunError(str(error)) from None

ngc_api_key = pulumi.Config(PROJECT).get_secret("ngcApiKey") if site_plan.has_ngc_api_key else None
for name, value in compose(wired_plan(site_plan), ngc_api_key).items():
    pulumi.export(name, value)
