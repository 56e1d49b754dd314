"""No import runs up a layer: the plan imports nothing of the program, components only the plan (and the neutral
component helpers), composition wires components, commands sit on top. Checked on the source with `ast`."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Rank of each first-party unit (a subpackage or module of `ncp`, or a top-level package or module): a module may
# import its own unit or one ranked lower. Units of the same rank are independent of each other.
RANKS = {
    "ncp.cli_exit": -1,  # the exit codes and the exception hierarchy every layer raises into
    "ncp.plan": 0, "ncp.cluster_api": 0, "ncp.engine_bin": 0,  # the validated plan and neutral utilities
    "components": 1, "ncp.acceptance": 1, "ncp.sizing": 1,  # libraries built on the plan
    "ncp.config_reference": 1,  # the config reference (docs/config-reference.md), generated from the plan's schema
    "ncp.composition": 2,  # wires the plan into the components
    "ncp.sync_pins": 3,  # writes the copies of the plan's and components' facts; ncp check runs its drift check
    "__main__": 3,  # the Pulumi program
    "ncp.readmodel": 3,  # runs the program under mocks and records what it registers (the tools read it)
    "ncp.offline": 4,  # the offline commands: check, diff, the pack's evaluation, the site CI
    "ncp.twin": 4,  # runs the rendered serving graph as local processes (reads the plan only)
    "ncp.evidence": 5, "ncp.lifecycle": 5, "ncp.preflight": 5, "ncp.ratrace": 5, "ncp.scaffold": 5,
    "ncp.report": 6,  # the release review reads evidence and traceability
    "ncp.fleet": 6,  # every site of the repository checked (offline, evidence) and upgraded in waves
    "tools": 7,  # benchmarks and maintainers' checks measure the commands above
    "ncp.cli": 7,  # the one entrance routes to every command
    "ncp.__main__": 8, "ncp": 8,
}
# Inside ncp.plan (#21 item 3), each module belongs to one part, ranked like the units: a module imports its own part or
# a lower one. The inputs: schema, data catalog, errors, the local overlay (nothing loaded at import); the derivation:
# what the plan computes from valid inputs (it builds no Problem); the rules: every validation (ncp/plan/rules); the
# assembly: reading a stack and its base, running the rules, then deriving the SitePlan and what is computed over it.
PLAN_PARTS = {"inputs": 0, "derivation": 1, "rules": 2, "assembly": 3}
PLAN_MODULES = {
    "inputs": ("errors", "names", "strict", "catalog", "pod_security", "profile", "config", "serving",
               "inference_service_config", "thresholds", "behaviour_thresholds", "sizing_file", "local_overlay"),
    "derivation": ("admission", "aiperf_args", "break_fix", "capacity", "endpoint_plan", "endpoints", "fabric",
                   "gateway", "gpu_partition", "inference_services", "layers", "serving_features", "sizing_bridge",
                   "tenancy", "tenant_pods"),
    "rules": ("rules",),
    "assembly": ("site_base", "site_plan", "sources", "evidence_key", "readiness", "record", "wired"),
}
# Inside components/, a component imports only these helper modules of its siblings, never another component's names.
SHARED_COMPONENT_MODULES = {"components.kube", "components.network_policy", "components.dashboards"}


def _top(module: str) -> str:
    """The unit a module belongs to: ncp.plan.config -> ncp.plan; components.health -> components."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "ncp" and len(parts) > 1 else parts[0]


def _imports(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "ncp":
            for alias in node.names:  # `from ncp import cluster_api` imports the unit ncp.cluster_api
                yield node.lineno, f"ncp.{alias.name}"
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def _component_of(module: str) -> str:
    """components.serving.graph -> components.serving; components.health -> components.health."""
    return ".".join(module.split(".")[:2])


def violations(path: Path, module: str) -> list[str]:
    """Imports in `path` (the module named `module`) that run up a layer or across components."""
    found = []
    own = _top(module)
    for line, imported in _imports(ast.parse(path.read_text(), str(path))):
        target = _top(imported)
        if target not in RANKS or target == own:
            if own == target == "components" and _component_of(imported) != _component_of(module) \
                    and imported not in SHARED_COMPONENT_MODULES:
                found.append(f"{path}:{line}: {module} imports {imported}, another component's module")
            continue
        if RANKS[target] >= RANKS[own]:
            found.append(f"{path}:{line}: {module} (rank {RANKS[own]}) imports {imported} (rank {RANKS[target]})")
    return found


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def program_files() -> list[Path]:
    files = [p for p in ROOT.glob("*.py")]
    for directory in ("ncp", "components", "tools"):
        files += sorted((ROOT / directory).rglob("*.py"))
    return files


def _units() -> set[str]:
    top = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()} | {p.stem for p in ROOT.glob("*.py")}
    inside = {f"ncp.{p.name}" for p in (ROOT / "ncp").iterdir() if (p / "__init__.py").is_file()} \
        | {f"ncp.{p.stem}" for p in (ROOT / "ncp").glob("*.py") if p.stem != "__init__"}
    return top | inside | {"tools"}


