"""Offline check of a stack without the Pulumi CLI or a cluster.

    ncp check --stack lab           validate config, compose the program under mocks, print a summary
                                                  (layers, tenants, totals) and run the policy pack (pack config
                                                  policy/config/<environment>.json)
    ncp check --stack prod --plan   ... and print the resource tree, in install order, with Helm values
                                                  and key specs
    ncp check --all                 site CI: every stack (or repeat --stack), then the version bump
                                                  checks (ncp/offline/site_ci.py)

Exit codes: 0 ok, 1 a mandatory policy violation, 2 invalid config or pack config, 3 an internal error (a bug in
the program or the pack: the message says where; --debug shows the traceback). See ncp/cli_exit.py.
"""
import argparse
import json
import sys
from pathlib import Path

import pulumi
import yaml

from ncp.readmodel.manifests import as_written
from ncp.offline.policy_check import PACK_DIR, PackConfigError, evaluate, read_pack_config, report
from ncp.readmodel.recorder import Recording, install_order, run_stack_file
from ncp.offline.site_ci import every_stack, run_site_ci
from ncp.offline.summary import render_summary
from ncp.plan.errors import ConfigError
from ncp.plan.sources import plan_from_stack_file


def _summary(registration) -> dict:
    inputs = registration.inputs
    shown = {}
    if registration.type == "kubernetes:helm.sh/v3:Release":
        shown = {k: inputs.get(k) for k in ("chart", "version", "namespace", "values")}
    elif registration.custom and registration.type.startswith("kubernetes:"):
        shown = {k: inputs[k] for k in ("spec", "data", "type") if k in inputs}
        if registration.type == "kubernetes:core/v1:Secret":
            shown = {"type": inputs.get("type"), "keys": sorted((inputs.get("stringData") or {}).keys())}
    return as_written(shown)


def render_plan(recording: Recording) -> str:
    children: dict[str, list] = {}
    for registration in install_order(recording):
        children.setdefault(registration.parent, []).append(registration)
    lines: list[str] = []

    def walk(parent: str, depth: int) -> None:
        for registration in children.get(parent, []):
            name = registration.inputs.get("metadata", {}).get("name") if registration.custom else None
            label = f"{registration.type} {registration.name}" + (f" ({name})" if name else "")
            lines.append("  " * depth + ("- " if depth else "") + label)
            details = _summary(registration)
            if details:
                body = yaml.safe_dump(details, sort_keys=False, width=110).rstrip()
                lines.extend("  " * (depth + 2) + line for line in body.splitlines())
            walk(registration.urn, depth + 1)

    roots = {r.parent for r in recording.resources} - {r.urn for r in recording.resources}
    for root in sorted(roots):
        walk(root, 0)
    lines.append("outputs: " + json.dumps(recording.outputs, sort_keys=True))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ncp check", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", action="append", help="stack name: reads Pulumi.<stack>.yaml (default: lab); "
                                                         "repeat it for the site CI view of several stacks")
    parser.add_argument("--all", action="store_true",
                        help="site CI: every Pulumi.<stack>.yaml, then the version bump checks (site_ci.py)")
    parser.add_argument("--plan", action="store_true", help="print the resource tree with values and specs")
    parser.add_argument("--policy-pack", type=Path, default=PACK_DIR, help="policy pack directory (default: policy)")
    parser.add_argument("--policy-pack-config", type=Path,
                        help="pack config JSON (default: <pack>/config/<environment>.json)")
    args = parser.parse_args(argv)
    if args.all or len(args.stack or []) > 1:
        if args.plan:
            parser.error("--plan shows one stack: name one --stack")
        return run_site_ci(every_stack() if args.all else args.stack, args.policy_pack, args.policy_pack_config)
    args.stack = (args.stack or ["lab"])[0]
    return _check(args)


def _check(args) -> int:
    try:
        site_plan = plan_from_stack_file(args.stack)
        recording = run_stack_file(args.stack)
        config_path = args.policy_pack_config or args.policy_pack / "config" / f"{site_plan.environment.value}.json"
        name, version, violations = evaluate(recording, read_pack_config(config_path), args.policy_pack)
    except (ConfigError, pulumi.RunError, PackConfigError) as error:
        print(error, file=sys.stderr)
        return 2
    print(render_summary(site_plan, recording))
    if args.plan:
        print(render_plan(recording))
    print(report(name, version, violations))
    mandatory = [v for v in violations if v.level == "mandatory"]
    print(f"stack {args.stack}: config valid; {len(recording.resources)} resources composed; "
          f"{len(violations)} policy violations ({len(mandatory)} mandatory, pack config {config_path})",
          file=sys.stderr)
    return 1 if mandatory else 0
