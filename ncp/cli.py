"""`ncp`: the one entrance to every task of the project. Each subcommand is one command module's `main(argv)`; this
module only routes to it and wraps it in the exit-code contract (ncp.cli_exit: 0 ok, 1 failed gate, 2 bad input,
3 internal error). `ncp <command> --help` shows a command's own options.

The Pulumi program itself is `__main__.py` (run by `pulumi preview/up`), and the CrossGuard pack is `policy/` (run by
`pulumi preview --policy-pack policy`); neither goes through here."""
import importlib
import sys
from typing import Callable, Dict, NamedTuple, Optional, Sequence

from ncp.cli_exit import BAD_INPUT, OK, run_command


class Command(NamedTuple):
    module: str
    summary: str


# The table of every command: name -> the module whose `main(argv)` runs it. Nested tables are command groups.
COMMANDS: Dict[str, object] = {
    "check": Command("ncp.offline.check", "validate stacks offline: config, plan, policy pack (--all: every stack)"),
    "diff": Command("ncp.offline.diff", "what a change to a stack changes: resources and values (stack@revision)"),
    "scaffold": Command("ncp.scaffold.cli", "write a new site's stack file from a profile and a few answers"),
    "checklist": Command("ncp.scaffold.checklist", "the site's prerequisites checklist (what the program assumes)"),
    "mirror": Command("ncp.scaffold.mirror", "the image and chart list, and copy script, for an air-gapped mirror"),
    "preflight": Command("ncp.preflight.cli", "check a live cluster meets the stack's prerequisites"),
    "sizing": Command("ncp.sizing.cli", "size an endpoint with AIConfigurator and write its sizing file"),
    "report": Command("ncp.report.cli", "the site review: decisions, versions, images, RA traceability"),
    "upgrade-plan": Command("ncp.lifecycle.cli", "the ordered upgrade plan between two matrix revisions"),
    "acceptance": Command("ncp.acceptance.check", "judge one AIPerf export against an endpoint's thresholds"),
    "sync-pins": Command("ncp.sync_pins", "regenerate the policy pack's copies of the program's facts (maintainers)"),
    "config-reference": Command("ncp.config_reference",
                                "regenerate docs/config-reference.md from the config schema (maintainers)"),
    "fleet": Command("ncp.fleet.command",
                     "every site stack: status (versions, policy, evidence, drift) and upgrade waves"),
    "node": {
        "return-to-service": Command("ncp.evidence.node_gate",
                                     "run the return-to-service gate on one node; uncordon only on a pass"),
        "handover": Command("ncp.evidence.node_handover", "move a node between tenants: drain, sanitize, gate"),
        "capacity": Command("ncp.evidence.node_capacity", "the tenants a quarantine leaves short of their quota"),
        "incident": Command("ncp.evidence.node_incident", "one view of a node's signals, each tagged with its layer"),
    },
    "evidence": {
        "write": Command("ncp.evidence.cli", "write signed acceptance records from a run's outputs"),
        "keygen": Command("ncp.evidence.cli", "make the site's evidence signing key"),
        "verify": Command("ncp.evidence.cli", "verify every evidence index entry as the promotion gates do"),
        "compare": Command("ncp.evidence.cli", "compare a record with the last passed one of the same key"),
        "run": Command("ncp.evidence.run", "run a deployed stack's acceptance Jobs, then write the evidence"),
        "readiness": Command("ncp.evidence.readiness", "write readiness evidence from the readiness Jobs' logs"),
        "readiness-run": Command("ncp.evidence.readiness_run", "run the readiness Jobs, then write the evidence"),
        "twin-behaviour": Command("ncp.evidence.twin_behaviour",
                                  "start-up and failure evidence of an endpoint from the serving twin"),
    },
}
# The evidence module's own subcommands are its first argument; the others are separate modules.
PASS_NAME = {"ncp.evidence.cli"}


def _usage(table: Dict[str, object], prefix: str) -> str:
    width = max(len(name) for name in table)
    lines = [f"usage: {prefix} <command> [options]   ({prefix} <command> --help for its options)", "", "commands:"]
    for name, entry in table.items():
        summary = entry.summary if isinstance(entry, Command) else \
            "group: " + ", ".join(entry)  # type: ignore[arg-type]
        lines.append(f"  {name.ljust(width)}  {summary}")
    return "\n".join(lines)


def resolve(argv: Sequence[str]) -> tuple:
    """(the command's main, its argv, the prog name) for argv, or (None, the usage text, exit code)."""
    table: Dict[str, object] = COMMANDS
    prefix = "ncp"
    rest = list(argv)
    while True:
        if not rest or rest[0] in ("-h", "--help"):
            return None, _usage(table, prefix), OK if rest else BAD_INPUT
        name, rest = rest[0], rest[1:]
        entry = table.get(name)
        if entry is None:
            close = [known for known in table if known.startswith(name[:3])]
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            return None, f"{prefix}: unknown command {name!r}{hint}\n\n{_usage(table, prefix)}", BAD_INPUT
        prefix = f"{prefix} {name}"
        if isinstance(entry, Command):
            module = importlib.import_module(entry.module)
            main: Callable[[Optional[Sequence[str]]], int] = module.main
            return main, ([name] if entry.module in PASS_NAME else []) + rest, prefix
        table = entry  # type: ignore[assignment]


def main(argv: Optional[Sequence[str]] = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    command, command_argv, prog = resolve([a for a in arguments if a != "--debug"])
    if command is None:
        print(command_argv, file=sys.stdout if prog == OK else sys.stderr)
        return prog
    return run_command(command, command_argv + (["--debug"] if "--debug" in arguments else []))


def entry_point() -> None:
    sys.exit(main())
