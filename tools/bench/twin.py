"""Serving-twin figures: how long the rendered chat-dense graph (prod) takes to serve from a cold start, and what a
200-request run of its rendered AIPerf command measures through it (TTFT, ITL, output throughput), cold and warm.

    .venv/bin/python tools/bench/twin.py [--requests 200] [--out tools/bench/results/twin.json]

Cold: the first run on a freshly started twin, without AIPerf's warm-up requests. Warm: a second run on the same
twin with the rendered warm-up. The mocker engine's timings model the backend (speedup ratio 1), so the latencies are
the mocker's, not a GPU's; what the figures show is the twin's own overhead on a CI machine (2 cores).
Target: the twin serves within 120 s of start (the CI budget per twin test). Exit 0 met, 1 missed, 2/3 errors."""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ncp.cli_exit import run_command  # noqa: E402
from ncp.readmodel.recorder import run_stack_file  # noqa: E402
from ncp.plan.catalog import ROOT, load_dynamo_runtime  # noqa: E402
from ncp.plan.names import MODELS_MOUNT  # noqa: E402
from ncp.twin.graph import PortPool, graph_processes  # noqa: E402
from ncp.twin.run import Twin, synthesise_models, twin_python  # noqa: E402

ENDPOINT, STACK, READY_TARGET_S = "chat-dense", "prod", 120.0
METRICS = {"time_to_first_token": ("p50", "p95"), "inter_token_latency": ("p50", "p95"),
           "output_token_throughput": ("avg",), "request_throughput": ("avg",)}


def _aiperf(argv: list[str], twin: Twin, models: Path, out: Path, requests: int, warmup: bool) -> dict:
    values = {"--url": twin.url, "--artifact-dir": str(out), "--request-count": str(requests),
              "--tokenizer": str(models / argv[argv.index("--tokenizer") + 1][len(MODELS_MOUNT) + 1:])}
    argv = list(argv)
    for flag, value in values.items():
        argv[argv.index(flag) + 1] = value
    if not warmup:  # aiperf refuses a count of 0: the cold run drops the flag
        at = argv.index("--warmup-request-count")
        del argv[at:at + 2]
    started = time.monotonic()
    result = subprocess.run([str(Path(sys.executable).parent / "aiperf"), *argv[1:]], capture_output=True, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", "HOME": str(out)}, cwd=out, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"aiperf exited {result.returncode}:\n{result.stdout[-1500:]}\n{result.stderr[-1500:]}")
    export = json.loads((out / "profile_export_aiperf.json").read_text())
    figures = {f"{tag}.{stat}": export[tag][stat] for tag, stats in METRICS.items() for stat in stats if tag in export}
    return {**figures, "seconds": round(time.monotonic() - started, 1),
            "errors": export.get("error_request_count", {}).get("avg", 0)}


def measure(requests: int) -> dict:
    recording = run_stack_file(STACK)
    graph = next(r.inputs for r in recording.custom_resources("DynamoGraphDeployment")
                 if r.inputs["metadata"]["name"] == ENDPOINT)
    config = next(r.inputs for r in recording.resources if r.inputs.get("kind") == "ConfigMap"
                  and r.inputs["metadata"]["name"] == f"{ENDPOINT}-acceptance")
    argv = json.loads(config["data"]["command.json"])
    with tempfile.TemporaryDirectory(prefix="ncp-twin-bench-") as tmp:
        root = Path(tmp)
        models = synthesise_models(root / "models", [argv[argv.index("--tokenizer") + 1]], MODELS_MOUNT)
        processes = graph_processes(graph, load_dynamo_runtime(), models, MODELS_MOUNT,
                                    PortPool(int(os.environ.get("NCP_TWIN_PORT_BASE", "21000"))),
                                    python=twin_python())
        model = argv[argv.index("--model") + 1]
        with Twin(processes, root / "twin") as twin:
            ready = twin.wait_for_model(model)
            (root / "cold").mkdir()
            cold = _aiperf(argv, twin, models, root / "cold", requests, warmup=False)
            (root / "warm").mkdir()
            warm = _aiperf(argv, twin, models, root / "warm", requests, warmup=True)
    return {"endpoint": ENDPOINT, "stack": STACK, "requests": requests, "ready_seconds": round(ready, 1),
            "workload": {flag: argv[argv.index(flag) + 1] for flag in ("--isl", "--osl", "--concurrency")},
            "cold": cold, "warm": warm}


def parse(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "tools" / "bench" / "results" / "twin.json")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse(argv)
    figures = measure(args.requests)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures, indent=1))
    return 0 if figures["ready_seconds"] <= READY_TARGET_S else 1


if __name__ == "__main__":
    sys.exit(run_command(main))
