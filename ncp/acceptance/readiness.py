"""Readiness gates: read the NCCL tests (RDMA profiles) and fio outputs (every profile with readiness thresholds) and
judge them by the hardware profile's thresholds (profiles/*.yaml readiness).

Formats:
- nccl-tests stdout: the footer lines `# Out of bounds values : <n> OK|FAILED` and `# Avg bus bandwidth    : <g> `
  (NVIDIA/nccl-tests src/util.cu writeResultFooter@0fdb00a3: `PRINT("# %-20s : %d %s\\n", "Out of bounds values",
  ...)`, `PRINT("# %-20s : %g %s\\n", "Avg bus bandwidth", bw[0], ...)`), GB/s as the tests report busbw. Under
  mpirun each line may carry a rank prefix (`--tag-output`), which is ignored.
- fio `--output-format=json`: `jobs[].read.bw_bytes` (bytes/s) and `jobs[].error` (axboe/fio HOWTO.rst, "JSON
  output"; fio 3.x). Several jobs (numjobs) add up; GB/s here is 10^9 bytes/s.
"""
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ncp.acceptance.check import ExportError, Row

NCCL_LOG = "nccl-all-reduce.log"
GB = 1e9

_AVG_BUS = re.compile(r"#\s*Avg bus bandwidth\s*:\s*([0-9.eE+-]+)")
_OUT_OF_BOUNDS = re.compile(r"#\s*Out of bounds values\s*:\s*(\d+)\s+(OK|FAILED)")
# The line the NCCL Job prints before each single-rail run (components/readiness.py nccl_script).
RAIL_MARKER = re.compile(r"^(?:\S*:)?# ncp-rail (\S+)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class NcclResult:
    avg_bus_bandwidth_gbps: float
    out_of_bounds: int


def parse_nccl(text: str, source: str = "nccl-tests output") -> NcclResult:
    """The all-rails run's average bus bandwidth and its data-check errors, from all_reduce_perf's footer (the part
    of the log before the first per-rail run)."""
    text = RAIL_MARKER.split(text, maxsplit=1)[0]
    bandwidth, bounds = _AVG_BUS.findall(text), _OUT_OF_BOUNDS.findall(text)
    if not bandwidth or not bounds:
        raise ExportError(source, "no nccl-tests result footer ('# Avg bus bandwidth', '# Out of bounds values'): "
                          "the test did not finish", "read the pod log for the error and re-run the Job")
    return NcclResult(avg_bus_bandwidth_gbps=float(bandwidth[-1]), out_of_bounds=int(bounds[-1][0]))


def parse_rails(text: str) -> dict[str, Optional[NcclResult]]:
    """Each rail's own run (after its `# ncp-rail <interface>` line, which the Job prints before it): its result,
    or None when that run printed no footer."""
    parts = RAIL_MARKER.split(text)[1:]  # [rail, section, rail, section, ...]
    results: dict[str, Optional[NcclResult]] = {}
    for rail, section in zip(parts[::2], parts[1::2], strict=True):
        bandwidth, bounds = _AVG_BUS.findall(section), _OUT_OF_BOUNDS.findall(section)
        results[rail] = NcclResult(float(bandwidth[-1]), int(bounds[-1][0])) if bandwidth and bounds else None
    return results


def parse_fio(text: str, source: str = "fio output") -> float:
    """Aggregate sequential read throughput in GB/s from fio's JSON."""
    try:
        jobs = json.loads(text)["jobs"]
        errors = [job["jobname"] for job in jobs if job.get("error")]
        read = sum(job["read"]["bw_bytes"] for job in jobs)
    except (ValueError, KeyError, TypeError) as error:
        raise ExportError(source, f"not fio JSON output with jobs[].read.bw_bytes ({error})",
                          "run fio with --output-format=json") from None
    if errors or not jobs:
        raise ExportError(source, f"fio jobs {errors or '(none)'} ended with an error",
                          "read the pod log and re-run the Job")
    return read / GB


def _minimum(metric: str, measured: Optional[float], threshold: float, unit: str = "GB/s") -> Row:
    if measured is None:
        return Row(metric, "avg", unit, None, f">= {threshold:g}", "MISSING", "no output for this check")
    status = "PASS" if measured >= threshold else "FAIL"
    return Row(metric, "avg", unit, measured, f">= {threshold:g}", status)


def _nccl_rows(readiness, nccl: Optional[NcclResult], rails: dict, rail_names: Sequence[str],
               rail_gbps: Optional[float]) -> list[Row]:
    rows = [_minimum("ncclAllReduceBusBandwidth", None if nccl is None else nccl.avg_bus_bandwidth_gbps,
                     readiness.nccl_bus_bandwidth_gbps),
            Row("ncclOutOfBoundsValues", "count", "values", None if nccl is None else nccl.out_of_bounds, "== 0",
                "MISSING" if nccl is None else ("PASS" if nccl.out_of_bounds == 0 else "FAIL"))]
    if rail_gbps is None:
        return rows
    for rail in rail_names:
        result = rails.get(rail)
        rows.append(_minimum(f"ncclRailBusBandwidth.{rail}", None if result is None else
                             result.avg_bus_bandwidth_gbps, rail_gbps))
    return rows


def judge(readiness, tiers: list[str], outputs: Path, rails: Sequence[str] = (),
          rail_gbps: Optional[float] = None) -> list[Row]:
    """Every readiness check the profile sets: on a fabric (readiness.ncclBusBandwidthGBps set) the NCCL bus
    bandwidth across all rails, its data check and each rail's own bus bandwidth (rail_gbps each); then each tier's
    read throughput. `readiness`: the profile's Readiness; `tiers`: the stack's storage tiers (camelCase) that have a
    threshold; `rails`: the rails' interfaces."""
    outputs = Path(outputs)
    rows = []
    if readiness.nccl_bus_bandwidth_gbps is not None:
        log = outputs / NCCL_LOG
        text = log.read_text() if log.is_file() else None
        nccl = parse_nccl(text, str(log)) if text is not None else None
        rows += _nccl_rows(readiness, nccl, parse_rails(text) if text else {}, rails, rail_gbps)
    for tier in tiers:
        path = outputs / fio_output(tier)
        measured = parse_fio(path.read_text(), str(path)) if path.is_file() else None
        rows.append(_minimum(f"storageRead.{tier}", measured, readiness.storage_read_gbps[tier]))
    return rows


def fio_output(tier: str) -> str:
    return f"fio-{tier}.json"
