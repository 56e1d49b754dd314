"""No import runs up a layer: the plan imports nothing of the program, components only the plan (and the neutral
component helpers), composition wires components, commands sit on top. Checked on the source with `ast`."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Rank of each first-party top-level package or module: a module may import its own package or one ranked lower.
# Packages of the same rank are independent of each other.
RANKS = {
    "plan": 0, "cli_exit": 0, "cluster_api": 0,  # the validated plan and neutral utilities
    "components": 1, "acceptance": 1, "sizing": 1,  # libraries built on the plan
    "composition": 2,  # wires the plan into the components
    "sync_pins": 3,  # writes the copies of the plan's and components' facts; offline.check runs its drift check
    "__main__": 3,  # the Pulumi program
    "offline": 4,  # runs the program under mocks
    "twin": 4,  # runs the rendered serving graph as local processes (reads the plan only)
    "evidence": 5, "lifecycle": 5, "preflight": 5, "ratrace": 5, "scaffold": 5,
    "report": 6,  # the release review reads evidence and traceability
    "fleet": 6,  # every site of the repository checked (offline, evidence) and upgraded in waves
    "bench": 7,  # measures the commands above
}
# Inside components/, a component imports only these helper modules of its siblings, never another component's names.
SHARED_COMPONENT_MODULES = {"components.kube", "components.network_policy", "components.dashboards"}


def _top(module: str) -> str:
    return module.split(".")[0]


def _imports(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
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
    for package in RANKS:
        if (ROOT / package).is_dir():
            files += sorted((ROOT / package).rglob("*.py"))
    return files


def test_every_package_has_a_rank():
    """A new top-level package must be placed in the order before it can import or be imported."""
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()} | {p.stem for p in ROOT.glob("*.py")}
    assert packages - {"tests"} - set(RANKS) == set()


def test_no_import_runs_up_a_layer():
    found = [v for path in program_files() for v in violations(path, _module_name(path))]
    assert found == []


@pytest.mark.parametrize("module, source, expected", [
    ("plan.bad", "from acceptance.thresholds import AcceptanceThresholds\n", "plan.bad (rank 0) imports acceptance"),
    ("plan.bad", "import components.kube\n", "plan.bad (rank 0) imports components.kube (rank 1)"),
    ("components.bad", "from composition import compose\n", "imports composition (rank 2)"),
    ("components.bad", "from sizing.model import load_sizing\n", "imports sizing.model (rank 1)"),
    ("components.serving.bad", "from components.model_data import MODELS_MOUNT\n", "another component's module"),
])
def test_checker_reports_an_injected_upward_import(tmp_path, module, source, expected):
    bad = tmp_path / "bad.py"
    bad.write_text(source)
    (found,) = violations(bad, module)
    assert expected in found


@pytest.mark.parametrize("module, source", [
    ("components.health", "from plan.site_plan import SitePlan\nfrom components.kube import Layer\n"),
    ("components.serving.graph", "from components.serving.args import EndpointArgs\n"),
    ("composition", "from components.health import Health\nfrom acceptance.aiperf_args import aiperf_command\n"),
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
    assert raw_config_reads((ROOT / "composition.py").read_text()) == []


def test_raw_config_check_finds_a_read():
    assert raw_config_reads("def f(plan):\n    return plan.config.components.skip_await\n") == [2]
