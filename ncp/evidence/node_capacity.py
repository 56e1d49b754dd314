"""Capacity follows health (`ncp node capacity`, implemented by `main`): which tenants' guaranteed GPU quotas the
healthy GPU nodes no longer cover, now that some are out of service.

    ncp node capacity --stack prod [--kubeconfig <file>] [--context <name>]

A GPU node is out while it is cordoned or carries NVSentinel's quarantine taint or the gate's hold taint. A tenant
with a dedicated node pool is short when its pool's healthy GPUs fall below its quota; the tenants sharing the other
GPU nodes are short together when those nodes' healthy GPUs fall below the sum of their quotas. The profile's spare
policy says how many spare nodes each pool and the shared nodes keep, and what the operator does beyond them. The
same report is kept in every return-to-service and handover record.
Exit codes: 0 every quota covered; 1 a tenant is short; 2 bad input (config, kubeconfig); 3 an internal error.
"""
import argparse
import sys
from typing import Callable, Optional, Sequence

from ncp.cli_exit import BAD_INPUT, FAILED_GATE, OK, run_command
from ncp.cluster_api import KubeError, add_arguments, connect_from
from ncp.plan.capacity import capacity_report, render, short_tenants
from ncp.plan.errors import ConfigError
from ncp.plan.sources import plan_from_stack_file


def main(argv: Optional[Sequence[str]] = None, say: Callable[[str], None] = print) -> int:
    return run_command(lambda arguments: _main(arguments, say), argv)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ncp node capacity", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    add_arguments(parser)
    return parser


def _main(argv: Optional[Sequence[str]], say: Callable[[str], None]) -> int:
    args = _parser().parse_args(argv)
    try:
        plan = plan_from_stack_file(args.stack)
        nodes = connect_from(args).nodes()
    except (ConfigError, KubeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return BAD_INPUT
    rows = capacity_report(plan, nodes)
    say(render(rows, plan.profile.tenancy.spare_policy.action))
    return FAILED_GATE if short_tenants(rows) else OK
