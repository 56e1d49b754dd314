"""Run the real AIConfigurator (`aiconfigurator cli default`) for one endpoint and keep what it chose.

AIConfigurator runs as a subprocess of this interpreter (`python -m aiconfigurator.main cli default ...`, the same
entry point as the `aiconfigurator` console script) with `--save-dir` in a temporary directory. Its saved outputs are
parsed, not its console table:

  <save-dir>/<org>/<model>_<system>_<backend>_isl.._osl.._ttft.._tpot.._<random>/
      agg/best_config_topn.csv, disagg/best_config_topn.csv   ranked candidates, one row per parallel layout,
                                                              values per replica ("smallest scalable unit")
      {agg,disagg}/top1/generator_config.yaml                 WorkerConfig of the rank-1 row, deployment totals
      {agg,disagg}/top1/k8s_deploy.yaml, k8s_bench.yaml       Dynamo DGD and AIPerf Job it generates (kept with
                                                              --aic-save-dir, not used here)

How AIConfigurator chooses (aiconfigurator.sdk.picking.pick_default and cli.main._execute_tasks, 0.12.0): TTFT is
enforced during the sweep; per mode it keeps the best configuration of each parallel layout whose TPOT meets the
target, ranks them by tokens/s/gpu_cluster (output tokens/s of as many replicas as fit the GPU budget, divided by the
whole budget; ties by tokens/s/user) and chooses the mode whose rank-1 row is highest ("Best Experiment Chosen").
We use that choice. One guard: when no configuration of a mode meets the TPOT target, AIConfigurator falls back to
the "closest" ones instead of failing; such rows are marked meetsSla: false and are never chosen.
"""
import csv
import importlib.metadata
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

import yaml

from ncp.cli_exit import BadInput
from ncp.plan.sizing_file import (AIC_MODES, Alternatives, Candidate, Estimates, Selection, SizingFileError,
                                  SizingRequest, SizingResult, Tool, SizedGroup, load_sizing)

__all__ = ["run_sizing", "write_sizing", "load_sizing", "check_request", "aiconfigurator_argv", "rerun_command",
           "SizingInputError", "NoFeasibleConfigError", "SizingToolError", "SizingFileError"]

DEFAULT_TIMEOUT_S = 900
TOP_N = 5
SAVE_DIR_PLACEHOLDER = "<save-dir>"
RANKING = ("AIConfigurator enforces TTFT during its sweep, keeps per mode the best configuration of each parallel "
           "layout whose TPOT meets the target, ranks them by tokens/s/gpu_cluster (output tokens/s of all replicas "
           "that fit the GPU budget divided by the budget; ties by tokens/s/user) and chooses the mode whose rank-1 "
           "configuration is highest")


class SizingInputError(BadInput):
    """The request cannot be sized: unknown model/system, or a combination AIConfigurator does not support."""


class NoFeasibleConfigError(Exception):
    """AIConfigurator found no configuration meeting the SLA within the GPU budget."""


class SizingToolError(RuntimeError):
    """AIConfigurator failed for another reason, or its outputs are not what this parser knows."""


def aiconfigurator_version() -> str:
    return importlib.metadata.version("aiconfigurator")


def _num(value: float) -> str:
    return f"{value:g}"


def check_request(request: SizingRequest) -> None:
    """Fail fast, before the sweep, on what AIConfigurator cannot size offline."""
    from aiconfigurator.cli.api import cli_support
    from aiconfigurator.sdk import common

    if request.system not in common.SupportedSystems:
        raise SizingInputError(f"system {request.system!r} is not an AIConfigurator {aiconfigurator_version()} system; "
                               f"use one of: {', '.join(sorted(common.SupportedSystems))}")
    if request.model not in common.DefaultHFModels:
        raise SizingInputError(
            f"model {request.model!r} is not bundled with AIConfigurator {aiconfigurator_version()} (its config would "
            "be downloaded from the Hugging Face Hub, which sizing never does); use one of: "
            f"{', '.join(sorted(common.DefaultHFModels))}")
    support = cli_support(request.model, request.system, backend=request.backend,
                          backend_version=request.backend_version)
    wanted = {"auto": support.agg_supported or support.disagg_supported, "agg": support.agg_supported,
              "disagg": support.disagg_supported}[request.serving_mode]
    if not wanted:
        version = f" {request.backend_version}" if request.backend_version else ""
        raise SizingInputError(
            f"AIConfigurator {aiconfigurator_version()} does not support {request.model} on {request.system} with "
            f"{request.backend}{version} (agg: {support.agg_supported}, disagg: {support.disagg_supported}); check "
            f"`aiconfigurator cli support --model-path {request.model} --system {request.system} --backend "
            f"{request.backend}` and pick another backend, backend version or system")


