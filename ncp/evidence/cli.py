"""Write, verify and compare acceptance evidence for a stack.

    ncp evidence write --stack prod --outputs <dir> --cache-state warm [--evidence-dir <dir | s3://bucket/prefix>]
                       [--index <file | s3://bucket/key>] [--run-id <id>]
    ncp evidence keygen --stack prod
    ncp evidence verify --stack prod [--index <file>] [--now <ISO time>]
    ncp evidence compare --stack prod --record <file | s3://...> [--index <file>]

Writing reads the validation suite's JUnit XML (<outputs>/validation/*.xml), each endpoint's and Triton service's
AIPerf artifact directory (<outputs>/<name>/, with its concurrency sweep) and the startup/failure inputs of the serving
twin (behaviour.py), judges each by its thresholds, and writes one record per endpoint or service (JSON signed
with the site key, Markdown, JUnit XML, CTRF JSON) to the evidence location (default: the stack's
validationEvidence.path, a local path or an S3-compatible bucket) and a signed entry, which expires after the kind's
validationEvidence.ttlDays, to the evidence index the prod promotion gate reads (default: index.yaml in the bucket
when the evidence is in one, else sites/<stack>/evidence/index.yaml).
`keygen` makes the site's signing key outside the repository and adds its public half to the trusted keys file;
`verify` checks every index entry as the gates do; `compare` holds a record against the last passed record of the
same key and fails on a regression beyond validationEvidence.regressionMarginPct.
Exit codes: 0 passed / verified / no regression; 1 an endpoint failed, an entry is refused, or a regression;
2 bad input (config, outputs, evidence location, signing key); 3 an internal error.
"""
import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import pulumi

from ncp.acceptance.check import ExportError
from ncp.cli_exit import BAD_INPUT, FAILED_GATE, OK
from ncp.evidence import compare as comparison
from ncp.evidence.collect import OutputsError, build_records
from ncp.evidence.record import append_index, index_entry, index_file, read_index, write_record
from ncp.evidence.signing import Signer, SigningKeyError, generate, parse_trusted_keys, trusted_keys_path
from ncp.evidence.store import S3, S3Store, StoreError, open_store
from ncp.evidence.verify import TrustedKeysError, describe, read_location, verify_index
from ncp_guardrails.evidence_trust import signature_problem
from ncp.readmodel.recorder import run_stack_file
from ncp.plan.catalog import ROOT
from ncp.plan.config import ValidationEvidence
from ncp.plan.errors import ConfigError
from ncp.plan.sources import plan_from_stack_file

INPUT_ERRORS = (ConfigError, pulumi.RunError, OutputsError, ExportError, StoreError, SigningKeyError, TrustedKeysError)


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
    """--index, else the store's own index.yaml when the evidence is in a bucket, else the stack's committed index
    (sites/<stack>/evidence/index.yaml)."""
    if args.index:
        return str(args.index)
    return store.location("index.yaml") if isinstance(store, S3Store) else str(index_file(args.stack))


def default_index(args, site_plan) -> str:
    """Where verify and compare read the index: --index, else where writing puts it."""
    return index_location(args, evidence_store(args, site_plan)) if not args.index else str(args.index)


def signer_for(site_plan) -> Signer:
    return Signer.load(site_plan.site.name, site_plan.site.validation_evidence)


def write(args) -> int:
    site_plan = plan_from_stack_file(args.stack)
    target = evidence_store(args, site_plan)
    signer = signer_for(site_plan)
    versions = run_stack_file(args.stack).outputs["versions"]
    records = build_records(args.stack, site_plan, versions, args.outputs, args.cache_state, args.run_id)
    index = index_location(args, target)
    for record in records:
        path, sha256 = write_record(record, target, signer)
        append_index(index_entry(record, path, sha256, signer), index)
        print(f"{record.endpoint}: {'PASSED' if record.passed else 'FAILED'} "
              f"{', '.join(record.failing_layers)} -> {path} (+ .md, .junit.xml, .ctrf.json; signed "
              f"{signer.key_id})".replace("  ", " "))
    return OK if all(r.passed for r in records) else FAILED_GATE


