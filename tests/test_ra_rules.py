"""Each RA violation class is refused by config validation with the key and the fix (ncp/plan/rules/ra.py, strict.py
Text, ncp/plan/serving.py revisions), built from both example stacks (the frozen copies, tests/fixtures/stacks, turned
into the environment a class needs), while the valid stacks stay accepted."""
import copy
import typing

import pytest
from pydantic import AfterValidator, BaseModel

from tests.support.synthetic import EXAMPLE_SIGNER_KEY, mutate
from ncp.plan.config import StackConfig
from ncp.plan.errors import ConfigError
from ncp.plan.rules.ra import platform_role_namespaces
from ncp.plan.serving import revision_problem
from ncp.plan.site_plan import build_plan
from ncp.plan.sources import read_stack_file
from ncp.plan.strict import Text

P = "ncp-inference:"
DIGEST = "sha256:" + "1" * 64
CERT_MANAGER = {"kind": "certManager", "decision": "cert-manager issues the datastore certificates",
                "reason": "The site's certificate manager, not an NVIDIA RA component."}
METRICS = {"kind": "metricsBackend", "decision": "The site's Prometheus Operator loads monitors and rules",
           "reason": "The RA names telemetry signals, not a metrics backend."}


def _example(stack: str) -> tuple[dict, set]:
    raw, secrets = read_stack_file(stack)  # the frozen copy (tests/conftest.py)
    return copy.deepcopy(raw), set(secrets)


def _lab_as(environment: str) -> tuple[dict, set]:
    """The lab example moved to a mandatory environment with what that environment asks of it."""
    raw, secrets = _example("lab")
    raw["site"]["environment"] = environment
    raw["localDecisions"] += [CERT_MANAGER, METRICS]
    if environment == "prod":
        raw["ngcApiKey"] = {"secure": "v1:example"}
        secrets.add("ngcApiKey")
        serving = raw["components"]["serving"]
        serving["imageDigests"] = {"trtllm": DIGEST, "tritonserver": DIGEST, "tensorrt": DIGEST, "dcgm": DIGEST,
                                  "ncclTests": DIGEST}
        serving["apiServerEgress"] = {"cidrs": ["10.0.0.1/32"], "ports": [6443]}
        raw["components"].setdefault("tenancy", {})["imageSignatures"] = {"publicKeys": [EXAMPLE_SIGNER_KEY]}
        for key in ("benchmarkImage", "suiteImage"):
            serving["validation"][key] += "@" + DIGEST
    return raw, secrets


# (name, stack builder): each class is built from the lab and the prod example.
BASES = {
    "lab": lambda: _example("lab"),
    "lab-staging": lambda: _lab_as("staging"),
    "lab-prod": lambda: _lab_as("prod"),
    "prod": lambda: _example("prod"),
}


def _plan(raw, secrets):
    return build_plan(raw, secrets, "Pulumi.fixture.yaml")


def _refused(raw, secrets, key: str) -> str:
    with pytest.raises(ConfigError) as error:
        _plan(raw, secrets)
    by_path = {problem.path: problem for problem in error.value.problems}
    assert P + key in by_path, f"{key} not named; problems: {list(by_path)}"
    assert by_path[P + key].fix, f"{key}: no fix given"
    return f"{by_path[P + key].message} | {by_path[P + key].fix}"


@pytest.mark.parametrize("base", BASES)
def test_the_bases_are_accepted(base):
    _plan(*BASES[base]())


@pytest.mark.parametrize("base", ["lab", "prod"])
def test_every_platform_role_namespace_on_a_tenant_namespace_is_refused(base):
    raw, secrets = BASES[base]()
    tenant = f"tenant-{raw['tenants'][0]['name']}"
    config = StackConfig.model_validate({k: v for k, v in raw.items() if k != "ngcApiKey"})
    roles = {path.removeprefix(P) for path, _ in platform_role_namespaces(config)}
    assert {"components.tenancy.gatewayNamespace", "components.tenancy.monitoringNamespace"} <= roles
    cases = {"components.tenancy.gatewayNamespace": tenant, "components.tenancy.monitoringNamespace": tenant,
             "components.serving.modelStaging.mirror": {"service": "hub", "namespace": tenant, "port": 8080},
             "components.serving.plannerPrometheusUrl": f"http://prometheus.{tenant}.svc:9090"}
    for key, value in cases.items():
        broken = mutate(raw, key, value)
        path = key + (".namespace" if key.endswith("mirror") else "")
        text = _refused(broken, secrets, path)
        assert f"is {tenant}, tenant" in text and "never a tenant's" in text


