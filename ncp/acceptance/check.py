"""Check an AIPerf run against acceptance thresholds.

    ncp acceptance --export <artifact dir | profile_export_aiperf.json> --thresholds <thresholds.yaml>

Prints one row per check (metric, stat, unit, measured, threshold, PASS/FAIL/MISSING). Exit codes: 0 every check
passed; 1 a check failed or a required metric is missing from the export; 2 the export or thresholds file is missing
or invalid; 3 an internal error (--debug shows the traceback).
"""
import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from ncp.plan.thresholds import (ERROR_RATE, AcceptanceThresholds, Check, ThresholdsFileError, load_thresholds)
from ncp.cli_exit import BadInput
from ncp.plan.names import AIPERF_EXPORT

EXPORT_NAME = AIPERF_EXPORT
SERVER_EXPORT_NAME = "server_metrics_export.json"  # AIPerf writes it beside EXPORT_NAME with --server-metrics
# Triton's counters (data/telemetry-signals.yaml `triton`): compute time and successful requests of one model.
COMPUTE_TIME, REQUESTS = "nv_inference_compute_infer_duration_us", "nv_inference_request_success"


class ExportError(BadInput):
    """The AIPerf export is missing or invalid; the message names the path, the problem and the fix."""

    def __init__(self, path: Union[Path, str], problem: str, fix: str):
        self.path, self.problem, self.fix = Path(path), problem, fix
        super().__init__(f"{path}: {problem}\n  fix: {fix}")


@dataclass(frozen=True)
class Row:
    metric: str
    stat: str
    unit: str
    measured: Optional[float]
    threshold: str
    status: str  # PASS | FAIL | MISSING
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "PASS"


def find_export(path) -> Path:
    """An artifact directory (AIPerf's --artifact-dir) or the profile_export_aiperf.json in it."""
    path = Path(path)
    if path.is_dir():
        direct = path / EXPORT_NAME
        if direct.is_file():
            return direct
        found = sorted(path.rglob(EXPORT_NAME))
        if len(found) == 1:
            return found[0]
        if found:
            raise ExportError(path, f"holds {len(found)} {EXPORT_NAME} files: "
                                    f"{', '.join(str(f.relative_to(path)) for f in found)}",
                              "pass the artifact directory of one run")
        raise ExportError(path, f"has no {EXPORT_NAME}",
                          "pass the --artifact-dir of a finished `aiperf profile` run (did the run fail? see its "
                          "logs/aiperf.log)")
    if not path.is_file():
        raise ExportError(path, "not found", f"pass the artifact directory or its {EXPORT_NAME}")
    return path


