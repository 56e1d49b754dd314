"""Config rules as data (ncp/plan/rules, #21 item 3): every rule has an id, the key it judges, a fix, the policy it
mirrors and its RA sentence; every rule refuses a fixture made for it and accepts its passing counterpart; no Problem
is built outside the rules except by the readers of input documents, which stamp a declared rule's id."""
import ast
import copy
import re
from pathlib import Path

import pytest

from ncp.plan.catalog import load_matrix
from ncp.plan.errors import ConfigError, Problem
from ncp.plan.local_overlay import merged
from ncp.plan.rules import RULE_BY_ID, RULES, RawInputs, run_rules
from ncp.plan.site_base import layer_site
from ncp.plan.site_plan import _parsed, build_plan
from ncp.plan.sources import read_stack_file
from tests.support.synthetic import mutate, secret_keys, site_config

ROOT = Path(__file__).resolve().parent.parent
RULES_PACKAGE = ROOT / "ncp" / "plan" / "rules"
# The readers of input documents: nothing can run on a document before it parses, so they refuse it themselves and
# stamp the id of a declared `input` rule (each listed in ncp/plan/rules with the reader as its check).
INPUT_READERS = {"sources.py", "site_base.py", "local_overlay.py", "catalog.py", "layers.py", "errors.py"}
DROP = object()


def _stack(name: str) -> tuple[dict, set]:
    raw, secrets = read_stack_file(name)
    return copy.deepcopy(raw), secrets


def _synthetic(profile: str, environment: str = "lab") -> tuple[dict, set]:
    config = site_config(profile, environment)
    return config, secret_keys(config)


BASES = {"prod": lambda: _stack("prod"), "gb300": lambda: _stack("gb300"), "vision": lambda: _stack("vision"),
         "lab": lambda: _synthetic("lab")}


def _changed(config: dict, changes: dict) -> dict:
    for path, value in changes.items():
        if value is DROP:
            parent, _, key = path.rpartition(".")
            config = mutate(config, path, None)
            target = config
            for part in parent.replace("[", ".[").split(".") if parent else []:
                target = target[int(part[1:-1])] if part.startswith("[") else target[part]
            target.pop(key)
        else:
            config = mutate(config, path, value)
    return config