def test_the_role_namespaces_are_every_namespace_key_the_site_provides():
    """A new site-provided Namespace key in data/site-prerequisites.yaml is a platform role without code changes."""
    raw, _ = _example("prod")
    raw["components"]["serving"]["modelStaging"] = {"mirror": {"service": "hub", "namespace": "hub", "port": 80}}
    config = StackConfig.model_validate({k: v for k, v in raw.items() if k != "ngcApiKey"})
    found = dict(platform_role_namespaces(config))
    assert found == {P + "components.tenancy.gatewayNamespace": "ncp-gateway",
                     P + "components.tenancy.monitoringNamespace": "ncp-observability",
                     P + "components.serving.modelStaging.mirror.namespace": "hub",
                     P + "components.serving.plannerPrometheusUrl": "ncp-observability"}


REFS = ("main", "Main", " MAIN ", "refs/heads/main", "refs/tags/v1.0", "v1.0", "release-2024", "origin/main",
        "9216db5", "9216DB5781BF21249D130EC9DA846C4624C16137")


@pytest.mark.parametrize("base", ["lab", "prod"])
@pytest.mark.parametrize("ref", REFS)
def test_a_model_revision_that_is_a_ref_is_refused(base, ref):
    raw, secrets = BASES[base]()
    text = _refused(mutate(raw, "endpoints[0].model.revision", ref), secrets, "endpoints[0].model.revision")
    assert "commit hash" in text and "moves" in text
    if raw.get("inferenceServices"):
        _refused(mutate(raw, "inferenceServices[0].artifact.revision", ref), secrets,
                 "inferenceServices[0].artifact.revision")


def test_sources_without_a_commit_form_refuse_refs_in_any_spelling():
    """Staging takes only hf:// today (ncp/plan/rules/endpoints.py refuses other schemes); a source without a known
    revision form still refuses a branch or tag name however it is spelled."""
    assert revision_problem("ngc://nvidia/qwen3-8b", "1.0.3") is None
    for ref in ("LATEST", " main ", "refs/tags/1.0", "origin/main", "stable", "heads/dev"):
        assert revision_problem("ngc://nvidia/qwen3-8b", ref), ref


def _annotations(annotation) -> typing.Iterator:
    """Every type and metadata item inside an annotation (Optional, list, dict, Annotated, Union)."""
    yield annotation
    for arg in typing.get_args(annotation):
        yield from _annotations(arg)
        yield from getattr(arg, "metadata", ())


def _models(model: type[BaseModel], seen: set) -> typing.Iterator[type[BaseModel]]:
    if model in seen:
        return
    seen.add(model)
    yield model
    for field in model.model_fields.values():
        for item in _annotations(field.annotation):
            if isinstance(item, type) and issubclass(item, BaseModel):
                yield from _models(item, seen)


# String fields that are not free text: selectors may be empty (every pod); a count or percentage checked by the
# profile's policy it overrides.
NOT_FREE_TEXT = {("WaitForCompletion", "pod_selector"), ("DriverDrain", "pod_selector"),
                 ("DriverUpgradePolicyOverride", "max_unavailable")}


def _guarded(model: type[BaseModel], name: str) -> bool:
    """Text, a pattern, a validator of the type, or a field validator of the model guards the field's strings."""
    field = model.model_fields[name]
    items = [*_annotations(field.annotation), *field.metadata]
    return (any(item is Text or getattr(item, "pattern", None) or isinstance(item, AfterValidator) for item in items)
            or any(name in validator.info.fields
                   for validator in model.__pydantic_decorators__.field_validators.values()))


def test_every_free_text_field_of_the_schema_is_text():
    """Found by type, not by a list of names: a new string field that is neither Text nor guarded fails here."""
    unguarded = [f"{model.__name__}.{name}" for model in _models(StackConfig, set())
                 for name, field in model.model_fields.items()
                 if any(item is str for item in _annotations(field.annotation))
                 and (model.__name__, name) not in NOT_FREE_TEXT and not _guarded(model, name)]
    assert unguarded == [], f"string fields that accept blank text: {unguarded}"


