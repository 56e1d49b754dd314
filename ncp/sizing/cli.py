"""ncp sizing: size one endpoint with AIConfigurator and write its sizing file.

    ncp sizing --model Qwen/Qwen3-32B --system h200_sxm --backend trtllm --total-gpus 8 \\
        --isl 4000 --osl 500 --ttft 1000 --tpot 30 --out sites/prod/sizing/chat-dense.yaml

Exit codes: 0 written; 2 bad input, or no configuration meets the SLA within the GPU budget; 1 AIConfigurator failed.
"""
import argparse
import sys
import time
from pathlib import Path

from pydantic import ValidationError

from ncp.cli_exit import INTERNAL_ERROR
from ncp.plan.serving import backend_names
from ncp.plan.sizing_file import SizingRequest
from ncp.sizing.run import (DEFAULT_TIMEOUT_S, NoFeasibleConfigError, SizingInputError, SizingToolError, run_sizing,
                        write_sizing)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ncp sizing", description=__doc__.split("\n\n")[0],
                                epilog="Exit codes: 0 written; 2 bad input or no configuration meets the SLA within "
                                       "the budget; 3 AIConfigurator failed or an internal error (--debug: traceback).")
    p.add_argument("--model", required=True,
                   help="Hugging Face model id bundled with AIConfigurator, e.g. Qwen/Qwen3-32B")
    p.add_argument("--system", required=True, help="AIConfigurator system, e.g. h200_sxm, b200_sxm, l40s")
    p.add_argument("--backend", required=True, choices=backend_names())
    p.add_argument("--total-gpus", required=True, type=int, help="GPU budget")
    p.add_argument("--isl", required=True, type=int, help="input sequence length (tokens)")
    p.add_argument("--osl", required=True, type=int, help="output sequence length (tokens)")
    p.add_argument("--ttft", required=True, type=float, help="time-to-first-token SLA (ms)")
    p.add_argument("--tpot", required=True, type=float, help="time-per-output-token SLA (ms)")
    p.add_argument("--backend-version", help="AIConfigurator perf-database version (default: its current)")
    p.add_argument("--serving-mode", choices=["auto", "agg", "disagg"], default="auto",
                   help="auto (default) lets AIConfigurator compare agg and disagg; agg/disagg force one")
    p.add_argument("--out", required=True, type=Path, help="sizing file to write, e.g. sizing/<stack>/<endpoint>.yaml")
    p.add_argument("--aic-save-dir", type=Path,
                   help="also keep AIConfigurator's own outputs (CSV, DGD, bench Job) here")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds (default %(default)s)")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        request = SizingRequest(model=args.model, system=args.system, backend=args.backend,
                                total_gpus=args.total_gpus, isl=args.isl, osl=args.osl, ttft_ms=args.ttft,
                                tpot_ms=args.tpot, backend_version=args.backend_version,
                                serving_mode=args.serving_mode)
    except ValidationError as error:
        for e in error.errors():
            field = str(e["loc"][0]) if e["loc"] else ""
            flag = {"ttft_ms": "--ttft", "tpot_ms": "--tpot"}.get(field, "--" + field.replace("_", "-"))
            print(f"error: {flag}: {e['msg']}", file=sys.stderr)
        return 2
    # The sweep prints nothing until it ends: say what runs and how long it usually takes (the lab example took
    # 179 s on 2 cores under load: `ncp sizing --model Qwen/Qwen3-8B --system l40s ... --total-gpus 1`).
    print(f"sizing: AIConfigurator sweeps the parallel layouts of {request.model} on {request.system} for "
          f"{request.total_gpus} GPUs; usually a few minutes (the lab example: ~3 min on 2 busy cores), at most "
          f"--timeout {args.timeout:g} s", file=sys.stderr)
    started = time.monotonic()
    try:
        result = run_sizing(request, timeout=args.timeout, keep_dir=args.aic_save_dir)
    except (SizingInputError, NoFeasibleConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except SizingToolError as error:
        print(f"error: {error}", file=sys.stderr)
        return INTERNAL_ERROR
    path = write_sizing(result, args.out)
    groups = ", ".join(f"{role}: {g.replicas} x {g.gpus_per_worker} GPU (tp{g.tensor_parallel} pp{g.pipeline_parallel}"
                       f" ep{g.expert_parallel})" for role, g in result.groups().items())
    print(f"{path}: {result.mode}, {result.total_gpus_used()}/{request.total_gpus} GPUs ({groups}); est. TTFT "
          f"{result.estimates.ttft_ms:g} ms, TPOT {result.estimates.tpot_ms:g} ms, "
          f"{result.estimates.tokens_per_second_per_gpu:g} tokens/s/GPU (sized in {time.monotonic() - started:.0f} s)")
    return 0
