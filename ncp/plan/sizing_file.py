"""The sizing file format: what was asked of AIConfigurator, what it chose, and why.

A sizing file is YAML (camelCase keys, like every config of this project) written by `ncp sizing` and read by
the program through `load_sizing`. Reading needs nothing but pydantic and PyYAML: AIConfigurator is only imported to
*make* a file (sizing.run), never to read one.
"""
from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import Field, ValidationError, model_validator

from ncp.plan.serving import Backend, Role
from ncp.plan.strict import StrictModel
from ncp.cli_exit import BadInput

Mode = Literal["aggregated", "disaggregated"]
ServingMode = Literal["auto", "agg", "disagg"]
# AIConfigurator's own names for the two modes (CSV folders agg/ and disagg/, "Best Experiment Chosen: agg").
AIC_MODES: dict[str, Mode] = {"agg": "aggregated", "disagg": "disaggregated"}


# RA: Sizing Guidance: "document the starting GPU count, target concurrency, prompt and output shape"
class SizingRequest(StrictModel):
    """The inputs of one `aiconfigurator cli default` run."""

    model: str = Field(min_length=1,
                       description="Hugging Face model id bundled with AIConfigurator, e.g. Qwen/Qwen3-32B")
    system: str = Field(min_length=1, description="AIConfigurator system (GPU type), e.g. h200_sxm, l40s")
    backend: Backend
    total_gpus: int = Field(ge=1, description="GPU budget for this endpoint")
    isl: int = Field(ge=1, description="input sequence length (tokens)")
    osl: int = Field(ge=1, description="output sequence length (tokens)")
    ttft_ms: float = Field(gt=0, description="time-to-first-token SLA (ms)")
    tpot_ms: float = Field(gt=0, description="time-per-output-token (inter-token latency) SLA (ms)")
    backend_version: Optional[str] = Field(
        default=None, description="AIConfigurator perf-database version (--backend-version); default: its current")
    serving_mode: ServingMode = Field(
        default="auto", description="AIConfigurator --serving-mode: auto compares agg and disagg; agg/disagg force one")


class Tool(StrictModel):
    name: Literal["aiconfigurator"] = "aiconfigurator"
    version: str
    perf_database_version: str = Field(description="backend version of the perf database the search simulated")
    database_mode: str = Field(default="SILICON", description="SILICON: measured kernel data, reproducible")


class SizedGroup(StrictModel):
    """Workers of one role across the whole deployment (not per AIConfigurator replica), as the sizing file records
    them; the plan's WorkerGroup (ncp/plan/endpoint_plan.py) adds the role."""

    replicas: int = Field(ge=1, description="number of workers of this role")
    gpus_per_worker: int = Field(ge=1)
    tensor_parallel: int = Field(ge=1)
    pipeline_parallel: int = Field(ge=1)
    expert_parallel: int = Field(ge=1, description="MoE expert parallel size (1 for dense models)")
    data_parallel: int = Field(default=1, ge=1, description="attention data parallel size")
    moe_tensor_parallel: int = Field(default=1, ge=1, description="MoE tensor parallel size (1 for dense models)")
    max_batch_size: int = Field(ge=1)
    memory_gb_per_gpu: Optional[float] = Field(
        default=None, gt=0, description="AIConfigurator's memory estimate per GPU at maxBatchSize: weights, "
                                        "activations and KV cache (GB; older sizing files lack it)")

    @property
    def gpus(self) -> int:
        return self.replicas * self.gpus_per_worker


class Estimates(StrictModel):
    """AIConfigurator's estimates for the chosen configuration, for the whole deployment."""

    ttft_ms: float
    tpot_ms: float
    request_latency_ms: float
    tokens_per_second_per_gpu: float = Field(
        description="AIConfigurator's ranking metric tokens/s/gpu_cluster: total output tokens/s over the GPU budget")
    tokens_per_second_per_user: float
    tokens_per_second: float
    requests_per_second: float
    concurrency: int = Field(description="concurrent requests the deployment is sized for")


class Candidate(StrictModel):
    """One row of AIConfigurator's best_config_topn.csv (its rank order), converted to deployment totals."""

    rank: int = Field(ge=1)
    layout: str = Field(
        description="replicas x (workers and parallelism), e.g. '2 x tp4pp1' or '1 x (4P tp1 + 1D tp4)'")
    gpus_used: int
    tokens_per_second_per_gpu: float
    tokens_per_second_per_user: float
    ttft_ms: float
    tpot_ms: float
    concurrency: int
    meets_sla: bool


