"""Preflight a live cluster before `pulumi up`.

    ncp preflight --stack prod [--kubeconfig <file>] [--context <name>]

Checks the Kubernetes version against the compatibility matrix and the stack, the CRDs the site must provide (custom
resources the program creates that no chart of the stack installs), the storage classes of every tier, the GPU nodes
(profile product label, count) and the topology labels on each, and the admission the tenancy design relies on
(PodNodeSelector, proved by a dry-run pod it must refuse in a short-lived probe namespace; ValidatingAdmissionPolicy
served), that the site's gateway namespace restricts egress and cannot reach the cloud metadata service, and that
the site's Prometheus confines tenants' monitors (enforcedNamespaceLabel, ignoreNamespaceSelectors, no file access).
Prints every miss with its fix. Rails (NIC interfaces) are not visible through the API and are not checked.
Exit codes: 0 ready; 1 a check missed; 2 bad input (config, kubeconfig, unreachable API server); 3 internal error.
"""
import argparse
import sys

import pulumi

from ncp.cluster_api import KubeError, add_arguments, connect_from
from ncp.readmodel.recorder import run_stack_file
from ncp.plan.errors import ConfigError
from ncp.plan.sources import plan_from_stack_file
from ncp.preflight.checks import run_checks


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ncp preflight", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        site_plan = plan_from_stack_file(args.stack)
        results = run_checks(connect_from(args), site_plan, run_stack_file(args.stack))
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
