"""Evaluate the CrossGuard pack against a recorded run through pulumi-policy's own analyzer code paths.

The analyzer servicer is private API of pulumi-policy (pinned in policy/requirements.txt); tests fail loudly if its
shape changes. Requests are built the way the engine builds them: resource properties as the wire Struct (secrets
marked), options, parent, dependencies; pack config is expanded and defaulted as `--policy-pack-config` is."""
import hashlib
import importlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import yaml
from google.protobuf import json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2

from ncp.readmodel.recorder import Recording, Registration
from ncp.plan.catalog import ROOT
from ncp.cli_exit import BadInput

PACK_DIR = ROOT / "policy"
LEVELS = {"advisory": analyzer_pb2.ADVISORY, "mandatory": analyzer_pb2.MANDATORY, "disabled": analyzer_pb2.DISABLED,
          "remediate": analyzer_pb2.REMEDIATE}
LEVEL_NAMES = {value: name for name, value in LEVELS.items()}


@dataclass(frozen=True)
class Violation:
    policy: str
    level: str
    message: str
    urn: str
    description: str
    remediation: str = ""

    def render(self, pack: str, version: str) -> str:
        where = self.urn.split("::")[-2:] if self.urn else ["stack", ""]
        target = f"{where[0].split('$')[-1]}: {where[1]}" if self.urn else "stack"
        message = self.message.replace("\n", "\n        ")
        text = f"    [{self.level}]  {pack} v{version}  {self.policy}  ({target})\n        {message}"
        if self.remediation:
            text += "\n        fix: " + self.remediation.strip().replace("\n", "\n             ")
        return text


class PackConfigError(BadInput):
    pass


def load_pack(pack_dir: Path = PACK_DIR):
    """(name, version, policies) of the pack, imported as the language host would import it."""
    if str(pack_dir) not in sys.path:
        sys.path.insert(0, str(pack_dir))
    module = importlib.import_module("ncp_guardrails")
    version = yaml.safe_load((pack_dir / "PulumiPolicy.yaml").read_text())["version"]
    return module.PACK_NAME, str(version), module.POLICIES


def policy_configs(policies, config: dict) -> dict:
    """Per policy: enforcement level and properties, as the CLI expands a --policy-pack-config file."""
    known = {p.name: p for p in policies}
    unknown = set(config) - set(known) - {"all"}
    if unknown:
        raise PackConfigError(f"pack config names unknown policies: {', '.join(sorted(unknown))}")
    result = {}
    default_level = config.get("all")
    for name, policy in known.items():
        entry = config.get(name, {})
        if isinstance(entry, str):
            entry = {"enforcementLevel": entry}
        level = entry.get("enforcementLevel") or default_level or (
            policy.enforcement_level.value if policy.enforcement_level else "advisory")
        if level not in LEVELS:
            raise PackConfigError(f"{name}: unknown enforcement level {level!r}")
        schema = policy.config_schema.properties if policy.config_schema else {}
        properties = {key: spec["default"] for key, spec in schema.items() if "default" in spec}
        for key, value in entry.items():
            if key == "enforcementLevel":
                continue
            if key not in schema:
                raise PackConfigError(f"{name}: unknown config property {key!r}")
            properties[key] = value
        result[name] = (level, project_inputs(properties))
    return result


# The pack reads nothing of this checkout (policy/README.md, "Standalone"): what it judges against from the project
# reaches it through its config. Local evidence paths become absolute (the pack takes them as given), and the
# promotion gate gets the sizing files' current sha256 (its key-drift check: a sizing file edited after the key was
# stamped on the deployment).
LOCAL_PATH_PROPERTIES = ("evidenceIndex", "trustedKeys")
SIZING_FILES = "sites/*/sizing/*.yaml"


def project_inputs(properties: dict, root: Path = ROOT) -> dict:
    resolved = dict(properties)
    for key in LOCAL_PATH_PROPERTIES:
        value = resolved.get(key)
        if isinstance(value, str) and not value.startswith("s3://") and not Path(value).is_absolute():
            resolved[key] = str(root / value)
    if "sizingFiles" in resolved and not resolved["sizingFiles"]:
        resolved["sizingFiles"] = {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
                                   for path in sorted(root.glob(SIZING_FILES))}
    return resolved


def _struct(value: dict) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    json_format.ParseDict(value, struct)
    return struct


def _options(registration: Registration) -> analyzer_pb2.AnalyzerResourceOptions:
    options = registration.options
    return analyzer_pb2.AnalyzerResourceOptions(
        protect=options["protect"], ignoreChanges=options["ignoreChanges"],
        deleteBeforeReplace=options["deleteBeforeReplace"], deleteBeforeReplaceDefined=True,
        additionalSecretOutputs=options["additionalSecretOutputs"], parent=registration.parent)


def evaluate(recording: Recording, config: dict, pack_dir: Path = PACK_DIR) -> tuple[str, str, list[Violation]]:
    from pulumi_policy.policy import EnforcementLevel, _PolicyAnalyzerServicer  # private: see module docstring

    name, version, policies = load_pack(pack_dir)
    servicer = _PolicyAnalyzerServicer(name, version, policies, EnforcementLevel.ADVISORY)
    configure = analyzer_pb2.ConfigureAnalyzerRequest()
    for policy, (level, properties) in policy_configs(policies, config).items():
        configure.policyConfig[policy].CopyFrom(
            analyzer_pb2.PolicyConfig(enforcementLevel=LEVELS[level], properties=_struct(properties)))
    servicer.Configure(configure, None)

    diagnostics = []
    properties = [_struct(registration.wire_inputs) for registration in recording.resources]  # once: both passes
    for registration, struct in zip(recording.resources, properties, strict=True):
        request = analyzer_pb2.AnalyzeRequest(type=registration.type, properties=struct,
                                              urn=registration.urn, name=registration.name,
                                              options=_options(registration))
        diagnostics += servicer.Analyze(request, None).diagnostics
    stack_request = analyzer_pb2.AnalyzeStackRequest()
    for registration, struct in zip(recording.resources, properties, strict=True):
        resource = analyzer_pb2.AnalyzerResource(
            type=registration.type, properties=struct, urn=registration.urn,
            name=registration.name, options=_options(registration), parent=registration.parent,
            dependencies=registration.dependencies)
        for key, urns in registration.property_dependencies.items():
            resource.propertyDependencies[key].urns.extend(urns)
        stack_request.resources.append(resource)
    diagnostics += servicer.AnalyzeStack(stack_request, None).diagnostics
    remediation = {policy.name: policy.remediation_steps or "" for policy in policies}
    violations = [Violation(d.policyName, LEVEL_NAMES[d.enforcementLevel], d.message, d.urn, d.description,
                            remediation.get(d.policyName, "")) for d in diagnostics]
    return name, version, violations


def read_pack_config(path: Optional[Path]) -> dict:
    if path is None:
        return {}
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PackConfigError(f"{path}: cannot be read as JSON: {exc}") from exc


def report(name: str, version: str, violations: list[Violation]) -> str:
    if not violations:
        return f"Policies:\n    {name}@v{version}: no violations"
    lines = ["Policy Violations:"]
    for violation in sorted(violations, key=lambda v: (v.level != "mandatory", v.policy, v.urn)):
        lines.append(violation.render(name, version))
    return "\n".join(lines)
