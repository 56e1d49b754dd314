"""Copies of the project hold the project's files only: what git tracks or would track, never a virtualenv."""
import ast
import subprocess
from pathlib import Path

from tools.project_copy import copy_project

ROOT = Path(__file__).resolve().parents[1]


def _repository(root: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / ".gitignore").write_text("/.venv-twin\n/.venv\n")
    (root / "policy").mkdir()
    (root / "policy" / "PulumiPolicy.yaml").write_text("runtime: python\n")
    subprocess.run(["git", "add", "."], cwd=root, check=True)
    (root / "new_module.py").write_text("# not committed yet\n")
    (root / ".venv-twin" / "lib").mkdir(parents=True)
    (root / ".venv-twin" / "lib" / "wheel-data.parquet").write_bytes(b"\0" * 1024)
    (root / ".venv-twin" / "lib64").symlink_to(root / ".venv-twin" / "lib")
    (root / ".venv").mkdir()
    return root


def test_a_copy_holds_tracked_and_new_files_and_no_ignored_virtualenv(tmp_path):
    root = _repository(tmp_path / "project")
    copy = copy_project(tmp_path / "copy", root=root)
    copied = sorted(str(path.relative_to(copy)) for path in copy.rglob("*") if path.is_file())
    assert copied == [".gitignore", "new_module.py", "policy/PulumiPolicy.yaml"]
    assert (copy / ".venv").resolve() == (root / ".venv").resolve()
    assert (copy / "policy" / "venv").resolve() == (root / ".venv").resolve()


def test_nothing_copies_the_project_tree_by_hand():
    """A hand-kept ignore list drifted from .gitignore and copied the twin's virtualenv into each copy: disk full."""
    offenders = []
    for path in [*ROOT.glob("tests/**/*.py"), *ROOT.glob("tools/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "copytree" and node.args
                    and isinstance(node.args[0], ast.Name) and node.args[0].id == "ROOT"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, f"copy the project with tools.project_copy.copy_project: {offenders}"
