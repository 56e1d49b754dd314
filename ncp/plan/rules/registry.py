"""A config rule: one named validation of the stack config, the pack's `POLICIES` idea one layer down.

Each rule says what it judges (`path`, the config key), what it refuses, the fix it prints, the policy of the pack it
mirrors (policy/ncp_guardrails, or None where no policy can see it) and the RA sentence it carries (the same
`Section: "sentence"` form the traceability scan reads, or None). Its `check` is a function over `RuleInputs`
returning Problems; the runner stamps each with the rule's id, which the error output prints."""
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Callable, Mapping, Optional

from ncp.plan.catalog import CompatibilityMatrix
from ncp.plan.config import StackConfig
from ncp.plan.endpoint_plan import EndpointPlan
from ncp.plan.errors import Problem
from ncp.plan.local_overlay import LocalOverlay
from ncp.plan.profile import HardwareProfile

# When a rule runs: `input` while a document is read (the stack file, its base and pins, the local overlay, the
# project's data files, the schema): its `check` is the reader that stamps the id on what it refuses, because nothing
# after it can run on a document that did not parse; `raw` over the stack's raw values before the schema; `config`
# over the parsed config (and what the plan derives from it, for rules that judge a derived count such as a quota).
STAGES = ("input", "raw", "config")


@dataclass
class RawInputs:
    """What `raw` rules read: the stack's values as written (after the base and the local overlay are merged)."""

    raw: Mapping[str, Any]
    secret_keys: set[str]
    overlay: Optional[LocalOverlay] = None
    unmerged: Mapping[str, Any] = field(default_factory=dict)  # the stack's own values, before the overlay


@dataclass
class RuleInputs(RawInputs):
    """What `config` rules read: the parsed config, its hardware profile (None when the name is unknown) and the
    matrix with the site's pins; the derived endpoints and services are computed once, on first use."""

    config: StackConfig = None  # type: ignore[assignment]  # always given; a default only to follow RawInputs
    profile: Optional[HardwareProfile] = None
    matrix: CompatibilityMatrix = None  # type: ignore[assignment]

    @cached_property
    def layouts(self) -> dict:
        from ncp.plan.endpoints import sized_layouts
        assert self.profile is not None
        return sized_layouts(self.config, self.profile)

    @cached_property
    def endpoints(self) -> list[EndpointPlan]:
        from ncp.plan.endpoints import plan_endpoints  # derivation sits above the rules' inputs
        assert self.profile is not None
        return plan_endpoints(self.config, self.profile, self.matrix)

    @cached_property
    def services(self) -> list:
        from ncp.plan.inference_services import plan_inference_services
        assert self.profile is not None
        return plan_inference_services(self.config, self.profile, self.matrix)

    @cached_property
    def mirror_charts(self) -> list[tuple[str, str]]:
        """(chart name, pinned version) of every chart the site deploys."""
        from ncp.plan.layers import site_layers
        layers = site_layers(self.config, self.profile, self.matrix, bool(self.config.endpoints))
        return [(self.matrix.pin(c).chart_name, self.matrix.pin(c).version) for c in layers.charts]


@dataclass(frozen=True)
class Rule:
    id: str  # stable and dotted: <area>.<what it refuses>
    path: str  # the config key it judges (`[i]` for any index)
    refuses: str  # what the program refuses, one sentence (the operator guide lists it)
    fix: str  # the fix it prints: a command, or the file and key to edit
    # raw and config rules: inputs -> the problems found; input rules: the reader that refuses the document
    check: Callable[..., Any]
    stage: str = "config"
    needs_profile: bool = False  # runs only when site.hardwareProfile names a known profile
    policy: Optional[str] = None  # the pack policy it mirrors
    ra: Optional[str] = None  # `Section: "sentence"` of the RA it carries

    def run(self, inputs: Any) -> list[Problem]:
        if self.needs_profile and inputs.profile is None:
            return []
        return [replace(problem, rule=self.id) for problem in self.check(inputs)]