VISION_SERVICE = BASES["vision"]()[0]["inferenceServices"][0]
# rule id -> (base, {config path: value}): a fixture each rule refuses. Its passing counterpart is the base, which
# every rule accepts (test_every_rule_accepts_its_base).
CASES = {
    "raw.placeholder": ("lab", {"site.name": "REPLACE-ME(the site's name)"}),
    "raw.exact-number": ("lab", {"tenants[0].gpuQuota": 2 ** 60}),
    "raw.secret-in-plain-text": ("prod", {"__secrets__": set()}),
    "local.test-cluster-settings": ("prod", {"components.skipAwait": True}),
    "site.known-profile": ("lab", {"site.hardwareProfile": "dgx-a100"}),
    "site.kubernetes-version": ("lab", {"site.kubernetesVersion": "1.29"}),
    "site.mig-layout": ("lab", {"components.gpuOperator.mig": {"layout": {"1g.10gb": 7}}}),
    "site.driver": ("prod", {"components.gpuOperator.driver": "preinstalled",
                             "components.gpuOperator.driverUpgradePolicy": {"maxParallelUpgrades": 2}}),
    "site.rails": ("lab", {"components.networkOperator.railInterfaces": ["eth1"]}),
    "site.topology-rack-label": ("lab", {"components.scheduling.topologyAware": True}),
    "site.gpu-capacity": ("lab", {"tenants[0].gpuLimit": 9}),
    "tenancy.dedicated-nodes": ("prod", {"tenants[0].nodePool": DROP}),
    "tenancy.excepted-tenant-nodes": ("prod", {"tenants[1].nodePool": DROP}),
    "telemetry.retention-tier": ("prod", {"components.serving.storage.telemetryRetention":
                                          {"storageClass": "vast-metrics", "size": "1Ti"}}),
    "prod.ngc-api-key": ("prod", {"ngcApiKey": DROP}),
    "prod.storage-readiness-image": ("prod", {"components.serving.validation.storageImage": DROP}),
    "prod.pull-credentials": ("prod", {"components.tenancy.pullCredentials": "sharedKey"}),
    "endpoints.storage": ("prod", {"components.serving.storage": DROP}),
    "endpoints.benchmark-image": ("prod", {"components.serving.validation.benchmarkImage": DROP}),
    "prod.validation-suite-image": ("prod", {"components.serving.validation.suiteImage": DROP}),
    "prod.tool-image-digest": ("prod", {"components.serving.validation.benchmarkImage":
                                        "nvcr.io/ncp-east-1/ncp-tools/aiperf:0.8.0"}),
    "endpoints.known-tenant": ("prod", {"endpoints[0].tenant": "nobody"}),
    "endpoints.model-class": ("prod", {"endpoints[0].model.class": "speech"}),
    "endpoints.backend-disposition": ("prod", {"endpoints[1].backend": "vllm"}),
    "endpoints.model-source": ("prod", {"endpoints[0].model.source": "s3://models/qwen"}),
    "prod.serving-image-digest": ("prod", {"components.serving.imageDigests.trtllm": DROP}),
    "prod.gate-image-digest": ("prod", {"components.serving.imageDigests.dcgm": DROP}),
    "prod.nccl-image": ("prod", {"components.serving.validation.ncclImage":
                                 "nvcr.io/ncp-east-1/ncp-tools/nccl-tests:25.06"}),
    "prod.image-signatures": ("prod", {"components.tenancy.imageSignatures": DROP}),
    "endpoints.sizing-file": ("prod", {"endpoints[0].sizing": "sites/prod/sizing/missing.yaml"}),
    "endpoints.planner-bounds": ("prod", {"endpoints[1].planner.adjustmentIntervalSeconds": 1}),
    "endpoints.kv-offload": ("prod", {"components.serving.storage.kvOffload": DROP, "endpoints[0].kvOffload": True}),
    "endpoints.planner-prometheus": ("prod", {"components.serving.plannerPrometheusUrl": DROP}),
    "prod.api-server-egress": ("prod", {"components.serving.apiServerEgress": DROP}),
    "tenancy.endpoints-within-quota": ("prod", {"tenants[0].gpuQuota": 1}),
    "services.site-settings": ("vision", {"components.serving.imageDigests.tritonserver": DROP}),
    "services.known-tenant": ("vision", {"inferenceServices[0].tenant": "nobody"}),
    "services.name-clash": ("prod", {"inferenceServices": [{**VISION_SERVICE, "name": "chat-dense",
                                                             "tenant": "acme-chat"}]}),
    "services.artifact-source": ("vision", {"inferenceServices[0].artifact.source": "s3://models/resnet"}),
    "prod.example-artifact": ("vision", {"inferenceServices[0].artifact.sha256": "EXAMPLE(the file's sha256)"}),
    "services.engine-gpu": ("vision", {"inferenceServices[0].engine.gpuProduct": "NVIDIA-B200"}),
    "services.thresholds": ("vision", {"inferenceServices[0].preprocessing": DROP}),
    "tenancy.services-within-quota": ("vision", {"inferenceServices[0].replicas": 40}),
    "tenancy.quota-admission": ("prod", {"tenants[0].cpuQuota": "1"}),
    "gateway.site-settings": ("prod", {"components.serving.gatewayInferenceExtension": False}),
    "gateway.routes": ("prod", {"components.serving.gateway.routes[0].backends[0].weight": 50}),
    "gateway.coverage": ("prod", {"components.serving.gateway.routes[1].backends[0].endpoint": "chat-dense",
                                  "components.serving.gateway.routes[1].tenant": "acme-chat"}),
    "pack.validation-evidence": ("prod", {"site.validationEvidence": DROP}),
    "pack.tool-images": ("prod", {"components.serving.validation.benchmarkImage": "docker.io/someone/aiperf:latest"}),
    "pack.validation-suite": ("prod", {"components.serving.validation.suite": False}),
    "pack.time-slicing": ("prod", {"components.gpuOperator.timeSlicing": {"replicas": 2}}),
    "ra.platform-role-namespace": ("prod", {"components.tenancy.gatewayNamespace": "tenant-acme-chat"}),
    "ra.break-fix-dry-run": ("prod", {"components.health.remediation": "dry-run"}),
    "ra.partner-product-decision": ("prod", {"localDecisions": []}),
    "ra.rack-scale-topology": ("gb300", {"components.scheduling.topologyAware": False}),
    "local.chart-mirror-contents": ("lab", {"components.chartMirror": "docs"}),
}
# Rules no shipped or synthetic base reaches with one change, each proven by the module named (a fixture of its own).
PROVEN_ELSEWHERE = {
    "endpoints.nvlink-domain": ("tests/test_serving_completeness.py", "GPUs per worker worker; one NVLink domain"),
    "endpoints.mig-slice-fit": ("tests/test_serving_completeness.py", "cannot be checked against MIG slice"),
    "pack.disaggregation-fabric": ("tests/test_cross_field.py", "def test_disaggregation_fabric"),
    "endpoints.multi-node-fabric": ("tests/test_config_rules.py", "def test_a_wide_worker_needs_a_fabric"),
    "endpoints.attention-data-parallel": ("tests/test_config_rules.py", "def test_attention_data_parallel_needs"),
}


