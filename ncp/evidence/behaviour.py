"""Startup and failure evidence: how an endpoint starts (cold and warm) and how it rides out a worker killed mid-run,
judged against the endpoint's `slo.startup` and `slo.failure` thresholds (ncp/plan/behaviour_thresholds.py).

THE HOOK THE SERVING TWIN FEEDS. These inputs are written by whatever drives the endpoint (the serving twin in CI,
a lab run on hardware) into the endpoint's outputs directory, beside the AIPerf artifacts:

  <outputs>/<endpoint>/startup.json   one entry per start, times in seconds since the worker pod was created:
      {"source": "<who measured it, run id>",
       "starts": [{"start": "cold", "downloadSeconds": 412.0, "cacheHit": false, "containerReadySeconds": 35.2,
                   "modelLoadedSeconds": 530.1, "firstTokenSeconds": 561.9},
                  {"start": "warm", "downloadSeconds": 0, "cacheHit": true, "containerReadySeconds": 12.0,
                   "modelLoadedSeconds": 60.3, "firstTokenSeconds": 75.0}]}
  <outputs>/<endpoint>/failure.json   one worker killed while clients keep sending:
      {"source": "...", "killedPod": "<pod>", "killedAtSeconds": 30.0, "recoverySeconds": 48.2,
       "clientRequests": 1200, "clientErrors": 7, "errorKinds": {"503": 5, "connection reset": 2}}

An endpoint whose stack sets slo.startup / slo.failure needs the file: without it every check of the phase is
MISSING and the record fails, naming this hook. Without thresholds a phase is NOT RUN (recorded, not judged).
"""
import json
from pathlib import Path
from typing import Literal, Optional

from pydantic import Field, ValidationError

from ncp.acceptance.check import ExportError
from ncp.evidence.owners import check_owner
from ncp.plan.behaviour_thresholds import FailureThresholds, StartupThresholds
from ncp.plan.strict import StrictModel

STARTUP_FILE, FAILURE_FILE = "startup.json", "failure.json"
HOOK = "the serving twin (or a lab run) writes it; inputs documented in ncp/evidence/behaviour.py"


class Start(StrictModel):
    start: Literal["cold", "warm"]
    download_seconds: Optional[float] = Field(default=None, ge=0)
    cache_hit: bool
    container_ready_seconds: Optional[float] = Field(default=None, ge=0)
    model_loaded_seconds: Optional[float] = Field(default=None, ge=0)
    first_token_seconds: Optional[float] = Field(default=None, ge=0)


class StartupInput(StrictModel):
    source: str
    starts: list[Start]


class FailureInput(StrictModel):
    source: str
    killed_pod: str
    killed_at_seconds: float = Field(ge=0)
    recovery_seconds: Optional[float] = Field(default=None, ge=0, description="None: it never recovered")
    client_requests: int = Field(ge=0)
    client_errors: int = Field(ge=0)
    error_kinds: dict[str, int] = Field(default_factory=dict)


class BehaviourCheck(StrictModel):
    metric: str
    unit: str
    measured: Optional[float]
    threshold: str
    status: Literal["PASS", "FAIL", "MISSING"]
    owner: str
    detail: str = ""


class BehaviourResult(StrictModel):
    phase: Literal["startup", "failure"]
    source: Optional[str]
    status: Literal["PASS", "FAIL", "MISSING", "NOT RUN"]
    checks: list[BehaviourCheck] = Field(default_factory=list)
    observed: dict = Field(default_factory=dict, description="the input as measured")

    @property
    def passed(self) -> bool:
        return self.status in ("PASS", "NOT RUN")


def _read(path: Path, model):
    try:
        return model.model_validate(json.loads(path.read_text()))
    except (json.JSONDecodeError, UnicodeDecodeError, ValidationError) as error:
        raise ExportError(path, f"not a valid {path.name} ({str(error).splitlines()[0]})",
                          "write it in the form ncp/evidence/behaviour.py documents") from None


def _check(phase: str, metric: str, unit: str, measured: Optional[float], limit: float, op: str = "<=",
           detail: str = "") -> BehaviourCheck:
    owner = check_owner(phase, metric)
    if measured is None:
        return BehaviourCheck(metric=metric, unit=unit, measured=None, threshold=f"{op} {limit:g}", status="MISSING",
                              owner=owner, detail=detail or "not measured")
    ok = measured <= limit if op == "<=" else measured >= limit
    return BehaviourCheck(metric=metric, unit=unit, measured=measured, threshold=f"{op} {limit:g}",
                          status="PASS" if ok else "FAIL", owner=owner, detail=detail)