def test_every_unit_has_a_rank():
    """A new package or module must be placed in the order before it can import or be imported."""
    assert _units() - {"tests"} - set(RANKS) == set()


def plan_part(module: str) -> str:
    """ncp.plan.rules.site -> rules; ncp.plan.config -> inputs (the part of a module of ncp.plan)."""
    name = module.split(".")[2]
    return next(part for part, modules in PLAN_MODULES.items() if name in modules)


def plan_violations(path: Path, module: str) -> list[str]:
    """Imports in a module of ncp.plan that run up from its part (inputs < derivation < rules < assembly)."""
    own = PLAN_PARTS[plan_part(module)]
    tree = ast.parse(path.read_text(), str(path))
    imports = list(_imports(tree)) + [  # `from ncp.plan import catalog` imports the module ncp.plan.catalog
        (node.lineno, f"ncp.plan.{alias.name}") for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "ncp.plan" for alias in node.names]
    return [f"{path}:{line}: {module} ({plan_part(module)}) imports {imported} ({plan_part(imported)})"
            for line, imported in imports
            if imported.startswith("ncp.plan.") and PLAN_PARTS[plan_part(imported)] > own]


def test_every_plan_module_has_a_part():
    names = {path.relative_to(ROOT / "ncp" / "plan").parts[0].removesuffix(".py")
             for path in (ROOT / "ncp" / "plan").iterdir() if path.suffix == ".py" or path.is_dir()} - {"__init__",
                                                                                                      "__pycache__"}
    placed = [name for modules in PLAN_MODULES.values() for name in modules]
    assert len(placed) == len(set(placed)) and names == set(placed), names ^ set(placed)


def test_no_import_runs_up_the_plan():
    found = [v for path in sorted((ROOT / "ncp" / "plan").rglob("*.py")) if path.stem != "__init__" or
             path.parent.name != "plan" for v in plan_violations(path, _module_name(path))]
    assert found == []


def test_plan_checker_reports_a_derivation_importing_the_rules(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from ncp.plan.rules import RULES\nfrom ncp.plan.config import StackConfig\n"
                   "from ncp.plan import site_plan\n")
    assert plan_violations(bad, "ncp.plan.endpoints") == [
        f"{bad}:1: ncp.plan.endpoints (derivation) imports ncp.plan.rules (rules)",
        f"{bad}:3: ncp.plan.endpoints (derivation) imports ncp.plan.site_plan (assembly)"]


def test_no_import_runs_up_a_layer():
    found = [v for path in program_files() for v in violations(path, _module_name(path))]
    assert found == []


@pytest.mark.parametrize("module, source, expected", [
    ("ncp.plan.bad", "from ncp.acceptance.thresholds import AcceptanceThresholds\n",
     "ncp.plan.bad (rank 0) imports ncp.acceptance"),
    ("ncp.plan.bad", "import components.kube\n", "ncp.plan.bad (rank 0) imports components.kube (rank 1)"),
    ("components.bad", "from ncp.composition import compose\n", "imports ncp.composition (rank 2)"),
    ("components.bad", "from ncp.sizing.model import load_sizing\n", "imports ncp.sizing.model (rank 1)"),
    ("components.serving.bad", "from components.model_data import MODELS_MOUNT\n", "another component's module"),
])
def test_checker_reports_an_injected_upward_import(tmp_path, module, source, expected):
    bad = tmp_path / "bad.py"
    bad.write_text(source)
    (found,) = violations(bad, module)
    assert expected in found


