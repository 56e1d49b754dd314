"""The copies of the program's facts that live outside their homes, and the command that rewrites them.

    ncp sync-pins           # rewrite every copy from its home
    ncp sync-pins --check   # only list the copies that differ (exit 1 if any)

Some files must stand without the program, so they repeat what it keeps elsewhere: the policy pack (published on its
own) carries the matrix's pins (`policy/ncp_guardrails/pins.yaml`), the allowlists (`allowlists.yaml`, a copy of
data/allowlists.yaml) and the names it shares with the program (`program.yaml`: labels, annotations, resource and
signal names, each line saying its home); the stand-in charts' `Chart.yaml` under `tests/e2e/charts` repeat chart
names and versions (Helm reads them from its own file). A version bump is an edit to the matrix followed by this
command; tests/test_data_files.py fails, naming the copy, the key, the value to write and its home, while a copy
differs. Exit codes: 0 in step (or rewritten), 1 a copy differs (--check), 3 internal error.
"""
import argparse
import importlib
import json
from pathlib import Path
from typing import NamedTuple, Optional, Sequence

import yaml

from ncp.cli_exit import FAILED_GATE, OK
from ncp.plan.catalog import (
    ALLOWLISTS_FILE, BACKENDS_FILE, INTEGRATION_FILE, MATRIX_FILE, ROOT, SIGNALS_FILE, CompatibilityMatrix,
    integration_points, load_dynamo_runtime, load_matrix, load_signals,
)
from ncp.plan.profile import EastWestFabric

COMMAND = "ncp sync-pins"
PACK = Path("policy/ncp_guardrails")
PACK_PINS, PACK_ALLOWLISTS, PACK_NAMES = PACK / "pins.yaml", PACK / "allowlists.yaml", PACK / "program.yaml"
STAND_INS = Path("tests/e2e/charts")
CHECKED_BY = "(kept here so the pack can be published on its own; tests/test_data_files.py checks it)"


