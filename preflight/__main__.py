"""Preflight a live cluster before `pulumi up`.

    python -m preflight --stack prod --kubeconfig <file>

Checks the Kubernetes version against the compatibility matrix and the stack, the CRDs the site must provide (custom
resources the program creates that no chart of the stack installs), the storage classes of every tier, the GPU nodes
(profile product label, count) and the topology labels on each. Prints every miss with its fix. Rails (NIC
interfaces) are not visible through the API and are not checked.
Exit codes: 0 ready; 1 a check missed; 2 bad input (config, kubeconfig, unreachable API server); 3 internal error.
"""
import argparse
import sys

import pulumi

from cli_exit import run_command
from kube_client import Kube, KubeError
from offline.recorder import run_stack_file
from plan.errors import ConfigError
from plan.sources import plan_from_stack_file
from preflight.checks import run_checks


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m preflight", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--kubeconfig", required=True)
    args = parser.parse_args(argv)
    try:
        site_plan = plan_from_stack_file(args.stack)
        results = run_checks(Kube(args.kubeconfig), site_plan, run_stack_file(args.stack))
    except (ConfigError, pulumi.RunError, KubeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for check, misses in results.items():
        print(f"{'MISS' if misses else 'ok  '}  {check}")
        for miss in misses:
            print(f"      {miss.problem}\n      fix: {miss.fix}")
    total = sum(len(m) for m in results.values())
    print(f"stack {args.stack}: {'ready for pulumi up' if not total else f'{total} misses'}", file=sys.stderr)
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(run_command(main))