class Selection(StrictModel):
    """How the configuration was chosen, so a reviewer can check it."""

    ranking: str = Field(description="how AIConfigurator ranks candidates")
    aiconfigurator_choice: Mode = Field(description="the mode AIConfigurator printed as 'Best Experiment Chosen'")
    chosen_rank: int = Field(ge=1, description="rank of the chosen row within its mode")
    best_aggregated_tokens_per_second_per_gpu: Optional[float] = None
    best_disaggregated_tokens_per_second_per_gpu: Optional[float] = None
    note: Optional[str] = None


class Alternatives(StrictModel):
    aggregated: list[Candidate] = Field(default_factory=list)
    disaggregated: list[Candidate] = Field(default_factory=list)
    not_evaluated: dict[str, str] = Field(default_factory=dict, description="mode -> why AIConfigurator skipped it")


class SizingResult(StrictModel):
    request: SizingRequest
    tool: Tool
    command: str = Field(description="the exact AIConfigurator command line that produced this file")
    mode: Mode
    workers: Optional[SizedGroup] = Field(default=None, description="aggregated workers")
    prefill: Optional[SizedGroup] = Field(default=None, description="disaggregated prefill workers")
    decode: Optional[SizedGroup] = Field(default=None, description="disaggregated decode workers")
    estimates: Estimates
    selection: Selection
    alternatives: Alternatives

    @model_validator(mode="after")
    def _consistent(self) -> "SizingResult":
        if self.mode == "aggregated" and (self.workers is None or self.prefill or self.decode):
            raise ValueError("an aggregated layout has 'workers' and no 'prefill'/'decode'")
        if self.mode == "disaggregated" and (self.workers or self.prefill is None or self.decode is None):
            raise ValueError("a disaggregated layout has 'prefill' and 'decode' and no 'workers'")
        if self.total_gpus_used() > self.request.total_gpus:
            raise ValueError(f"the layout uses {self.total_gpus_used()} GPUs, more than the budget "
                             f"totalGpus={self.request.total_gpus}")
        if self.request.serving_mode != "auto" and AIC_MODES[self.request.serving_mode] != self.mode:
            raise ValueError(f"mode {self.mode} contradicts the forced servingMode {self.request.serving_mode}")
        return self

    def groups(self) -> dict[Role, SizedGroup]:
        """Role -> worker group: {'worker': ...} when aggregated, {'prefill': ..., 'decode': ...} when not."""
        groups: dict[Role, Optional[SizedGroup]] = (
            {"worker": self.workers} if self.mode == "aggregated" else {"prefill": self.prefill, "decode": self.decode})
        return {role: group for role, group in groups.items() if group is not None}

    def total_gpus_used(self) -> int:
        return sum(group.gpus for group in self.groups().values())

    def estimate_summary(self) -> dict:
        """The estimates (camelCase) plus where they came from, for records and stack outputs."""
        return {**self.estimates.model_dump(by_alias=True),
                "tool": f"{self.tool.name} {self.tool.version} (perf db {self.tool.perf_database_version})"}


class SizingFileError(BadInput):
    """A sizing file is missing or not a valid sizing file. The message names the file, the problem and the fix."""

    def __init__(self, path: Path, problem: str, fix: str):
        self.path, self.problem, self.fix = Path(path), problem, fix
        super().__init__(f"{path}: {problem}\n  fix: {fix}")


REGENERATE = "re-generate it with the `ncp sizing ...` command in the file's header (do not edit it by hand)"


def _loc(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def load_sizing(path) -> SizingResult:
    """Read a sizing file written by `write_sizing`; raise SizingFileError naming the file, the problem and the fix."""
    path = Path(path)
    if not path.is_file():
        raise SizingFileError(path, "sizing file not found" if not path.exists() else "is not a file",
                              "generate it: ncp sizing --model <model> --system <system> --backend <backend> "
                              f"--total-gpus <n> --isl <n> --osl <n> --ttft <ms> --tpot <ms> --out {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise SizingFileError(path, f"is not valid YAML ({str(error).splitlines()[0]})", REGENERATE) from None
    if not isinstance(raw, dict):
        raise SizingFileError(path, f"must be a YAML mapping written by `ncp sizing`, got {type(raw).__name__}",
                              REGENERATE)
    try:
        return SizingResult.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(f"{_loc(e['loc'])}: {e['msg']}" for e in error.errors())
        raise SizingFileError(path, f"is not a valid sizing file ({problems})", REGENERATE) from None