def keygen(args) -> int:
    site_plan = plan_from_stack_file(args.stack)
    settings = site_plan.site.validation_evidence
    path, key_id = generate(site_plan.site.name, settings, stack=args.stack)
    print(f"signing key {key_id} written to {path} (mode 0600; keep it out of the repository, back it up with the "
          f"site's secrets)\npublic key added to {trusted_keys_path(settings, args.stack)}: commit that file")
    return OK


def verify(args) -> int:
    site_plan = plan_from_stack_file(args.stack)
    settings = site_plan.site.validation_evidence
    keys_file = trusted_keys_path(settings, args.stack)
    index = default_index(args, site_plan)
    entries = [e for e in read_index(index) if e.get("stack") == args.stack]
    now = args.now
    results = verify_index(entries, keys_file.read_text() if keys_file.is_file() else None, str(keys_file), now)
    for entry, problem in results:
        print(f"{'VERIFIED' if problem is None else 'REFUSED '} {describe(entry)}"
              + ("" if problem is None else f": {problem}"))
    refused = sum(problem is not None for _, problem in results)
    print(f"{len(results) - refused} of {len(results)} entries of {index} verified with {keys_file}"
          + ("" if entries else " (the index holds none for the stack)"))
    return FAILED_GATE if refused or not entries else OK


def compare(args) -> int:
    site_plan = plan_from_stack_file(args.stack)
    settings = site_plan.site.validation_evidence
    margin = settings.regression_margin_pct if settings else ValidationEvidence.model_fields[
        "regression_margin_pct"].default
    text = read_location(str(args.record))
    if text is None:
        raise OutputsError(f"{args.record}: no such record\n  fix: pass a record JSON `ncp evidence` wrote")
    try:
        current = json.loads(text)
        current["workload"], current["benchmark"]["checks"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise OutputsError(f"{args.record}: not an evidence record\n  fix: pass a record JSON `ncp evidence` "
                           "wrote (<endpoint>/<run id>.json)") from None
    keys_file = trusted_keys_path(settings, args.stack)
    trusted = keys_file.read_text() if keys_file.is_file() else None
    problem = signature_problem(current, parse_trusted_keys(trusted, str(keys_file)))
    if problem:  # a record that cannot be believed says nothing about a regression either way
        print(f"REFUSED {args.record}: {problem}")
        return FAILED_GATE
    same_key = [e for e in read_index(default_index(args, site_plan)) if e.get("key") == current.get("key")]
    believed = [e for e, problem in verify_index(same_key, trusted, str(keys_file)) if problem is None]
    candidates = [json.loads(found) for found in (read_location(e["record"]) for e in believed) if found]
    baseline = comparison.baseline_of(current, candidates)
    deltas = comparison.compare(current, baseline, margin) if baseline else []
    print(comparison.render(current, baseline, deltas, margin))
    return FAILED_GATE if any(d.regression for d in deltas) else OK


def moment(text: str) -> datetime:
    """An ISO date or time; one without an offset is UTC (the index's times are UTC)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date or time (e.g. 2027-02-01 or "
                                         "2027-02-01T12:00:00+00:00)") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"ncp evidence{'' if command == 'write' else ' ' + command}",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    if command == "write":
        parser.add_argument("--outputs", required=True, type=Path, help="the run's outputs directory")
        parser.add_argument("--cache-state", required=True, choices=["cold", "warm"],
                            help="model cache state when the benchmark ran")
        parser.add_argument("--evidence-dir", help="local directory or s3://bucket/prefix")
        parser.add_argument("--run-id")
    else:
        parser.add_argument("--evidence-dir", help="the evidence location, to find its index (default: the stack's)")
    parser.add_argument("--index", help="evidence index file or s3:// object (default: the bucket's index.yaml "
                                         "when the evidence is in a bucket, else sites/<stack>/evidence/index.yaml)")
    if command == "verify":
        parser.add_argument("--now", type=moment,
                            help="judge freshness at this ISO date or time instead of now (e.g. a release date; UTC "
                                 "where it names no offset)")
    if command == "compare":
        parser.add_argument("--record", required=True, help="the record JSON to compare (local path or s3://)")
    return parser


COMMANDS = {"write": write, "keygen": keygen, "verify": verify, "compare": compare}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv.pop(0) if argv and argv[0] in COMMANDS else "write"
    args = _parser(command).parse_args(argv)
    try:
        return COMMANDS[command](args)
    except INPUT_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return BAD_INPUT
