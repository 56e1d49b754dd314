"""`ncp evidence compare`: a record against the last passed, believed record of the same stack, endpoint and
like-for-like key (ncp/plan/evidence_key.py KEY_FIELDS) and workload shape. A metric worse by more than the stack's
`validationEvidence.regressionMarginPct` is a regression (exit 1); no such earlier record is nothing to compare."""
from dataclasses import dataclass
from typing import Optional

# The judged run's headline figures (evidence.sweep FIGURES, recorded as benchmark.figures), higher is better or not
COMPARED = (("outputTokenThroughput", True), ("requestThroughput", True), ("timeToFirstTokenP95Ms", False),
            ("interTokenLatencyP95Ms", False), ("requestLatencyP99Ms", False))
# The workload fields that must match too: a different traffic shape is not a like-for-like comparison.
WORKLOAD_FIELDS = ("isl", "osl", "islStddev", "oslStddev", "concurrency", "concurrencySweep")


@dataclass(frozen=True)
class Delta:
    metric: str
    baseline: float
    current: float
    change_pct: float  # positive: better
    regression: bool


def _measured(record: dict) -> dict[str, float]:
    figures = record["benchmark"].get("figures") or {}
    return {name: value for name, value in figures.items() if isinstance(value, (int, float))}


def comparable(current: dict, candidate: dict) -> bool:
    return (candidate.get("stack") == current.get("stack") and candidate.get("endpoint") == current.get("endpoint")
            and candidate.get("key") == current.get("key")
            and all(candidate["workload"].get(f) == current["workload"].get(f) for f in WORKLOAD_FIELDS))


def baseline_of(current: dict, candidates: list[dict]) -> Optional[dict]:
    """The newest passed record before `current` that is like for like with it."""
    earlier = [c for c in candidates if c.get("passed") is True and c.get("createdAt", "") < current["createdAt"]
               and c.get("runId") != current.get("runId") and comparable(current, c)]
    return max(earlier, key=lambda c: c["createdAt"], default=None)


def compare(current: dict, baseline: dict, margin_pct: float) -> list[Delta]:
    now, then = _measured(current), _measured(baseline)
    deltas = []
    for metric, higher_better in COMPARED:
        if metric not in now or not then.get(metric):
            continue
        old, new = then[metric], now[metric]
        change = (new - old) / old * 100 * (1 if higher_better else -1)
        deltas.append(Delta(metric, old, new, change, change < -margin_pct))
    return deltas


def render(current: dict, baseline: Optional[dict], deltas: list[Delta], margin_pct: float) -> str:
    if baseline is None:
        return (f"{current['endpoint']} run {current['runId']}: no earlier passed record with the same key and "
                "workload: nothing to compare (this run becomes the baseline once it passes)")
    lines = [f"{current['endpoint']} run {current['runId']} against {baseline['runId']} ({baseline['createdAt']}), "
             f"margin {margin_pct:g}%"]
    lines += [f"  {d.metric}: {d.baseline:.4g} -> {d.current:.4g} ({d.change_pct:+.1f}% "
              f"{'better' if d.change_pct >= 0 else 'worse'}){'  REGRESSION' if d.regression else ''}"
              for d in deltas]
    regressions = [d for d in deltas if d.regression]
    lines.append(f"REGRESSED: {len(regressions)} metric(s) worse than {margin_pct:g}%" if regressions
                 else "no regression beyond the margin")
    return "\n".join(lines)