def _verdict(phase: str, source: Optional[str], checks: list[BehaviourCheck], observed: dict) -> BehaviourResult:
    statuses = {c.status for c in checks}
    status = "FAIL" if "FAIL" in statuses else "MISSING" if "MISSING" in statuses else "PASS"
    return BehaviourResult(phase=phase, source=source, status=status, checks=checks, observed=observed)  # type: ignore[arg-type]


def _missing(phase: str, metrics: list[tuple[str, str, float]], path: Path) -> BehaviourResult:
    detail = f"no {path} ({HOOK})"
    return _verdict(phase, None, [_check(phase, m, u, None, limit, detail=detail) for m, u, limit in metrics], {})


def _not_run(phase: str, path: Path, model) -> BehaviourResult:
    """No thresholds: what was measured is recorded, nothing is judged."""
    observed = _read(path, model).model_dump(by_alias=True) if path.is_file() else {}
    return BehaviourResult(phase=phase, source=observed.get("source"), status="NOT RUN",  # type: ignore[arg-type]
                           observed=observed)


def judge_startup(directory: Path, thresholds: Optional[StartupThresholds]) -> BehaviourResult:
    path = Path(directory) / STARTUP_FILE
    if thresholds is None:
        return _not_run("startup", path, StartupInput)
    wanted = [("startup.cold.firstToken", "s", thresholds.cold_first_token_seconds),
              ("startup.warm.firstToken", "s", thresholds.warm_first_token_seconds)]
    if thresholds.cold_model_loaded_seconds is not None:
        wanted.append(("startup.cold.modelLoaded", "s", thresholds.cold_model_loaded_seconds))
    if thresholds.warm_container_ready_seconds is not None:
        wanted.append(("startup.warm.containerReady", "s", thresholds.warm_container_ready_seconds))
    if not path.is_file():
        return _missing("startup", wanted, path)
    measured = _read(path, StartupInput)
    starts = {s.start: s for s in measured.starts}
    fields = {"firstToken": "first_token_seconds", "modelLoaded": "model_loaded_seconds",
              "containerReady": "container_ready_seconds"}
    checks = []
    for metric, unit, limit in wanted:
        _, start, step = metric.split(".")
        run = starts.get(start)
        checks.append(_check("startup", metric, unit, getattr(run, fields[step]) if run else None, limit,
                             detail="" if run else f"{path} has no {start} start"))
    if thresholds.warm_cache_hit:
        warm = starts.get("warm")
        checks.append(_check("startup", "startup.warm.cacheHit", "", None if warm is None else float(warm.cache_hit),
                             1, ">=", detail="" if warm is None or warm.cache_hit else
                             f"the warm start downloaded the model ({warm.download_seconds} s)"))
    return _verdict("startup", measured.source, checks, measured.model_dump(by_alias=True))


def judge_failure(directory: Path, thresholds: Optional[FailureThresholds]) -> BehaviourResult:
    path = Path(directory) / FAILURE_FILE
    if thresholds is None:
        return _not_run("failure", path, FailureInput)
    wanted = [("failure.recovery", "s", thresholds.recovery_seconds),
              ("failure.clientErrorRate", "ratio", thresholds.client_error_rate_max)]
    if not path.is_file():
        return _missing("failure", wanted, path)
    measured = _read(path, FailureInput)
    rate = measured.client_errors / measured.client_requests if measured.client_requests else None
    kinds = ", ".join(f"{count} x {kind}" for kind, count in measured.error_kinds.items())
    recovery = _check("failure", "failure.recovery", "s", measured.recovery_seconds, thresholds.recovery_seconds,
                      detail=f"killed {measured.killed_pod} at {measured.killed_at_seconds:g} s")
    if measured.recovery_seconds is None:  # measured, and it never came back: a failure, not a gap in the evidence
        recovery = recovery.model_copy(update={"status": "FAIL", "detail": recovery.detail + "; never recovered"})
    checks = [recovery,
              _check("failure", "failure.clientErrorRate", "ratio", rate, thresholds.client_error_rate_max,
                     detail=f"{measured.client_errors} of {measured.client_requests} requests failed"
                     + (f" ({kinds})" if kinds else ""))]
    return _verdict("failure", measured.source, checks, measured.model_dump(by_alias=True))
