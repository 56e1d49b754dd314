"""The concurrency sweep of an endpoint's benchmark: one AIPerf run per level (acceptance.aiperf_args SWEEP_RUN
directories), each level's headline figures, and the knee: the lowest level that reaches KNEE_SHARE of the best
output throughput of the sweep. Past the knee more concurrency buys little throughput and costs latency."""
from pathlib import Path
from typing import Optional

from pydantic import Field

from ncp.plan.aiperf_args import SWEEP_RUN, sweep_levels
from ncp.acceptance.check import load_export
from ncp.plan.strict import StrictModel

KNEE_SHARE = 0.9
# (field, AIPerf metric tag, stat) of each level's figures
FIGURES = (("output_token_throughput", "output_token_throughput", "avg"),
           ("request_throughput", "request_throughput", "avg"),
           ("time_to_first_token_p95_ms", "time_to_first_token", "p95"),
           ("inter_token_latency_p95_ms", "inter_token_latency", "p95"),
           ("request_latency_p99_ms", "request_latency", "p99"))


class SweepPoint(StrictModel):
    concurrency: int
    output_token_throughput: Optional[float] = None
    request_throughput: Optional[float] = None
    time_to_first_token_p95_ms: Optional[float] = None
    inter_token_latency_p95_ms: Optional[float] = None
    request_latency_p99_ms: Optional[float] = None
    errors: float = 0


class Sweep(StrictModel):
    levels: list[SweepPoint]
    knee: Optional[int] = Field(description=f"lowest concurrency reaching {KNEE_SHARE:.0%} of the best output "
                                            "throughput; None when no level reports throughput")
    knee_rule: str = f"lowest concurrency reaching {KNEE_SHARE:.0%} of the sweep's best output token throughput"


def _stat(export: dict, tag: str, stat: str) -> Optional[float]:
    value = (export.get(tag) or {}).get(stat)
    return float(value) if isinstance(value, (int, float)) else None


def point(concurrency: int, export: dict) -> SweepPoint:
    figures = {name: _stat(export, tag, stat) for name, tag, stat in FIGURES}
    return SweepPoint(concurrency=concurrency, errors=_stat(export, "error_request_count", "avg") or 0, **figures)


def knee(levels: list[SweepPoint]) -> Optional[int]:
    measured = [p for p in levels if p.output_token_throughput is not None]
    if not measured:
        return None
    best = max(p.output_token_throughput or 0.0 for p in measured)
    return min(p.concurrency for p in measured if (p.output_token_throughput or 0.0) >= KNEE_SHARE * best)


def read_sweep(directory: Path, concurrency: int, sweep: list[int]) -> Optional[Sweep]:
    """Every level's export under the benchmark's artifact directory; None without a sweep. A missing level is an
    ExportError (bad input: the run did not finish)."""
    if not sweep:
        return None
    levels = [point(level, load_export(Path(directory) / SWEEP_RUN.format(level)))
              for level in sweep_levels(concurrency, sweep)]
    return Sweep(levels=levels, knee=knee(levels))
