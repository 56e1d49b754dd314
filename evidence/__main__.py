"""Write acceptance evidence for a stack from one run's outputs.

    python -m evidence --stack prod --outputs <dir> --cache-state warm [--evidence-dir <dir | s3://bucket/prefix>]
                       [--index <file | s3://bucket/key>]

Reads the validation suite's JUnit XML (<outputs>/validation/*.xml) and each endpoint's AIPerf artifact directory
(<outputs>/<endpoint>/), judges each endpoint by its thresholds, writes one record per endpoint (JSON + Markdown)
to the evidence location (default: the stack's validationEvidence.path, a local path or an S3-compatible bucket)
and appends it to the evidence index the prod promotion gate reads (default: index.yaml in the bucket when the
evidence is in one, else evidence/index.yaml).
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
from evidence.store import S3, S3Store, StoreError, open_store
from offline.recorder import run_stack_file
from plan.catalog import ROOT
from plan.errors import ConfigError
from plan.sources import plan_from_stack_file


def evidence_store(args, site_plan):
    """--evidence-dir, else the stack's validationEvidence.path: a local path (project-relative) or s3://."""
    if args.evidence_dir:
        return open_store(args.evidence_dir)
    configured = site_plan.site.validation_evidence
    if configured is None:
        raise OutputsError(f"Pulumi.{args.stack}.yaml: ncp-inference:site.validationEvidence.path is not set\n"
                           "  fix: set it, or pass --evidence-dir")
    if configured.path.startswith(S3):
        return open_store(configured.path)
    if "://" in configured.path:
        raise OutputsError(f"Pulumi.{args.stack}.yaml: validationEvidence.path {configured.path}: only local paths "
                           "and s3:// buckets are supported\n  fix: use an S3-compatible bucket or a local path")
    return open_store(ROOT / configured.path)


def index_location(args, store) -> str:
    """--index, else the store's own index.yaml when the evidence is in a bucket, else the committed index."""
    if args.index:
        return str(args.index)
    return store.location("index.yaml") if isinstance(store, S3Store) else str(INDEX_FILE)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evidence", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--outputs", required=True, type=Path, help="the run's outputs directory")
    parser.add_argument("--cache-state", required=True, choices=["cold", "warm"],
                        help="model cache state when the benchmark ran")
    parser.add_argument("--evidence-dir", help="local directory or s3://bucket/prefix")
    parser.add_argument("--index", help="evidence index file or s3:// object (default: the bucket's index.yaml "
                                         "when the evidence is in a bucket, else evidence/index.yaml)")
    parser.add_argument("--run-id")
    args = parser.parse_args(argv)
    try:
        site_plan = plan_from_stack_file(args.stack)
        target = evidence_store(args, site_plan)
        versions = run_stack_file(args.stack).outputs["versions"]
        records = build_records(args.stack, site_plan, versions, args.outputs, args.cache_state, args.run_id)
    except (ConfigError, pulumi.RunError, OutputsError, ExportError, StoreError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    index = index_location(args, target)
    for record in records:
        try:
            path = write_record(record, target)
            append_index(index_entry(record, path), index)
        except StoreError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"{record.endpoint}: {'PASSED' if record.passed else 'FAILED'} "
              f"{', '.join(record.failing_layers)} -> {path} (+ .md)".replace("  ", " "))
    return 0 if all(r.passed for r in records) else 1


if __name__ == "__main__":
    sys.exit(run_command(main))