def _fixture(rule_id: str) -> tuple[dict, set]:
    base, changes = CASES[rule_id]
    raw, secrets = BASES[base]()
    changes = dict(changes)
    secrets = changes.pop("__secrets__", secrets)
    return _changed(raw, changes), secrets


def _rule_ids(raw: dict, secrets: set) -> set[str]:
    with pytest.raises(ConfigError) as error:
        build_plan(raw, secrets, "Pulumi.test.yaml")
    assert all(problem.rule for problem in error.value.problems), error.value
    return {problem.rule for problem in error.value.problems}


def test_rule_ids_are_unique_dotted_and_documented():
    ids = [rule.id for rule in RULES]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    for rule in RULES:
        assert re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)*", rule.id), rule.id
        assert rule.path and rule.refuses and rule.fix and callable(rule.check), rule.id


def test_every_mirrored_policy_is_a_policy_of_the_pack(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "policy"))
    from ncp_guardrails import POLICIES
    names = {policy.name for policy in POLICIES}
    mirrored = {rule.policy for rule in RULES if rule.policy}
    assert mirrored - names == set()
    assert len(mirrored) >= 10  # most of the pack's policies have a config rule in front of them


def test_every_ra_reference_quotes_a_sentence_the_code_carries():
    """A rule's RA reference is one the traceability scan reads: the same `# RA: Section: "sentence"` comment sits
    beside its check in ncp/plan."""
    comments = {line.split("# RA: ", 1)[1].strip() for path in (ROOT / "ncp" / "plan").rglob("*.py")
                for line in path.read_text().splitlines() if "# RA: " in line}
    assert {rule.ra for rule in RULES if rule.ra} - comments == set()


def test_every_rule_has_a_fixture_or_names_the_test_that_proves_it():
    runnable = {rule.id for rule in RULES if rule.stage != "input"}
    assert runnable == set(CASES) | set(PROVEN_ELSEWHERE), runnable ^ (set(CASES) | set(PROVEN_ELSEWHERE))
    for rule_id, (test_file, found) in PROVEN_ELSEWHERE.items():
        assert found in (ROOT / test_file).read_text(), (rule_id, test_file, found)


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_each_rule_refuses_its_fixture(rule_id):
    assert rule_id in _rule_ids(*_fixture(rule_id))


