"""Config errors speak the user's language: every key as the stack file spells it (camelCase), never the Python
field name (snake_case) or an internal tier name (kebab-case). The messages of a set of bad fixture configs are
produced and scanned for every snake_case field name of the config models."""
import re
import typing

import pydantic
import pytest

from tests.support.synthetic import mutate, secret_keys, site_config
from ncp.plan.config import StackConfig
from ncp.plan.errors import ConfigError
from ncp.plan.serving import StorageTiers
from ncp.plan.site_plan import build_plan
from tests.test_config_errors import CASES, _clean, _drop

STORAGE = {"modelArtifacts": {"storageClass": "shared", "size": "10Gi", "accessMode": "ReadWriteMany"},
           "modelCache": {"storageClass": "local", "size": "10Gi"},
           "benchmarkOutput": {"storageClass": "bench", "size": "1Gi"}}
EXTRA = [
    ("tiers sharing a class", site_config("lab"), "components.serving.storage",
     {**STORAGE, "modelCache": {"storageClass": "shared", "size": "10Gi"}}),
    ("staging without evidence", site_config("lab", "staging"), "site.validationEvidence", None),
    ("time-slicing replicas", site_config("hgx-h200", "prod"), "components.gpuOperator.timeSlicing", {"replicas": 1}),
    ("bad rail prefix", site_config("hgx-h200", "prod"), "components.networkOperator.railPrefixLength", 30),
    ("suite image latest", site_config("hgx-h200", "staging"), "components.serving.validation.suiteImage",
     "docker.io/library/busybox:latest"),
]


def _fields(model, seen=None) -> set[str]:
    """Every snake_case field name of the config models reachable from model."""
    seen = set() if seen is None else seen
    if model in seen:
        return set()
    seen.add(model)
    names = set()
    for name, field in model.model_fields.items():
        if "_" in name:
            names.add(name)
        for inner in _models(field.annotation):
            names |= _fields(inner, seen)
    return names


def _models(annotation) -> list:
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models(arg)]


SNAKE = _fields(StackConfig)
# The tiers' internal names (claim names), which a message must not use for the keys.
KEBAB_TIERS = {name for name, _ in StorageTiers.model_validate({
    **STORAGE, "kvOffload": {"storageClass": "kv", "size": "1Gi"},
    "telemetryRetention": {"storageClass": "tsdb", "size": "1Gi"}}).named()}


def _messages() -> list[tuple[str, str]]:
    messages = []
    for name, base, path, value, *_ in CASES:
        config = _clean(mutate(base, path, value)) if value is not None else _drop(base, path)
        messages.append((name, _error(config)))
    for name, base, path, value in EXTRA:
        config = mutate(base, path, value) if value is not None else _drop(base, path)
        messages.append((name, _error(config)))
    return messages


def _error(config) -> str:
    with pytest.raises(ConfigError) as error:
        build_plan(config, secret_keys(config), "Pulumi.fixture.yaml")
    return str(error.value)


def _leaks(text: str) -> list[str]:
    words = set(re.findall(r"[A-Za-z][A-Za-z0-9_-]*", text))
    return sorted(words & (SNAKE | KEBAB_TIERS))


def test_the_scan_knows_the_config_fields():
    assert {"gpu_quota", "storage_class", "validation_evidence", "rail_prefix_length"} <= SNAKE
    assert _leaks("tiers model-artifacts and modelCache share storage_class") == [
        "model-artifacts", "storage_class"], "the scan sees a leak"


def test_no_error_message_names_a_key_other_than_as_the_user_writes_it():
    leaks = {name: _leaks(text) for name, text in _messages()}
    assert not {name: found for name, found in leaks.items() if found}, leaks
