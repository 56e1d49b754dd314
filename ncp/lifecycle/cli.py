"""Upgrade plan between two revisions of the compatibility matrix.

    ncp upgrade-plan --stack prod --from <git revision> [--to <git revision>]

Reads data/compatibility-matrix.yaml at each git revision (--to defaults to the working tree) and prints the ordered
upgrade plan for the stack: changed charts in install order with their CRD step, node impact of a driver change,
DGD rolling updates and the re-benchmark they trigger, and the rollback per layer.
Exit codes: 0 printed; 2 bad input (unknown revision, invalid matrix or stack); 3 internal error.
"""
import argparse
import subprocess
import sys

import pulumi
import yaml
from pydantic import ValidationError

from ncp.lifecycle.upgrade import render, upgrade_plan
from ncp.readmodel.recorder import run_stack_file
from ncp.plan.catalog import MATRIX_FILE, ROOT, CompatibilityMatrix
from ncp.plan.errors import ConfigError
from ncp.plan.sources import plan_from_stack_file
from ncp.cli_exit import BadInput


class RevisionError(BadInput):
    pass


def matrix_at(revision) -> CompatibilityMatrix:
    if revision is None:
        text = MATRIX_FILE.read_text()
    else:
        relative = MATRIX_FILE.relative_to(ROOT).as_posix()
        shown = subprocess.run(["git", "show", f"{revision}:{relative}"], cwd=ROOT, capture_output=True, text=True)
        if shown.returncode != 0:
            raise RevisionError(f"{revision}: no {relative} at that revision ({shown.stderr.strip()})\n"
                                "  fix: pass a commit, tag or branch of this repository")
        text = shown.stdout
    try:
        return CompatibilityMatrix.model_validate(yaml.safe_load(text))
    except (yaml.YAMLError, ValidationError) as error:
        raise RevisionError(f"{revision or 'working tree'}: the matrix is invalid "
                            f"({str(error).splitlines()[0]})") from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ncp upgrade-plan", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--from", dest="old", required=True, help="git revision of the deployed matrix")
    parser.add_argument("--to", dest="new", help="git revision of the target matrix (default: working tree)")
    args = parser.parse_args(argv)
    try:
        old, new = matrix_at(args.old), matrix_at(args.new)
        site_plan = plan_from_stack_file(args.stack)
        steps = upgrade_plan(old, new, site_plan, run_stack_file(args.stack))
    except (RevisionError, ConfigError, pulumi.RunError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(render(steps, args.stack, args.old, args.new or "working tree"), end="")
    return 0
