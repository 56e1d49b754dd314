"""Write acceptance evidence for a stack from one run's outputs.

    python -m evidence --stack prod --outputs <dir> --cache-state warm [--evidence-dir <dir>] [--index <file>]

Reads the validation suite's JUnit XML (<outputs>/validation/*.xml) and each endpoint's AIPerf artifact directory
(<outputs>/<endpoint>/), judges each endpoint by its thresholds, writes one record per endpoint (JSON + Markdown)
to the evidence directory (default: the stack's validationEvidence.path when it is a local path) and appends it to
the evidence index the prod promotion gate reads (default evidence/index.yaml).
Exit codes: 0 every endpoint passed; 1 an endpoint failed; 2 bad input (config, outputs, evidence location);
3 an internal error.
"""
import argparse
import sys
from pathlib import Path

import pulumi

from acceptance.check import ExportError
from cli_exit import run_command
from evidence.collect import OutputsError, build_records
from evidence.record import INDEX_FILE, append_index, index_entry, write_record
from offline.recorder import run_stack_file
from plan.catalog import ROOT
from plan.errors import ConfigError
from plan.sources import plan_from_stack_file


def evidence_dir(args, site_plan) -> Path:
    if args.evidence_dir:
        return args.evidence_dir
    configured = site_plan.site.validation_evidence
    if configured is None:
        raise OutputsError(f"Pulumi.{args.stack}.yaml: ncp-inference:site.validationEvidence.path is not set\n"
                           "  fix: set it, or pass --evidence-dir")
    if "://" in configured.path:
        raise OutputsError(f"Pulumi.{args.stack}.yaml: validationEvidence.path {configured.path} is remote; this "
                           "command writes local paths only\n  fix: pass --evidence-dir and sync it to the bucket")
    return ROOT / configured.path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evidence", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--outputs", required=True, type=Path, help="the run's outputs directory")
    parser.add_argument("--cache-state", required=True, choices=["cold", "warm"],
                        help="model cache state when the benchmark ran")
    parser.add_argument("--evidence-dir", type=Path)
    parser.add_argument("--index", type=Path, default=INDEX_FILE)
    parser.add_argument("--run-id")
    args = parser.parse_args(argv)
    try:
        site_plan = plan_from_stack_file(args.stack)
        target = evidence_dir(args, site_plan)
        versions = run_stack_file(args.stack).outputs["versions"]
        records = build_records(args.stack, site_plan, versions, args.outputs, args.cache_state, args.run_id)
    except (ConfigError, pulumi.RunError, OutputsError, ExportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for record in records:
        path = write_record(record, target)
        append_index(index_entry(record, str(path)), args.index)
        print(f"{record.endpoint}: {'PASSED' if record.passed else 'FAILED'} "
              f"{', '.join(record.failing_layers)} -> {path} (+ .md)".replace("  ", " "))
    return 0 if all(r.passed for r in records) else 1


if __name__ == "__main__":
    sys.exit(run_command(main))
