"""Benchmark: compose synthetic sites of 1, 10 and 100 tenants under Pulumi mocks and compare with a plain loop
that registers the same resources with pulumi-kubernetes directly under the same mocks.

    .venv/bin/python tools/bench/compose_scaling.py [--tenants 1 10 100] [--repeat 3]

Targets (issue): linear in tenants; at most 1.5x the plain loop at 100 tenants (exit 1 when the ratio at the largest
tenant count is over it). Each measurement runs in a fresh process so peak memory (ru_maxrss) is per run."""
import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tools.bench.plain import register_plain  # noqa: E402
from ncp.cli_exit import FAILED_GATE, OK  # noqa: E402

TARGET_RATIO = 1.5


def site(tenants: int) -> dict:
    from tests.support.synthetic import site_config

    config = site_config("hgx-h200", "prod", tenants=tenants, gpu_nodes=max(16, tenants))
    return config


def measure(mode: str, tenants: int) -> dict:
    from ncp.readmodel.recorder import run_program
    from tests.support.synthetic import secret_keys

    config = site(tenants)
    if mode == "program":
        run_program(config, secret_keys(config), stack="bench-warmup")  # same warm imports as the plain loop gets
        start = time.perf_counter()
        recording = run_program(config, secret_keys(config), stack="bench")
        seconds = time.perf_counter() - start
        count = len(recording.resources)
    else:
        reference = run_program(config, secret_keys(config), stack="bench")
        recorded = [{"type": r.type, "name": r.name, "inputs": r.inputs} for r in reference.resources if r.custom]
        start = time.perf_counter()
        recording = run_program({}, set(), stack="bench-plain", program=lambda: register_plain(recorded))
        seconds = time.perf_counter() - start
        count = len(recording.resources)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"mode": mode, "tenants": tenants, "resources": count, "seconds": round(seconds, 3),
            "peak_mib": round(peak_mib, 1)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "TENANTS"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], int(args.child[1]))))
        return 0
    rows = []
    for tenants in args.tenants:
        for mode in ("program", "plain"):
            runs = [json.loads(subprocess.run([sys.executable, __file__, "--child", mode, str(tenants)], check=True,
                                              capture_output=True, text=True, cwd=ROOT).stdout)
                    for _ in range(args.repeat)]
            best = min(runs, key=lambda r: r["seconds"])
            rows.append(best)
    print(f"{'tenants':>7} {'mode':>8} {'resources':>9} {'seconds':>8} {'peak MiB':>9}")
    for row in rows:
        print(f"{row['tenants']:>7} {row['mode']:>8} {row['resources']:>9} {row['seconds']:>8.3f} "
              f"{row['peak_mib']:>9.1f}")
    by = {(r["mode"], r["tenants"]): r for r in rows}
    ratios = {}
    for tenants in args.tenants:
        ratios[tenants] = by[("program", tenants)]["seconds"] / by[("plain", tenants)]["seconds"]
        print(f"program/plain at {tenants} tenants: {ratios[tenants]:.2f}x")
    if len(args.tenants) >= 2:
        lo, hi = min(args.tenants), max(args.tenants)
        per_lo = by[("program", lo)]["seconds"] / by[("program", lo)]["resources"]
        per_hi = by[("program", hi)]["seconds"] / by[("program", hi)]["resources"]
        print(f"seconds per resource: {per_lo * 1000:.2f} ms at {lo} tenants, {per_hi * 1000:.2f} ms at {hi}")
    largest = max(args.tenants)
    if ratios[largest] > TARGET_RATIO:
        print(f"target missed: {ratios[largest]:.2f}x the plain loop at {largest} tenants (target <= {TARGET_RATIO}x)")
        return FAILED_GATE
    return OK


if __name__ == "__main__":
    sys.exit(main())
