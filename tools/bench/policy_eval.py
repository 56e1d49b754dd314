"""Benchmark: evaluate the CrossGuard pack (every resource and stack policy, prod pack config) over a synthetic site
of at least 1,000 recorded resources, through the same pulumi-policy analyzer path as `ncp check`.

    .venv/bin/python tools/bench/policy_eval.py [--tenants 60] [--repeat 5]

Target (issue): at most 2 s on this machine for >= 1,000 resources."""
import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> int:
    from ncp.offline.policy_check import PACK_DIR, evaluate, read_pack_config
    from ncp.readmodel.recorder import run_program
    from tests.support.synthetic import secret_keys, site_config

    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=70)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    config = site_config("hgx-h200", "prod", tenants=args.tenants, gpu_nodes=max(16, args.tenants))
    recording = run_program(config, secret_keys(config), stack="bench")
    pack_config = read_pack_config(PACK_DIR / "config" / "prod.json")
    evaluate(recording, pack_config)  # warm-up: imports and first-use caches
    times: list[float] = []
    violations: list = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        _, _, violations = evaluate(recording, pack_config)
        times.append(time.perf_counter() - start)
    print(f"resources: {len(recording.resources)}  policies: 12  violations: {len(violations)}")
    print(f"evaluation seconds: best {min(times):.3f}  median {statistics.median(times):.3f}  "
          f"worst {max(times):.3f}  (target <= 2.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