@pytest.mark.parametrize("base", sorted(BASES))
def test_every_rule_accepts_its_base(base):
    """The passing counterpart of every fixture: its base, which each rule (run on its own) accepts."""
    raw, secrets = BASES[base]()
    build_plan(raw, secrets, "Pulumi.test.yaml")
    layered = layer_site(raw, "Pulumi.test.yaml", load_matrix())
    inputs, raw_problems = _parsed(RawInputs(merged(layered.raw, None), secrets, None, layered.raw),
                                   "Pulumi.test.yaml", layered)
    assert raw_problems == []
    for stage in ("raw", "config"):
        found = {rule.id: rule.run(inputs) for rule in RULES if rule.stage == stage}
        assert {rule_id: problems for rule_id, problems in found.items() if problems} == {}
    assert run_rules("config", inputs) == []


def test_a_rule_that_stops_checking_is_caught():
    """The fixture test fails when a rule's check no longer refuses: a rule table whose check finds nothing."""
    rule = RULE_BY_ID["site.kubernetes-version"]
    raw, secrets = _fixture(rule.id)
    layered = layer_site(raw, "Pulumi.test.yaml", load_matrix())
    inputs, _ = _parsed(RawInputs(layered.raw, secrets, None, layered.raw), "Pulumi.test.yaml", layered)
    assert rule.run(inputs) and all(p.rule == rule.id for p in rule.run(inputs))
    silent = type(rule)(**{**rule.__dict__, "check": lambda _: []})
    assert run_rules("config", inputs, [silent]) == []


def _problem_calls(path: Path) -> list[ast.Call]:
    return [node for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == Problem.__name__]


def test_no_problem_is_built_outside_the_rules_but_by_the_input_readers():
    plan = ROOT / "ncp" / "plan"
    outside = {path.relative_to(plan).as_posix(): _problem_calls(path) for path in plan.rglob("*.py")
               if RULES_PACKAGE not in path.parents}
    builders = {name for name, calls in outside.items() if calls}
    assert builders <= INPUT_READERS, builders - INPUT_READERS
    input_rules = {rule.id for rule in RULES if rule.stage == "input"}
    for name in builders:
        for call in outside[name]:
            stamped = next((k.value for k in call.keywords if k.arg == "rule"), None)
            assert stamped is not None, f"ncp/plan/{name}:{call.lineno} builds a Problem without a rule id"
            if isinstance(stamped, ast.Constant):
                assert stamped.value in input_rules, f"ncp/plan/{name}:{call.lineno}: {stamped.value}"


def test_the_problem_check_finds_a_problem_built_outside(tmp_path):
    stray = tmp_path / "derive.py"
    stray.write_text('from ncp.plan.errors import Problem\nProblem("k", "is wrong", "set_command(k)")\n')
    assert [call.lineno for call in _problem_calls(stray)] == [2]


def test_the_error_output_names_the_rule():
    raw, secrets = _fixture("site.kubernetes-version")
    with pytest.raises(ConfigError) as error:
        build_plan(raw, secrets, "Pulumi.test.yaml")
    assert "ncp-inference:site.kubernetesVersion: 1.29 is not in the compatibility matrix" in str(error.value)
    assert "\n      rule: site.kubernetes-version" in str(error.value)


def _sized_as(monkeypatch, **changes) -> None:
    """The endpoints' layouts as the prod example's chat-dense sizing file, with the worker group changed."""
    from ncp.plan import endpoints as endpoints_module
    from ncp.plan.endpoint_plan import WorkerGroup
    from ncp.plan.sizing_bridge import Layout
    from ncp.plan.sizing_file import load_sizing
    result = load_sizing(ROOT / "sites" / "prod" / "sizing" / "chat-dense.yaml")
    workers = [WorkerGroup(role=role, **group.model_dump()).model_copy(update=changes)
               for role, group in result.groups().items()]
    monkeypatch.setattr(endpoints_module, "read_layout", lambda path, endpoint, profile: Layout(
        mode=result.mode, workers=workers, estimate=result.estimate_summary()))


def _lab_serving() -> tuple[dict, set]:
    from tests.test_cross_field import _serving
    config = _serving(site_config("lab", "lab", tenants=1, gpu_nodes=2), "lab")
    return config, secret_keys(config)