def test_checker_sees_a_unit_imported_from_the_package(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from ncp import composition\n")
    (found,) = violations(bad, "ncp.plan.bad")
    assert "imports ncp.composition (rank 2)" in found


@pytest.mark.parametrize("module, source", [
    ("components.health", "from ncp.plan.site_plan import SitePlan\nfrom components.kube import Layer\n"),
    ("components.serving.graph", "from components.serving.args import EndpointArgs\n"),
    ("ncp.composition",
     "from components.health import Health\nfrom ncp.acceptance.check import EXPORT_NAME\n"),
])
def test_checker_accepts_imports_down_the_layers(tmp_path, module, source):
    good = tmp_path / "good.py"
    good.write_text(source)
    assert violations(good, module) == []


def raw_config_reads(source: str) -> list[int]:
    """Lines where `<name>.config` is read: the plan resolves config; composition takes the plan's objects."""
    return [node.lineno for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Attribute) and node.attr == "config" and isinstance(node.value, ast.Name)]


def test_composition_reads_no_raw_config():
    for module in sorted((ROOT / "ncp" / "composition").glob("*.py")):
        assert raw_config_reads(module.read_text()) == [], module


def test_every_layer_comes_after_the_layers_it_wires_to():
    from ncp.composition import LAYERS, Layer, order_problems
    assert order_problems() == []
    swapped = (LAYERS[1], LAYERS[0], *LAYERS[2:])
    assert order_problems(swapped) == ["network comes after baseline, which is listed later or not at all"]
    unknown = (*LAYERS, Layer("x", (), ("nowhere",), "", lambda w: None))
    assert order_problems(unknown) == ["x comes after nowhere, which is listed later or not at all"]


def test_every_chart_of_the_matrix_is_installed_by_one_layer():
    from ncp.composition import LAYERS
    from ncp.plan.catalog import load_matrix
    owners = [chart for layer in LAYERS for chart in layer.charts]
    assert sorted(owners) == sorted(load_matrix().components) and len(owners) == len(set(owners))


def test_raw_config_check_finds_a_read():
    assert raw_config_reads("def f(plan):\n    return plan.config.components.skip_await\n") == [2]


# The plan's data catalog: composition may read the loaded data files (signals, runtime facts, network access).
PLAN_DATA_MODULES = {"ncp.plan.catalog"}


def _plan_methods() -> set[str]:
    """Public methods the plan objects define themselves (derivations with arguments, not resolved properties)."""
    from ncp.plan.endpoint_plan import EndpointPlan
    from ncp.plan.inference_services import InferenceServicePlan
    from ncp.plan.serving import ServingSettings
    from ncp.plan.site_plan import SitePlan
    from ncp.plan.wired import WiredPlan
    return {name for cls in (SitePlan, EndpointPlan, InferenceServicePlan, ServingSettings, WiredPlan)
            for name, value in vars(cls).items()
            if not name.startswith("_") and (isinstance(value, (staticmethod, classmethod)) or callable(value))}


def plan_derivations(source: str) -> list[str]:
    """Calls in a composition module that derive a fact from the plan instead of reading it: a function imported
    from the plan or from the acceptance library (ncp.plan.catalog's data loaders aside), or a method a plan object
    defines (plan.placement(tenant), endpoint.acceptance_thresholds(), ...)."""
    import importlib
    tree, methods = ast.parse(source), _plan_methods()
    derived: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(("ncp.plan", "ncp.acceptance")) \
                and node.module not in PLAN_DATA_MODULES:
            module = importlib.import_module(node.module)
            for alias in node.names:
                value = getattr(module, alias.name)
                if callable(value) and not isinstance(value, type):
                    derived[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Name) and node.func.id in derived:
            found.append(f"line {node.lineno}: {derived[node.func.id]}()")
        elif isinstance(node.func, ast.Attribute) and node.func.attr in methods:
            found.append(f"line {node.lineno}: .{node.func.attr}()")
    return found


def test_composition_reads_finished_facts():
    """Composition only wires: what a component gets is derived in the plan (ncp/plan/wired.py WiredPlan, the
    plan objects' properties), never by calling back into the plan while wiring."""
    found = {module.name: plan_derivations(module.read_text())
             for module in sorted((ROOT / "ncp" / "composition").glob("*.py"))}
    assert {name: calls for name, calls in found.items() if calls} == {}


def test_plan_derivation_check_finds_a_call():
    source = ("from ncp.plan.record import baseline_record\nfrom ncp.plan.catalog import load_signals\n"
              "def wire(w):\n    load_signals()\n    baseline_record(w.plan)\n    return w.plan.placement('a')\n")
    assert plan_derivations(source) == ["line 5: ncp.plan.record.baseline_record()", "line 6: .placement()"]