def aiconfigurator_argv(request: SizingRequest, save_dir: str, top_n: int = TOP_N) -> list[str]:
    """`aiconfigurator` arguments for the request (after the program name)."""
    argv = ["cli", "default", "--model-path", request.model, "--system", request.system, "--backend", request.backend,
            "--total-gpus", str(request.total_gpus), "--isl", str(request.isl), "--osl", str(request.osl),
            "--ttft", _num(request.ttft_ms), "--tpot", _num(request.tpot_ms)]
    if request.backend_version:
        argv += ["--backend-version", request.backend_version]
    if request.serving_mode != "auto":
        argv += ["--serving-mode", request.serving_mode]
    return argv + ["--top-n", str(top_n), "--no-color", "--save-dir", save_dir]


def rerun_command(request: SizingRequest, out: str) -> str:
    """The `ncp sizing` command that (re)generates a sizing file for the request."""
    argv = ["ncp", "sizing", "--model", request.model, "--system", request.system, "--backend",
            request.backend, "--total-gpus", str(request.total_gpus), "--isl", str(request.isl), "--osl",
            str(request.osl), "--ttft", _num(request.ttft_ms), "--tpot", _num(request.tpot_ms)]
    if request.backend_version:
        argv += ["--backend-version", request.backend_version]
    if request.serving_mode != "auto":
        argv += ["--serving-mode", request.serving_mode]
    return shlex.join(argv + ["--out", str(out)])


def _messages(log: str, levels: str = "EW") -> list[str]:
    """AIConfigurator log lines of the given levels, without timestamp and source location."""
    found = []
    for line in log.splitlines():
        match = re.match(rf"^\S+ \[aiconfigurator\] \[([{levels}])\] \[[^\]]*\] (.*)$", line.strip())
        if match and "deprecated AIConfigurator distribution" not in match.group(2):
            found.append(match.group(2).strip())
    return found


