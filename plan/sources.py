"""Where raw stack config comes from: the running Pulumi program, or a Pulumi.<stack>.yaml read offline."""
import json
from pathlib import Path
from typing import Any

import yaml

from plan.catalog import ROOT
from plan.errors import ConfigError, Problem
from plan.site_plan import PROJECT, SitePlan, build_plan


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
    return build_plan(raw, secret_keys, f"Pulumi.{pulumi.get_stack()}.yaml")


def stack_file(stack: str) -> Path:
    return ROOT / f"Pulumi.{stack}.yaml"


def read_stack_file(stack: str) -> tuple[dict[str, Any], set[str]]:
    """Raw config and secret keys of Pulumi.<stack>.yaml; secure values stay encrypted placeholders."""
    path = stack_file(stack)
    if not path.is_file():
        raise ConfigError(str(path.name), [Problem(path.name, "does not exist",
                                                   f"create it with: pulumi stack init {stack}")])
    document = yaml.safe_load(path.read_text()) or {}
    config = document.get("config") or {}
    raw, secrets = {}, set()
    for key, value in _split(config).items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            secrets.add(key)
        raw[key] = value
    return raw, secrets


def plan_from_stack_file(stack: str) -> SitePlan:
    raw, secrets = read_stack_file(stack)
    return build_plan(raw, secrets, stack_file(stack).name)
