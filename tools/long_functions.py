"""Functions longer than a screen: `python tools/long_functions.py [--max-lines N] [--tests] [--list]`.

Counts every function and method of the project's own Python (virtualenvs and vendored trees excluded; tests only with
--tests) whose body, from the `def` line to its last line, is longer than --max-lines (default 40). Prints the count,
and with --list each function as path:line name (lines). tests/test_code_quality.py holds the committed ceiling.
"""
import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIPPED_DIRS = {".venv", ".venv-scanners", ".venv-twin", "venv", ".git", "__pycache__", "node_modules"}
MAX_LINES = 40


def project_files(root: Path = ROOT, tests: bool = False) -> list[Path]:
    """The project's Python files, in path order."""
    files = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if SKIPPED_DIRS.intersection(parts) or (not tests and parts[0] == "tests"):
            continue
        files.append(path)
    return files


def long_functions(path: Path, max_lines: int = MAX_LINES) -> list[tuple[int, str, int]]:
    """(line, qualified name, length) of every function in `path` longer than `max_lines` lines."""
    found = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    length = (child.end_lineno or child.lineno) - child.lineno + 1
                    if length > max_lines:
                        found.append((child.lineno, name, length))
                visit(child, f"{name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(path.read_text(), str(path)), "")
    return found


def report(root: Path = ROOT, max_lines: int = MAX_LINES, tests: bool = False) -> list[str]:
    """One line per long function: path:line name (length lines)."""
    return [f"{path.relative_to(root)}:{line} {name} ({length} lines)"
            for path in project_files(root, tests) for line, name, length in long_functions(path, max_lines)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-lines", type=int, default=MAX_LINES)
    parser.add_argument("--tests", action="store_true", help="count tests/ too")
    parser.add_argument("--list", action="store_true", help="name each long function")
    options = parser.parse_args()
    lines = report(ROOT, options.max_lines, options.tests)
    if options.list:
        print("\n".join(lines))
    print(f"{len(lines)} functions over {options.max_lines} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
