"""The copies of the compatibility matrix's pins that live outside it, and the command that rewrites them.

    python -m sync_pins           # rewrite every copy from data/compatibility-matrix.yaml
    python -m sync_pins --check   # only list the copies that differ (exit 1 if any)

Two places repeat pins, each because it must stand without the matrix: the policy pack's
`policy/ncp_guardrails/pins.yaml` (the pack is published on its own) and the stand-in charts' `Chart.yaml` under
`tests/e2e/charts` (Helm reads a chart's name and version from its own file). A version bump is an edit to the matrix
followed by this command; tests/test_data_files.py fails, naming the file, the key and the value to write, while a
copy differs. Exit codes: 0 in step (or rewritten), 1 a copy differs (--check), 3 internal error.
"""
import argparse
import sys
from pathlib import Path
from typing import NamedTuple, Optional, Sequence

import yaml

from cli_exit import FAILED_GATE, OK, run_command
from plan.catalog import MATRIX_FILE, ROOT, CompatibilityMatrix, load_matrix

COMMAND = "python -m sync_pins"
PACK_PINS = Path("policy/ncp_guardrails/pins.yaml")
STAND_INS = Path("tests/e2e/charts")
PACK_HEADER = (f"# Chart pins the pack enforces, generated from data/compatibility-matrix.yaml by `{COMMAND}`\n"
               "# (kept here so the pack can be published on its own; tests/test_data_files.py checks it).\n")


class Copy(NamedTuple):
    path: Path  # relative to the project root
    text: str  # what the file must hold
    sources: dict  # flattened key in the copy -> the matrix key it copies


def _pack_pins(matrix: CompatibilityMatrix) -> Copy:
    charts = {name: {"chart": pin.chart, "localDecision": pin.local_decision is not None,
                     "repository": pin.repository, "version": pin.version}
              for name, pin in matrix.components.items()}
    sources = {f"charts.{name}.{field}": f"components.{name}.{field}"
               for name, fields in charts.items() for field in fields}
    return Copy(PACK_PINS, PACK_HEADER + yaml.safe_dump({"charts": charts}, sort_keys=True), sources)


def _stand_in_chart(name: str, matrix: CompatibilityMatrix) -> Copy:
    pin = matrix.components[name]
    text = (f"# Stand-in for {pin.display_name} ({pin.chart}) in end-to-end tests; generated from the matrix by "
            f"`{COMMAND}`.\napiVersion: v2\nname: {pin.chart_name}\nversion: {pin.version}\ntype: application\n")
    return Copy(STAND_INS / pin.chart_name / "Chart.yaml", text,
                {"name": f"components.{name}.chart", "version": f"components.{name}.version"})


def copies(matrix: CompatibilityMatrix) -> list:
    return [_pack_pins(matrix)] + [_stand_in_chart(name, matrix) for name in matrix.components]


def _flat(data, prefix="") -> dict:
    if isinstance(data, dict):
        return {key: value for k, v in data.items() for key, value in _flat(v, f"{prefix}{k}.").items()}
    return {prefix.rstrip("."): data}


def drift(matrix: CompatibilityMatrix, root: Path = ROOT) -> list:
    """One line per key that differs from the matrix: the file, the key, the value to write and where it comes from."""
    matrix_file = MATRIX_FILE.relative_to(ROOT)
    problems = []
    for copy in copies(matrix):
        path = root / copy.path
        if not path.is_file():
            problems.append(f"{copy.path}: missing (run `{COMMAND}` to write it)")
            continue
        expected = _flat(yaml.safe_load(copy.text))
        actual = _flat(yaml.safe_load(path.read_text()) or {})
        for key in sorted(expected.keys() | actual.keys()):
            if key not in expected:
                problems.append(f"{copy.path}: {key} is not in {matrix_file}: remove it (or run `{COMMAND}`)")
            elif actual.get(key) != expected[key]:
                problems.append(f"{copy.path}: {key} is {actual.get(key)!r}, write {expected[key]!r} (it copies "
                                f"{matrix_file} {copy.sources.get(key, key)}; `{COMMAND}` rewrites every copy)")
    return problems


def write(matrix: CompatibilityMatrix, root: Path = ROOT) -> list:
    """Rewrite every copy that differs; returns the paths written."""
    written = []
    for copy in copies(matrix):
        path = root / copy.path
        if not path.is_file() or path.read_text() != copy.text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(copy.text)
            written.append(copy.path)
    return written


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="list the copies that differ; write nothing")
    arguments = parser.parse_args(argv)
    matrix = load_matrix()
    if arguments.check:
        problems = drift(matrix)
        print("\n".join(problems) or "every copy of the matrix's pins is in step")
        return FAILED_GATE if problems else OK
    for path in write(matrix):
        print(f"wrote {path}")
    return OK


if __name__ == "__main__":
    sys.exit(run_command(main))