def _home(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _pack_header(what: str, home: str) -> str:
    return f"# {what}, generated from {home} by `{COMMAND}`\n# {CHECKED_BY}.\n"


class Copy(NamedTuple):
    path: Path  # relative to the project root
    text: str  # what the file must hold
    home: str  # the file(s) it copies: where a change is made
    sources: dict  # flattened key in the copy -> "<home file> <key>" it copies


def _pack_pins(matrix: CompatibilityMatrix) -> Copy:
    charts = {name: {"chart": pin.chart, "localDecision": pin.local_decision is not None,
                     "repository": pin.repository, "version": pin.version}
              for name, pin in matrix.components.items()}
    home = _home(MATRIX_FILE)
    sources = {f"charts.{name}.{field}": f"{home} components.{name}.{field}"
               for name, fields in charts.items() for field in fields}
    text = _pack_header("Chart pins the pack enforces", home) + yaml.safe_dump({"charts": charts}, sort_keys=True)
    return Copy(PACK_PINS, text, home, sources)


def _pack_allowlists() -> Copy:
    home = _home(ALLOWLISTS_FILE)
    text = ALLOWLISTS_FILE.read_text()
    sources = {key: f"{home} {key}" for key in _flat(yaml.safe_load(text))}
    return Copy(PACK_ALLOWLISTS, _pack_header("Sources the pack allows", home) + text, home, sources)


def _constant(module: str, name: str) -> tuple:
    return getattr(importlib.import_module(module), name), f"{module.replace('.', '/')}.py {name}"


def _shared_names() -> dict:
    """group -> name -> (value, its home): the names the pack must spell as the program does."""
    points, signals, runtime = integration_points(), load_signals()["dynamo"], load_dynamo_runtime()
    points_file, signals_file, backends_file = _home(INTEGRATION_FILE), _home(SIGNALS_FILE), _home(BACKENDS_FILE)
    return {
        "labels": {
            "tenant": _constant("ncp.plan.names", "TENANT_KEY"),
            "endpoint": _constant("ncp.plan.names", "ENDPOINT_LABEL"),
            "storageTier": _constant("ncp.plan.names", "STORAGE_TIER_LABEL"),
            "kaiQueue": (points.kai.queue_label, f"{points_file} kai.queueLabel")},
        "annotations": {
            "modelSource": _constant("ncp.plan.names", "MODEL_SOURCE"),
            "modelRevision": _constant("ncp.plan.names", "MODEL_REVISION"),
            "acceptanceThresholds": _constant("ncp.plan.names", "THRESHOLDS_ANNOTATION"),
            "sizing": _constant("ncp.plan.names", "SIZING_ANNOTATION"),
            "evidenceKey": _constant("ncp.plan.names", "EVIDENCE_KEY_ANNOTATION"),
            "podSecurityReason": _constant("ncp.plan.names", "POD_SECURITY_REASON"),
            "dgdQueue": (points.dynamo.queue_annotation, f"{points_file} dynamo.queueAnnotation")},
        "components": {  # app.kubernetes.io/component values of the workloads the pack finds by it
            "modelStaging": _constant("components.model_data", "STAGING_COMPONENT"),
            "benchmark": _constant("components.validation", "BENCHMARK_COMPONENT"),
            "validationSuite": _constant("components.validation", "SUITE_COMPONENT"),
            "inferenceServer": _constant("components.serving.triton", "SERVER_COMPONENT"),
            "endpointPicker": _constant("components.serving.gateway", "PICKER_COMPONENT"),
            "engineBuild": _constant("components.serving.triton", "ENGINE_BUILD_COMPONENT")},
        "names": {
            "baselineRecord": _constant("ncp.plan.record", "RECORD_NAME"),
            "kaiScheduler": (points.kai.scheduler_name, f"{points_file} kai.schedulerName"),
            "gpuResource": (points.gpu.resource, f"{points_file} gpu.resource"),
            "routerModeEnv": (runtime.frontend.router_mode_env, f"{backends_file} frontend.routerModeEnv"),
            "rdmaFabrics": ([fabric.value for fabric in EastWestFabric if fabric != EastWestFabric.NONE],
                            "ncp/plan/profile.py EastWestFabric (every value but none)")},
        "signals": {
            "kvHitRate": (signals.metrics["kvHitRate"], f"{signals_file} dynamo.metrics.kvHitRate"),
            "queueDepth": (signals.metrics["queuedRequests"], f"{signals_file} dynamo.metrics.queuedRequests")},
    }


def _pack_names() -> Copy:
    names = _shared_names()
    lines = [f"# Names the pack spells as the program does, generated from their homes (after each #) by `{COMMAND}`",
             f"# {CHECKED_BY}."]
    for group, entries in sorted(names.items()):
        lines.append(f"{group}:")
        lines += [f"  {key}: {json.dumps(value)}  # {home}" for key, (value, home) in sorted(entries.items())]
    sources = {f"{group}.{key}": home for group, entries in names.items() for key, (_, home) in entries.items()}
    return Copy(PACK_NAMES, "\n".join(lines) + "\n", "the program file after each line's #", sources)


def _stand_in_chart(name: str, matrix: CompatibilityMatrix) -> Copy:
    pin, home = matrix.components[name], _home(MATRIX_FILE)
    text = (f"# Stand-in for {pin.display_name} ({pin.chart}) in end-to-end tests; generated from the matrix by "
            f"`{COMMAND}`.\napiVersion: v2\nname: {pin.chart_name}\nversion: {pin.version}\ntype: application\n")
    return Copy(STAND_INS / pin.chart_name / "Chart.yaml", text, home,
                {"name": f"{home} components.{name}.chart", "version": f"{home} components.{name}.version"})


def copies(matrix: CompatibilityMatrix) -> list:
    return ([_pack_pins(matrix), _pack_allowlists(), _pack_names()]
            + [_stand_in_chart(name, matrix) for name in matrix.components])


def _flat(data, prefix="") -> dict:
    if isinstance(data, dict):
        return {key: value for k, v in data.items() for key, value in _flat(v, f"{prefix}{k}.").items()}
    return {prefix.rstrip("."): data}


def drift(matrix: CompatibilityMatrix, root: Path = ROOT) -> list:
    """One line per key that differs from its home: the copy, the key, the value to write and the home it copies; a
    copy whose keys agree but whose text differs (comments, layout) is named once."""
    problems = []
    for copy in copies(matrix):
        path = root / copy.path
        if not path.is_file():
            problems.append(f"{copy.path}: missing (it copies {copy.home}; run `{COMMAND}` to write it)")
            continue
        expected = _flat(yaml.safe_load(copy.text))
        actual = _flat(yaml.safe_load(path.read_text()) or {})
        found = []
        for key in sorted(expected.keys() | actual.keys()):
            if key not in expected:
                found.append(f"{copy.path}: {key} is not in {copy.home}: remove it (or run `{COMMAND}`)")
            elif actual.get(key) != expected[key]:
                found.append(f"{copy.path}: {key} is {actual.get(key)!r}, write {expected[key]!r} (it copies "
                             f"{copy.sources.get(key, copy.home)}; `{COMMAND}` rewrites every copy)")
        if not found and path.read_text() != copy.text:
            found.append(f"{copy.path}: its values agree with {copy.home} but not its text: do not edit it by hand, "
                         f"run `{COMMAND}`")
        problems += found
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
        print("\n".join(problems) or "every copy is in step with its home")
        return FAILED_GATE if problems else OK
    for path in write(matrix):
        print(f"wrote {path}")
    return OK