def test_a_wide_worker_needs_a_fabric(monkeypatch):
    """endpoints.multi-node-fabric: a worker of 16 GPUs on the lab profile (no RDMA, no multi-node NVLink)."""
    raw, secrets = _lab_serving()
    _sized_as(monkeypatch, gpus_per_worker=1)
    assert "endpoints.multi-node-fabric" not in _rule_ids(raw, secrets)
    _sized_as(monkeypatch, gpus_per_worker=16)
    assert "endpoints.multi-node-fabric" in _rule_ids(raw, secrets)


def test_attention_data_parallel_needs_the_backend_switch(monkeypatch):
    """endpoints.attention-data-parallel: data-parallel ranks on a backend with no recorded switch for them."""
    from ncp.plan.catalog import load_dynamo_runtime
    without = sorted(name for name, backend in load_dynamo_runtime().backends.items()
                     if not backend.attention_data_parallel_arg)
    assert without, "every backend records the switch: this rule has nothing left to refuse"
    raw, secrets = _lab_serving()
    raw = mutate(raw, "endpoints[0].backend", without[0])
    _sized_as(monkeypatch, data_parallel=1)
    assert "endpoints.attention-data-parallel" not in _rule_ids(raw, secrets)
    _sized_as(monkeypatch, data_parallel=2)
    assert "endpoints.attention-data-parallel" in _rule_ids(raw, secrets)


def test_the_refuses_list_is_generated_from_the_rules(tmp_path, monkeypatch):
    """docs/config-reference.md lists every rule (id, key, fix, policy, RA) as `ncp config-reference` writes it; a
    rule added or changed without regenerating makes the committed file stale."""
    from ncp import config_reference
    committed = (ROOT / config_reference.REFERENCE).read_text()
    assert config_reference.stale() is None
    for rule in RULES:
        row = next(line for line in committed.splitlines() if line.startswith(f"| `{rule.id}` |"))
        assert rule.refuses.replace("|", "\\|") in row and (rule.policy or "—") in row, row
    changed = (type(RULES[0])(**{**RULES[0].__dict__, "refuses": "something else"}),) + RULES[1:]
    monkeypatch.setattr(config_reference, "RULES", changed)
    assert config_reference.stale() is not None


def test_importing_the_plan_reads_no_data_file():
    """Nothing in ncp/plan is loaded at import time (a data file read to build a type would make the schema depend on
    the data at import): every module of the plan imported in a fresh interpreter that refuses file reads (package
    metadata aside: the editable install's egg-info sits in the project where setup.sh ran)."""
    import subprocess
    import sys
    modules = sorted(".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                     for path in (ROOT / "ncp" / "plan").rglob("*.py"))
    script = (
        "import builtins, io, pathlib\n"
        f"PROJECT = {str(ROOT)!r}\n"
        "def refusing(original):\n"
        "    def read(file, *args, **kwargs):\n"
        "        path = str(file)\n"
        "        if path.startswith(PROJECT) and '/.venv' not in path and '.egg-info' not in path:\n"
        "            raise AssertionError(f'read at import: {path}')\n"
        "        return original(file, *args, **kwargs)\n"
        "    return read\n"
        "builtins.open = io.open = refusing(builtins.open)\n"
        "for name in ('read_text', 'read_bytes', 'open'):\n"
        "    setattr(pathlib.Path, name, refusing(getattr(pathlib.Path, name)))\n"
        + "".join(f"import {module}\n" for module in modules)
        + "print('imported', " + str(len(modules)) + ")\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"imported {len(modules)}" in result.stdout


def test_a_raw_problem_does_not_hide_the_config_rules():
    """Every rule runs before anything is refused: a plain-text secret and a Kubernetes version outside the matrix
    are refused together."""
    raw, _ = _fixture("site.kubernetes-version")
    raw["ngcApiKey"] = "plain"
    assert {"raw.secret-in-plain-text", "site.kubernetes-version"} <= _rule_ids(raw, set())