def run_sizing(request: SizingRequest, *, timeout: float = DEFAULT_TIMEOUT_S, keep_dir: Optional[Path] = None,
               top_n: int = TOP_N) -> SizingResult:
    """Run `aiconfigurator cli default` for the request and return its choice.

    Raises SizingInputError (bad request), NoFeasibleConfigError (nothing meets the SLA within the budget) or
    SizingToolError (AIConfigurator failed otherwise). keep_dir, if given, receives a copy of AIConfigurator's outputs.
    """
    check_request(request)
    with tempfile.TemporaryDirectory(prefix="aiconfigurator-") as tmp:
        argv = aiconfigurator_argv(request, tmp, top_n)
        # Bundled model configs and perf data only: never reach for the Hugging Face Hub.
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MPLBACKEND": "Agg"}
        try:
            proc = subprocess.run([sys.executable, "-m", "aiconfigurator.main", *argv], capture_output=True,
                                  text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise SizingToolError(f"aiconfigurator did not finish within {timeout:g} s") from None
        log = proc.stdout + "\n" + proc.stderr
        command = shlex.join(["aiconfigurator", *argv[:-1], SAVE_DIR_PLACEHOLDER])
        if proc.returncode != 0:
            _raise_failure(request, proc.returncode, log)
        if keep_dir is not None:
            shutil.copytree(tmp, keep_dir, dirs_exist_ok=True)
        return parse_outputs(request, Path(tmp), log, command)


def _raise_failure(request: SizingRequest, returncode: int, log: str) -> None:
    problems = _messages(log)
    infeasible = ("no parallel configuration met", "No successful experiment runs", "returned no results",
                  "no SLA-feasible configuration")
    if any(marker in message for marker in infeasible for message in problems):
        details = "; ".join(m for m in problems if m.startswith(("Experiment", "No successful", "  -> Experiment",
                                                                   "-> Experiment", "Skipping")))
        raise NoFeasibleConfigError(
            f"AIConfigurator found no configuration of {request.model} on {request.total_gpus} x {request.system} "
            f"({request.backend}) with TTFT <= {_num(request.ttft_ms)} ms and TPOT <= {_num(request.tpot_ms)} ms "
            f"at ISL {request.isl} / OSL {request.osl}. AIConfigurator said: {details}\n"
            "  fix: relax --ttft/--tpot, raise --total-gpus, or size a quantized variant of the model (e.g. -FP8)")
    tail = "\n".join(log.strip().splitlines()[-15:])
    raise SizingToolError(f"aiconfigurator exited with {returncode}:\n{tail}")


# ---- parsing AIConfigurator's saved outputs ------------------------------------------------------------------------

def _int(row: dict, key: str, default: int = 1) -> int:
    value = row.get(key)
    if value is None or value == "":
        return default
    number = float(value)
    return int(number) if number == number and number > 0 else default  # NaN or 0 -> default


def _float(row: dict, key: str) -> float:
    try:
        return float(row[key])
    except KeyError:
        raise SizingToolError(f"AIConfigurator's best_config_topn.csv has no column {key!r}") from None


def _group(row: dict, prefix: str, replicas: int) -> SizedGroup:
    tp, pp, dp, cp = (_int(row, f"{prefix}{dim}") for dim in ("tp", "pp", "dp", "cp"))
    return SizedGroup(replicas=replicas, gpus_per_worker=tp * pp * dp * cp, tensor_parallel=tp, pipeline_parallel=pp,
                       data_parallel=dp, moe_tensor_parallel=_int(row, f"{prefix}moe_tp"),
                       expert_parallel=_int(row, f"{prefix}moe_ep"), max_batch_size=_int(row, f"{prefix}bs"),
                       memory_gb_per_gpu=_positive(row, f"{prefix}memory"))


def _positive(row: dict, key: str) -> Optional[float]:
    """A positive number from an optional column (AIConfigurator's per-GPU memory estimate, GB), else None."""
    try:
        value = float(row.get(key) or 0)
    except ValueError:
        return None
    return round(value, 2) if value > 0 else None


class _Row:
    """One best_config_topn.csv row, converted from per-replica values to deployment totals."""

    def __init__(self, mode: str, rank: int, row: dict, request: SizingRequest):
        self.mode, self.rank, self.row = mode, rank, row
        self.gpus_per_replica = _int(row, "num_total_gpus", 0)
        if self.gpus_per_replica < 1:
            raise SizingToolError(f"{mode}/best_config_topn.csv row {rank} has no num_total_gpus")
        self.replicas = request.total_gpus // self.gpus_per_replica
        if mode == "agg":
            self.groups = {"workers": _group(row, "", max(self.replicas, 1))}
            per_replica = self.groups["workers"].gpus_per_worker
            self.layout = f"{self.replicas} x {row.get('parallel', '?')}"
        else:
            prefill_workers, decode_workers = _int(row, "(p)workers"), _int(row, "(d)workers")
            self.groups = {"prefill": _group(row, "(p)", prefill_workers * max(self.replicas, 1)),
                           "decode": _group(row, "(d)", decode_workers * max(self.replicas, 1))}
            per_replica = (prefill_workers * self.groups["prefill"].gpus_per_worker
                           + decode_workers * self.groups["decode"].gpus_per_worker)
            self.layout = (f"{self.replicas} x ({prefill_workers}P {row.get('(p)parallel', '?')} + "
                           f"{decode_workers}D {row.get('(d)parallel', '?')})")
        if per_replica != self.gpus_per_replica:
            raise SizingToolError(f"{mode}/best_config_topn.csv row {rank}: workers use {per_replica} GPUs per replica "
                                  f"but num_total_gpus is {self.gpus_per_replica}")
        self.gpus_used = self.replicas * self.gpus_per_replica
        self.ttft, self.tpot = _float(row, "ttft"), _float(row, "tpot")
        if "tokens/s/gpu_cluster" in row:
            self.tokens_per_gpu = _float(row, "tokens/s/gpu_cluster")
        else:  # AIConfigurator's own formula (pick_default)
            self.tokens_per_gpu = _float(row, "tokens/s/gpu") * self.gpus_used / request.total_gpus
        self.meets_sla = (self.replicas >= 1 and self.ttft <= request.ttft_ms and self.tpot <= request.tpot_ms)

    def candidate(self) -> Candidate:
        return Candidate(rank=self.rank, layout=self.layout, gpus_used=self.gpus_used,
                         tokens_per_second_per_gpu=round(self.tokens_per_gpu, 3),
                         tokens_per_second_per_user=round(_float(self.row, "tokens/s/user"), 3),
                         ttft_ms=round(self.ttft, 3), tpot_ms=round(self.tpot, 3),
                         concurrency=int(round(_float(self.row, "concurrency"))) * self.replicas,
                         meets_sla=self.meets_sla)

    def estimates(self) -> Estimates:
        return Estimates(ttft_ms=round(self.ttft, 3), tpot_ms=round(self.tpot, 3),
                         request_latency_ms=round(_float(self.row, "request_latency"), 3),
                         tokens_per_second_per_gpu=round(self.tokens_per_gpu, 3),
                         tokens_per_second_per_user=round(_float(self.row, "tokens/s/user"), 3),
                         tokens_per_second=round(_float(self.row, "tokens/s") * self.replicas, 3),
                         requests_per_second=round(_float(self.row, "request_rate") * self.replicas, 3),
                         concurrency=int(round(_float(self.row, "concurrency"))) * self.replicas)


def _run_dir(save_dir: Path) -> Path:
    runs = sorted({csv_path.parent.parent for csv_path in save_dir.rglob("best_config_topn.csv")})
    if len(runs) != 1:
        raise SizingToolError(f"expected one AIConfigurator result directory under {save_dir}, found {len(runs)}")
    return runs[0]


def _read_rows(run_dir: Path, mode: str, request: SizingRequest) -> list[_Row]:
    path = run_dir / mode / "best_config_topn.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [_Row(mode, rank, row, request) for rank, row in enumerate(csv.DictReader(handle), start=1)]


def _not_evaluated(mode: str, request: SizingRequest, log: str) -> str:
    if request.serving_mode not in ("auto", mode):
        return f"not requested (--serving-mode {request.serving_mode})"
    for message in _messages(log):
        if re.search(rf"\b{mode}\b", message) and ("Skipping" in message or "Experiment" in message):
            return message
    return "AIConfigurator wrote no results for this mode"


def _check_generator_config(run_dir: Path, mode: str, chosen: _Row) -> None:
    """Cross-check the chosen row with the WorkerConfig AIConfigurator generated for its rank-1 configuration."""
    path = run_dir / mode / "top1" / "generator_config.yaml"
    if chosen.rank != 1 or not path.is_file():
        return
    workers = (yaml.safe_load(path.read_text()) or {}).get("WorkerConfig") or {}
    roles = {"workers": "agg", "prefill": "prefill", "decode": "decode"}
    for name, group in chosen.groups.items():
        expected = (workers.get(f"{roles[name]}_workers"), workers.get(f"{roles[name]}_gpus_per_worker"))
        if expected != (group.replicas, group.gpus_per_worker):
            raise SizingToolError(f"{path}: WorkerConfig says {roles[name]} workers/GPUs per worker {expected}, "
                                  f"best_config_topn.csv rank 1 gives {(group.replicas, group.gpus_per_worker)}")


def parse_outputs(request: SizingRequest, save_dir: Path, log: str, command: str) -> SizingResult:
    """Build the SizingResult from AIConfigurator's saved outputs (and its printed choice)."""
    run_dir = _run_dir(save_dir)
    rows = {mode: _read_rows(run_dir, mode, request) for mode in AIC_MODES}
    best = {mode: found[0] for mode, found in rows.items() if found}
    if not best:
        raise NoFeasibleConfigError(f"AIConfigurator ranked no configuration of {request.model} on "
                                    f"{request.total_gpus} x {request.system} ({run_dir} has empty result tables)")
    printed = re.search(r"Best Experiment Chosen:\s*(\w+)", log)
    if printed and printed.group(1) in best:
        aic_choice = printed.group(1)
    else:  # same rule as cli.main._execute_tasks: max() over modes in agg, disagg order
        aic_choice = max(best, key=lambda mode: best[mode].tokens_per_gpu)
    chosen, note = best[aic_choice], None
    if not chosen.meets_sla:
        feasible = [row for row in best.values() if row.meets_sla]
        if not feasible:
            closest = min(best.values(), key=lambda row: row.tpot)
            raise NoFeasibleConfigError(
                f"AIConfigurator found no configuration of {request.model} on {request.total_gpus} x {request.system} "
                f"({request.backend}) that meets TTFT <= {_num(request.ttft_ms)} ms and TPOT <= "
                f"{_num(request.tpot_ms)} ms at ISL {request.isl} / OSL {request.osl}; the closest "
                f"({AIC_MODES[closest.mode]} {closest.layout}) has TTFT {closest.ttft:.1f} ms, TPOT "
                f"{closest.tpot:.1f} ms\n  fix: relax --ttft/--tpot, raise --total-gpus, or size a quantized variant")
        chosen = max(feasible, key=lambda row: row.tokens_per_gpu)
        note = (f"AIConfigurator's choice ({AIC_MODES[aic_choice]}) has only configurations that miss the SLA (its "
                f"closest-match fallback); the best SLA-meeting {AIC_MODES[chosen.mode]} configuration is used")
    _check_generator_config(run_dir, chosen.mode, chosen)
    version_key = "version" if chosen.mode == "agg" else "(d)version"
    return SizingResult(
        request=request,
        tool=Tool(version=aiconfigurator_version(), perf_database_version=str(chosen.row.get(version_key, "unknown"))),
        command=command,
        mode=AIC_MODES[chosen.mode],
        **chosen.groups,
        estimates=chosen.estimates(),
        selection=Selection(
            ranking=RANKING, aiconfigurator_choice=AIC_MODES[aic_choice], chosen_rank=chosen.rank,
            best_aggregated_tokens_per_second_per_gpu=round(best["agg"].tokens_per_gpu, 3) if "agg" in best else None,
            best_disaggregated_tokens_per_second_per_gpu=(round(best["disagg"].tokens_per_gpu, 3)
                                                          if "disagg" in best else None),
            note=note),
        alternatives=Alternatives(
            aggregated=[row.candidate() for row in rows["agg"]],
            disaggregated=[row.candidate() for row in rows["disagg"]],
            not_evaluated={AIC_MODES[mode]: _not_evaluated(mode, request, log)
                           for mode in AIC_MODES if not rows[mode]}),
    )


# ---- the sizing file -----------------------------------------------------------------------------------------------

def write_sizing(result: SizingResult, path) -> Path:
    """Write the result as YAML (camelCase keys) under a header saying how it was made and how to re-make it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# Generated by `ncp sizing` from AIConfigurator {result.tool.version} "
              f"(perf database {result.tool.perf_database_version}); do not edit by hand.\n"
              f"# Re-run: {rerun_command(result.request, _display(path))}\n"
              f"# AIConfigurator chose {result.mode}: {result.total_gpus_used()} of {result.request.total_gpus} GPUs, "
              f"est. TTFT {result.estimates.ttft_ms:g} ms, TPOT {result.estimates.tpot_ms:g} ms, "
              f"{result.estimates.tokens_per_second_per_gpu:g} tokens/s/GPU.\n")
    body = yaml.safe_dump(result.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=False,
                          width=4096)
    path.write_text(header + body)
    return path


def _display(path: Path) -> str:
    """The path as written in the re-run command: relative to the project root when inside it."""
    root = Path(__file__).resolve().parents[2]
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return str(path)