def load_export(path) -> dict:
    export = find_export(path)
    try:
        data = json.loads(export.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ExportError(export, f"is not valid JSON ({error})",
                          "re-run AIPerf; the export is written when the run completes") from None
    if not isinstance(data, dict) or not any(isinstance(v, dict) and "unit" in v for v in data.values()):
        raise ExportError(export, f"is not an AIPerf {EXPORT_NAME} (no metrics with units)",
                          f"pass the {EXPORT_NAME} that `aiperf profile` writes to its --artifact-dir")
    return data


def _fmt(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.1f}"


def _metric_value(export: dict, tag: str, stat: str, unit: str) -> tuple[Optional[float], str]:
    metric = export.get(tag)
    if not isinstance(metric, dict):
        hint = " (AIPerf reports it only with --streaming)" if tag in ("time_to_first_token",
                                                                       "inter_token_latency") else ""
        return None, f"metric {tag!r} is not in the export{hint}"
    if metric.get("unit") != unit:
        return None, f"unit is {metric.get('unit')!r}, expected {unit!r}"
    value = metric.get(stat)
    if not isinstance(value, (int, float)):
        return None, f"stat {stat!r} is not reported for {tag!r} (has: {', '.join(k for k in metric if k != 'unit')})"
    return float(value), ""


def _evaluate_check(export: dict, check: Check) -> Row:
    measured, problem = _metric_value(export, check.tag, check.stat, check.unit)
    threshold = f"{check.op} {_fmt(check.limit)}"
    if measured is None:
        return Row(check.tag, check.stat, check.unit, None, threshold, "MISSING", problem)
    ok = measured <= check.limit if check.op == "<=" else measured >= check.limit
    return Row(check.tag, check.stat, check.unit, measured, threshold, "PASS" if ok else "FAIL")


def _error_rate(export: dict, limit: float) -> Row:
    threshold = f"<= {limit:g}"
    # AIPerf writes error_request_count only when some requests failed, and request_count only when some succeeded.
    completed, problem = _metric_value(export, "request_count", "avg", "requests")
    failed, _ = _metric_value(export, "error_request_count", "avg", "requests")
    if completed is None and failed is None:
        return Row("error_rate", "ratio", "", None, threshold, "MISSING", problem)
    completed, failed = completed or 0.0, failed or 0.0
    total = completed + failed
    rate = failed / total if total else 1.0
    detail = f"{failed:g} of {total:g} requests failed"
    errors = export.get("error_summary") or []
    if failed and errors:
        detail += ": " + "; ".join(f"{e.get('count')} x {(e.get('error_details') or {}).get('code')} "
                                   f"{(e.get('error_details') or {}).get('type')}" for e in errors[:3])
    return Row("error_rate", "ratio", "", rate, threshold, "PASS" if rate <= limit else "FAIL", detail)


def _counter_total(server: dict, metric: str, model: str) -> Optional[float]:
    """The run's increase of a counter for one model, summed over the scraped endpoints (server pods)."""
    found = [s.get("stats", {}).get("total") for s in (server.get("metrics", {}).get(metric, {}).get("series") or [])
             if (s.get("labels") or {}).get("model") == model]
    found = [value for value in found if isinstance(value, (int, float))]
    return float(sum(found)) if found else None


def _preprocessing(server: Optional[dict], thresholds: AcceptanceThresholds) -> Row:
    limit, model = thresholds.preprocessing_time_avg_ms, thresholds.preprocessing_model
    assert limit is not None, "called only when the thresholds bound the preprocessing time"
    row = ("preprocessing_time", "avg", "ms")
    if model is None:
        return Row(*row, None, f"<= {_fmt(limit)}", "MISSING", "the thresholds name no preprocessingModel")
    if server is None:
        return Row(*row, None, f"<= {_fmt(limit)}", "MISSING",
                   f"no {SERVER_EXPORT_NAME}: run aiperf with --server-metrics <Triton metrics URL>")
    compute, requests = _counter_total(server, COMPUTE_TIME, model), _counter_total(server, REQUESTS, model)
    if not compute or not requests:
        return Row(*row, None, f"<= {_fmt(limit)}", "MISSING",
                   f"{SERVER_EXPORT_NAME} has no {COMPUTE_TIME}/{REQUESTS} increase for model {model!r}")
    measured = compute / requests / 1000
    return Row(*row, measured, f"<= {_fmt(limit)}", "PASS" if measured <= limit else "FAIL")


# RA: Validation Methodology: "The RA should be enforced as an executable acceptance bar."
def evaluate(export: dict, thresholds: AcceptanceThresholds, server: Optional[dict] = None) -> list[Row]:
    """One row per threshold, in declaration order, then preprocessing (server metrics), the error rate and the
    run's completion."""
    rows = [_evaluate_check(export, check) for check in thresholds.checks()]
    if thresholds.preprocessing_time_avg_ms is not None:
        rows.append(_preprocessing(server, thresholds))
    rows.append(_error_rate(export, getattr(thresholds, ERROR_RATE)))
    if export.get("was_cancelled"):
        rows.append(Row("was_cancelled", "-", "", 1.0, "false", "FAIL", "the run was cancelled before it finished"))
    return rows


def render(rows: list[Row]) -> str:
    header = ("metric", "stat", "unit", "measured", "threshold", "result")
    table = [header] + [(r.metric, r.stat, r.unit, _fmt(r.measured), r.threshold, r.status) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  {r.metric}: {r.detail}" for r in rows if r.detail and r.status != "PASS"]
    failed = sum(not r.ok for r in rows)
    verdict = (f"ACCEPTED: {len(rows)} checks passed" if not failed
               else f"REJECTED: {failed} of {len(rows)} checks failed")
    return "\n".join(lines + notes + [verdict])


def evaluate_export(export_path, thresholds: AcceptanceThresholds) -> list[Row]:
    """Evaluate an export and, where AIPerf wrote it beside, its server metrics. Raises ExportError."""
    server_export = find_export(export_path).parent / SERVER_EXPORT_NAME
    server = json.loads(server_export.read_text()) if server_export.is_file() else None
    return evaluate(load_export(export_path), thresholds, server)


def check(export_path, thresholds_path) -> tuple[bool, list[Row]]:
    """Load both files and evaluate. Raises ExportError / ThresholdsFileError for missing or invalid files."""
    rows = evaluate_export(export_path, load_thresholds(thresholds_path))
    return all(r.ok for r in rows), rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ncp acceptance", description=__doc__.split("\n\n")[0])
    parser.add_argument("--export", required=True, type=Path,
                        help=f"AIPerf --artifact-dir, or the {EXPORT_NAME} in it")
    parser.add_argument("--thresholds", required=True, type=Path, help="acceptance thresholds YAML")
    args = parser.parse_args(argv)
    try:
        passed, rows = check(args.export, args.thresholds)
    except (ExportError, ThresholdsFileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(render(rows))
    return 0 if passed else 1
