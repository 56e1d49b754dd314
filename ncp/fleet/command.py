"""`ncp fleet`: the sites of the project (or of a fleet file) seen and upgraded together.

    ncp fleet status [--fleet fleet.yaml] [--json] [--jobs N] [--offline]
    ncp fleet plan-upgrade --to <git revision> [--fleet fleet.yaml] [--wave-size N] [--json]
    ncp fleet plan-upgrade --to <git revision> --wave N --apply [--record file]

`status` checks every site offline in parallel (config, the program composed under mocks, the environment's policy
pack), lists its versions against the compatibility matrix (and its pins), its latest evidence as the promotion
gates judge it, and, for a site with a kubeconfig in the fleet file, its drift (a refreshed preview through the
Pulumi Automation API; the GPU layer's node labels against the profile). `plan-upgrade` orders the sites a matrix
change touches into waves (canary first, then by environment and risk, waves of --wave-size), each wave gated on
fresh passing evidence of the wave before; `--wave N --apply` runs that wave's `pulumi up` at the revision, site by
site, stopping at the first failure, and records it.

Exit codes: 0 every site in policy / plan printed / wave applied; 1 a site out of policy (a mandatory violation,
drift), a closed gate or a failed apply; 2 bad input (a stack or fleet file, a revision), named with its fix; 3 an
internal error.
"""
import argparse
import json
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from ncp.cli_exit import BAD_INPUT, FAILED_GATE, OK
from ncp.fleet.sites import Fleet, project_fleet, read_fleet
from ncp.fleet.status import StatusOptions, fleet_status, now_utc, render_table
from ncp.fleet.waves import RevisionError, apply_wave, plan_upgrade, render_plan
from ncp.offline.policy_check import PACK_DIR
from ncp.plan.errors import ConfigError, Problem


def _fleet(args) -> Fleet:
    fleet = read_fleet(args.fleet) if args.fleet else project_fleet()
    if getattr(args, "stack", None):
        unknown = sorted(set(args.stack) - {site.stack for site in fleet.sites})
        if unknown:
            known = ", ".join(site.stack for site in fleet.sites)
            raise ConfigError(fleet.source, [Problem(f"--stack {name}", f"is not a site of {fleet.source}",
                                                     f"use one of: {known}") for name in unknown])
        fleet = Fleet(tuple(s for s in fleet.sites if s.stack in args.stack), fleet.source, fleet.wave_size,
                      fleet.evidence_max_age_days, fleet.root)
    return fleet


def status(args) -> int:
    fleet = _fleet(args)
    options = StatusOptions(args.policy_pack, now_utc(), drift=not args.offline, root=fleet.root)
    rows = fleet_status(fleet.sites, options, args.jobs)
    worst = max([row["status"] for row in rows], default=OK)
    if args.json:
        print(json.dumps({"fleet": fleet.source, "exit": worst, "sites": rows}, indent=2, default=str))
    else:
        print(render_table(rows))
        out = sum(row["status"] == FAILED_GATE for row in rows)
        invalid = sum(row["status"] == BAD_INPUT for row in rows)
        print(f"\n{len(rows)} sites ({fleet.source}): {len(rows) - out - invalid} in policy, {out} out of policy, "
              f"{invalid} not valid input; exit {worst}", file=sys.stderr)
    return worst


def upgrade(args) -> int:
    fleet = _fleet(args)
    plan = plan_upgrade(fleet, args.to, args.wave_size or fleet.wave_size, now_utc(), args.policy_pack,
                        args.record)
    if args.apply:
        if args.wave is None:
            print("error: --apply runs one wave: name it with --wave N", file=sys.stderr)
            return BAD_INPUT
        return apply_wave(plan, fleet, args.wave, print)
    print(json.dumps(plan.as_dict(), indent=2, default=str) if args.json else render_plan(plan, args.wave))
    return OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ncp fleet", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("status", "every site checked: versions, policy, evidence, drift"),
                       ("plan-upgrade", "the waves of an upgrade to a git revision; --wave N --apply runs one")):
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("--fleet", type=Path, help="fleet file (default: every Pulumi.<stack>.yaml of the project)")
        sub.add_argument("--stack", action="append", help="only this site (repeat it)")
        sub.add_argument("--json", action="store_true", help="print JSON")
        sub.add_argument("--policy-pack", type=Path, default=PACK_DIR, help="policy pack directory")
    status_parser, upgrade_parser = commands.choices["status"], commands.choices["plan-upgrade"]
    status_parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                               help="sites checked at once (worker processes; default: the CPU count)")
    status_parser.add_argument("--offline", action="store_true", help="no drift, even for sites with a kubeconfig")
    upgrade_parser.add_argument("--to", required=True, help="the git revision the fleet upgrades to")
    upgrade_parser.add_argument("--wave-size", type=int, help="sites per wave after the canary (default: the fleet "
                                                              "file's waveSize, else 2)")
    upgrade_parser.add_argument("--wave", type=int, help="show (or with --apply run) this wave")
    upgrade_parser.add_argument("--apply", action="store_true", help="run the wave's pulumi up (Automation API)")
    upgrade_parser.add_argument("--record", type=Path, help="the upgrade's record of applied waves (default: "
                                                            ".fleet/upgrade-<revision>.json in the project)")
    return parser


def _dispatch(argv: Optional[Sequence[str]]) -> int:
    args = _parser().parse_args(argv)
    if getattr(args, "wave_size", None) is not None and args.wave_size < 1:
        print(f"error: --wave-size {args.wave_size}: a wave holds at least one site", file=sys.stderr)
        return BAD_INPUT
    try:
        return status(args) if args.command == "status" else upgrade(args)
    except (ConfigError, RevisionError) as error:
        print(f"error: {error}", file=sys.stderr)
        return BAD_INPUT


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`ncp fleet status|plan-upgrade`."""
    return _dispatch(argv)