def _string_leaves(value, loc=()):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _string_leaves(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _string_leaves(item, (*loc, index))
    elif isinstance(value, str):
        yield loc


def _path(loc) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")


@pytest.mark.parametrize("base", ["lab", "prod"])
@pytest.mark.parametrize("blank", ["", "   ", "\t\n"])
def test_every_string_the_examples_set_is_refused_blank(base, blank):
    """Owners, decisions, reasons, paths, names: every string value of the example, blanked, is refused and named."""
    raw, secrets = BASES[base]()
    leaves = [loc for loc in _string_leaves(raw) if loc[0] != "ngcApiKey"]
    assert len(leaves) >= 30
    for loc in leaves:
        path = _path(loc)
        try:
            _plan(mutate(raw, path, blank), secrets)
        except ConfigError as error:
            paths = [problem.path for problem in error.problems]
        else:
            pytest.fail(f"{path} blanked ({blank!r}) was accepted")
        # The value's own key, or the list or mapping holding it where the check is on the whole collection.
        assert any(p == P + path or (P + path).startswith((p + ".", p + "[")) for p in paths), \
            f"{path} blanked: {paths}"


@pytest.mark.parametrize("base", ["lab-prod", "prod"])
def test_prod_break_fix_in_dry_run_needs_a_recorded_decision(base):
    raw, secrets = BASES[base]()
    dry = mutate(raw, "components.health.remediation", "dry-run")
    text = _refused(dry, secrets, "components.health.remediation")
    assert "localDecision" in text and "pulumi config rm" in text
    _plan(mutate(dry, "components.health.localDecision",
                 {"decision": "Remediation stays dry-run for the first two weeks in service",
                  "reason": "The site's out-of-band reboot automation is still being certified."}), secrets)
    _plan(*BASES["lab"]())  # outside prod, dry-run is the default


@pytest.mark.parametrize("base", ["lab-staging", "lab-prod", "prod"])
def test_every_partner_product_kind_needs_a_recorded_decision(base):
    raw, secrets = BASES[base]()

    def without(kind: str) -> dict:
        return {**raw, "localDecisions": [d for d in raw["localDecisions"] if d.get("kind") != kind]}

    storage = raw["components"]["serving"]["storage"]
    for tier, value in storage.items():
        text = _refused(without("storage"), secrets, f"components.serving.storage.{tier}.storageClass")
        assert f"storage class {value['storageClass']}" in text
    renamed = mutate(raw, "components.serving.storage.modelCache.storageClass", "brand-new-class")
    assert "naming brand-new-class" in _refused(renamed, secrets, "components.serving.storage.modelCache.storageClass")
    assert "certManager" in _refused(without("certManager"), secrets, "localDecisions")
    assert "metricsBackend" in _refused(without("metricsBackend"), secrets,
                                        "components.telemetry.prometheusSelectorLabels")
    mirrored = mutate(raw, "components.serving.modelStaging.mirror",
                      {"service": "hf-mirror", "namespace": "model-mirror", "port": 8080})
    assert "kind registry" in _refused(mirrored, secrets, "components.serving.modelStaging.mirror")
    _plan(mutate(mirrored, "localDecisions", raw["localDecisions"] + [
        {"kind": "registry", "decision": "Models from the site's in-cluster mirror",
         "reason": "The site has no route to the model hub."}]), secrets)
    gateway = {**mutate(raw, "components.serving.gatewayInferenceExtension", True)}
    gateway["components"]["serving"].pop("gateway", None)
    assert "kind gateway" in _refused(without("gateway") | {"components": gateway["components"]}, secrets,
                                      "components.serving.gatewayInferenceExtension")


def test_partner_products_are_not_asked_of_a_lab():
    raw, secrets = _example("lab")
    _plan({**raw, "localDecisions": []}, secrets)


@pytest.mark.parametrize("environment", ["staging", "prod"])
def test_rack_scale_nvlink_disaggregated_serving_needs_topology_aware_placement(environment):
    """The rack-scale example (gb300, the one NVLink-domain profile among the examples) in either environment."""
    raw, secrets = _example("gb300")
    raw["site"]["environment"] = environment
    if environment == "prod":
        raw, secrets = _gb300_as_prod(raw, secrets)
    _plan(raw, secrets)
    off = mutate(raw, "components.scheduling.topologyAware", False)
    text = _refused(off, secrets, "components.scheduling.topologyAware")
    assert "rack-scale NVLink" in text and "reasoning-moe" in text.replace("_", "-") or "disaggregated" in text
    _plan(mutate(raw, "components.scheduling.topologyAware", True), secrets)


def _gb300_as_prod(raw: dict, secrets: set) -> tuple[dict, set]:
    raw["tenants"][0]["nodePool"] = {"nodes": 14}  # prod: each tenant on nodes of its own (18 in all)
    raw["tenants"][1]["nodePool"] = {"nodes": 4}
    raw["ngcApiKey"] = {"secure": "v1:example"}
    secrets = secrets | {"ngcApiKey"}
    serving = raw["components"]["serving"]
    serving["imageDigests"] = {"trtllm": DIGEST, "planner": DIGEST, "epp": DIGEST, "vllm": DIGEST, "sglang": DIGEST,
                              "dcgm": DIGEST, "ncclTests": DIGEST}
    serving["apiServerEgress"] = {"cidrs": ["10.0.0.1/32"], "ports": [6443]}
    validation = serving.setdefault("validation", {})
    for key, value in list(validation.items()):
        if key.endswith("Image") and "@" not in value:
            validation[key] = value + "@" + DIGEST
    validation.setdefault("suiteImage", "nvcr.io/site/tools/isv-ncp-validation-suite:0.6.8@" + DIGEST)
    validation.setdefault("storageImage", "nvcr.io/site/tools/fio:3.38@" + DIGEST)  # prod: storage readiness
    validation.setdefault("ncclImage", "nvcr.io/site/tools/nccl-tests:25.06@" + DIGEST)  # prod on RDMA
    raw["components"].setdefault("tenancy", {})["imageSignatures"] = {"publicKeys": [EXAMPLE_SIGNER_KEY]}
    return raw, secrets
