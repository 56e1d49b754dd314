"""Where raw stack config comes from: the running Pulumi program, or a Pulumi.<stack>.yaml read offline."""
import json
from pathlib import Path
from typing import Any, Optional

import yaml

from plan.catalog import ROOT
from plan.errors import ConfigError, Problem
from plan.local_overlay import OVERLAY_ENV, LocalOverlay, read_overlay
from plan.names import PROJECT
from plan.site_plan import SitePlan, build_plan


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _split(config: dict[str, Any]) -> dict[str, Any]:
    prefix = f"{PROJECT}:"
    return {key[len(prefix):]: _decode(value) for key, value in config.items() if key.startswith(prefix)}


def plan_from_pulumi() -> SitePlan:
    """Read every `ncp-inference:*` key the engine passed (so unknown keys are caught too)."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    merged = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    raw = _split(merged)
    secret_keys = {
        key[len(PROJECT) + 1:]
        for key in list(merged)
        if runtime_config.is_config_secret(key) or key in runtime_config.get_config_secret_keys_env()
    }
    source = f"Pulumi.{pulumi.get_stack()}.yaml"
    overlay = local_overlay(source)
    if overlay is not None:
        pulumi.log.warn(f"local control plane overlay {overlay.path} ({OVERLAY_ENV}) is merged over {source}: "
                        "test cluster settings, never a site's")
    return build_plan(raw, secret_keys, source, overlay)


def stack_file(stack: str) -> Path:
    return ROOT / f"Pulumi.{stack}.yaml"


def read_stack_file(stack: str) -> tuple[dict[str, Any], set[str]]:
    """Raw config and secret keys of Pulumi.<stack>.yaml; secure values stay encrypted placeholders."""
    path = stack_file(stack)
    if not path.is_file():
        raise ConfigError(str(path.name), [Problem(path.name, "does not exist",
                                                   f"create it with: pulumi stack init {stack}")])
    return config_of_document(path.read_text(), path.name)


def config_of_document(text: str, source: str) -> tuple[dict[str, Any], set[str]]:
    """Raw config and secret keys of a stack file's text; `source` names it in errors."""
    raw, secrets = {}, set()
    for key, value in _split(_stack_config(text, source)).items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            secrets.add(key)
        raw[key] = value
    return raw, secrets


def _stack_config(text: str, source: str) -> dict[str, Any]:
    """The `config:` mapping of a stack file, or one ConfigError naming the line that is wrong."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(error, "problem", None) or str(error)
        raise ConfigError(source, [Problem(source, f"is not valid YAML{where}: {reason}",
                                           "fix the YAML syntax there (indentation, quotes, brackets)")]) from None
    document = {} if document is None else document
    if not isinstance(document, dict):
        raise ConfigError(source, [Problem(source, f"is a YAML {type(document).__name__}, not a mapping",
                                           "a stack file is a mapping with a top-level `config:` key")])
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise ConfigError(source, [Problem(f"{source}: config", f"is a {type(config).__name__}, not a mapping",
                                           f"write `config:` as a mapping of `{PROJECT}:<key>: <value>` entries")])
    return config


def local_overlay(source: str) -> Optional[LocalOverlay]:
    """The overlay $NCP_LOCAL_OVERLAY names, if any (plan/local_overlay.py); a bad one is a ConfigError."""
    overlay, problems = read_overlay(source)
    if problems:
        raise ConfigError(source, problems)
    return overlay


def plan_from_stack_file(stack: str) -> SitePlan:
    raw, secrets = read_stack_file(stack)
    source = stack_file(stack).name
    return build_plan(raw, secrets, source, local_overlay(source))
