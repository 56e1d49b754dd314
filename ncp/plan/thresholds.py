"""Acceptance thresholds for an AIPerf run, named after AIPerf's metric tags.

A field name says what it checks: `<metric tag>_<stat>_ms` is a latency ceiling (the stat of that metric in
profile_export_aiperf.json must be <= the value), `<metric tag>_min` a floor on the metric's value (`avg`, the only
stat AIPerf reports for throughputs and counts), and `error_rate_max` bounds failed / all profiled requests. In YAML
the keys are camelCase like every config of this project (`timeToFirstTokenP95Ms`); the snake_case field names
(`time_to_first_token_p95_ms`) are accepted too.

Metric tags, units and stats as AIPerf 0.8.0 writes them (checked against a real export):
  time_to_first_token, inter_token_latency, request_latency   ms; avg, p1..p99, min, max, std
                                                              (TTFT and ITL only with --streaming)
  output_token_throughput                                     tokens/sec; avg only
  request_throughput                                          requests/sec; avg only
  request_count                                               requests (successful); avg only
  error_request_count                                         requests; present only when some requests failed

`preprocessing_time_avg_ms` bounds the server's preprocessing time per request, from the Triton metrics AIPerf
scrapes during the run (server_metrics_export.json, `--server-metrics <url>`): the run's increase of
nv_inference_compute_infer_duration_us over that of nv_inference_request_success for `preprocessing_model` (the
DALI model of the ensemble).
"""
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import Field, ValidationError, model_validator

from ncp.plan.strict import StrictModel, Text
from ncp.cli_exit import BadInput

Op = Literal["<=", ">="]


@dataclass(frozen=True)
class Check:
    field: str   # AcceptanceThresholds field, e.g. time_to_first_token_p95_ms
    tag: str     # AIPerf metric tag, e.g. time_to_first_token
    stat: str    # key inside the metric, e.g. p95 or avg
    op: Op
    unit: str    # unit AIPerf must report for the metric
    limit: float


UNITS = {"time_to_first_token": "ms", "inter_token_latency": "ms", "request_latency": "ms",
         "output_token_throughput": "tokens/sec", "request_throughput": "requests/sec", "request_count": "requests"}
ERROR_RATE = "error_rate_max"
PREPROCESSING = ("preprocessing_time_avg_ms", "preprocessing_model")  # judged from the server metrics export


class AcceptanceThresholds(StrictModel):
    """Acceptance thresholds of an AIPerf run, named after AIPerf's metric tags: `<metric><Stat>Ms` is a latency
    ceiling (ms), `<metric>Min` a floor; at least one latency, throughput or count threshold is set."""

    time_to_first_token_p50_ms: Optional[float] = Field(default=None, gt=0,
                                                        description="ceiling on time to first token, p50 (ms)")
    time_to_first_token_p90_ms: Optional[float] = Field(default=None, gt=0,
                                                        description="ceiling on time to first token, p90 (ms)")
    time_to_first_token_p95_ms: Optional[float] = Field(default=None, gt=0,
                                                        description="ceiling on time to first token, p95 (ms)")
    time_to_first_token_p99_ms: Optional[float] = Field(default=None, gt=0,
                                                        description="ceiling on time to first token, p99 (ms)")
    inter_token_latency_p50_ms: Optional[float] = Field(default=None, gt=0,
                                                        description="ceiling on inter-token latency, p50 (ms)")
    inter_token_latency_p90_ms: Optional[float] = Field(default=None, gt=0,
                                                        description="ceiling on inter-token latency, p90 (ms)")
    inter_token_latency_p95_ms: Optional[float] = Field(default=None, gt=0,
                                                        description="ceiling on inter-token latency, p95 (ms)")
    inter_token_latency_p99_ms: Optional[float] = Field(default=None, gt=0,
                                                        description="ceiling on inter-token latency, p99 (ms)")
    request_latency_p50_ms: Optional[float] = Field(default=None, gt=0,
                                                    description="ceiling on request latency, p50 (ms)")
    request_latency_p90_ms: Optional[float] = Field(default=None, gt=0,
                                                    description="ceiling on request latency, p90 (ms)")
    request_latency_p95_ms: Optional[float] = Field(default=None, gt=0,
                                                    description="ceiling on request latency, p95 (ms)")
    request_latency_p99_ms: Optional[float] = Field(default=None, gt=0,
                                                    description="ceiling on request latency, p99 (ms)")
    output_token_throughput_min: Optional[float] = Field(default=None, gt=0, description="tokens/sec, whole run")
    request_throughput_min: Optional[float] = Field(default=None, gt=0, description="requests/sec, whole run")
    request_count_min: Optional[int] = Field(default=None, ge=1, description="successfully completed requests")
    error_rate_max: float = Field(default=0.0, ge=0, le=1,
                                  description="failed / (completed + failed) profiled requests; default: no errors")
    preprocessing_time_avg_ms: Optional[float] = Field(default=None, gt=0,
                                                       description="server preprocessing time per request")
    preprocessing_model: Optional[Text] = Field(default=None,
                                               description="the Triton model that preprocesses (DALI); the "
                                                           "program sets it for inference services")

    @model_validator(mode="after")
    def _something_measured(self) -> "AcceptanceThresholds":
        if not any(getattr(self, name) is not None for name in type(self).model_fields if name != ERROR_RATE):
            raise ValueError("set at least one latency, throughput or request-count threshold")
        return self

    def checks(self) -> list[Check]:
        """The metric checks this set asks for (the error rate is derived; see acceptance.check)."""
        found = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None or name == ERROR_RATE or name in PREPROCESSING:
                continue
            latency = re.fullmatch(r"(?P<tag>[a-z_]+)_(?P<stat>avg|p\d+)_ms", name)
            if latency:
                found.append(Check(name, latency["tag"], latency["stat"], "<=", "ms", float(value)))
            else:
                tag = name.removesuffix("_min")
                found.append(Check(name, tag, "avg", ">=", UNITS[tag], float(value)))
        return found


class ThresholdsFileError(BadInput):
    """A thresholds file is missing or invalid; the message names the file, the problem and the fix."""

    def __init__(self, path: Path, problem: str, fix: str):
        self.path, self.problem, self.fix = Path(path), problem, fix
        super().__init__(f"{path}: {problem}\n  fix: {fix}")


def load_thresholds(path) -> AcceptanceThresholds:
    path = Path(path)
    example = "e.g. timeToFirstTokenP95Ms: 1000, interTokenLatencyP95Ms: 30, outputTokenThroughputMin: 500"
    if not path.is_file():
        raise ThresholdsFileError(path, "thresholds file not found",
                                  f"pass the YAML file with the endpoint's acceptance thresholds ({example})")
    try:
        raw = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ThresholdsFileError(path, f"is not valid YAML ({str(error).splitlines()[0]})",
                                  "fix the YAML syntax") from None
    if not isinstance(raw, dict):
        raise ThresholdsFileError(path, f"must be a YAML mapping of thresholds, got {type(raw).__name__}", example)
    try:
        return AcceptanceThresholds.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']}" for e in error.errors())
        known = ", ".join(AcceptanceThresholds.model_fields[n].alias or n for n in AcceptanceThresholds.model_fields)
        raise ThresholdsFileError(path, f"is not a valid thresholds file ({problems})", f"use only: {known}") from None
