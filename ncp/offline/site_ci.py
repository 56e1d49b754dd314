"""The site's CI job: every stack file (or the named ones) validated, composed and judged by its environment's policy
pack, each stack file able to keep its secrets (passphrase salt or KMS key), and the checks a version bump must pass
(`checkedAgainst` notes, deviation text, the copies of the pins), in one command that runs in seconds:

    ncp check --all                  every Pulumi.<stack>.yaml of the project
    ncp check --stack a --stack b    the named stacks

One line per stack, then every problem with its file, key and fix. Exit codes: 0 all passed, 1 a mandatory policy
violation or a failed bump check, 2 a stack file or pack config that is not valid input (the worst wins).
"""
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pulumi
import yaml

from ncp import sync_pins
from ncp.cli_exit import BAD_INPUT, FAILED_GATE, OK
from ncp.offline.bump_checks import UPSTREAM_DIR, bump_problems
from ncp.offline.policy_check import PackConfigError, evaluate, read_pack_config
from ncp.readmodel.recorder import run_stack_file
from ncp.plan import sources
from ncp.plan.catalog import load_matrix
from ncp.plan.errors import ConfigError

PROJECT_FILE = "Pulumi.yaml"


def every_stack() -> list[str]:
    """The stacks of the project: each Pulumi.<stack>.yaml beside Pulumi.yaml."""
    return sorted(path.name[len("Pulumi."):-len(".yaml")] for path in sources.ROOT.glob("Pulumi.*.yaml"))


@dataclass
class StackResult:
    stack: str
    status: int = OK
    line: str = ""
    details: list[str] = field(default_factory=list)


def secrets_problem(stack: str) -> tuple[Optional[str], Optional[str]]:
    """(problem, note) about how the stack file keeps secrets: a passphrase `encryptionsalt` or a KMS `encryptedkey`
    (`pulumi stack init --secrets-provider ...`) are both fine; secure values with neither cannot be decrypted."""
    path = sources.stack_file(stack)
    document = yaml.safe_load(path.read_text()) or {}
    if document.get("encryptionsalt") or document.get("encryptedkey"):
        return None, None
    secure = sources.read_stack_file(stack)[1]
    if secure:
        return (f"{path.name}: holds secure values ({', '.join(sorted(secure))}) but neither `encryptionsalt` nor "
                f"`encryptedkey`: they cannot be decrypted\n    fix: restore the stack's salt (or its KMS key) from "
                f"the commit that set the secrets, or set them again: pulumi config set --secret <key> <value>"), None
    return None, (f"{path.name}: no encryptionsalt or encryptedkey yet: `pulumi stack select --create {stack}` "
                  f"adds a salt (commit it), or `pulumi stack init {stack} --secrets-provider <kms url>` a KMS key")


def check_stack(stack: str, pack_dir: Path, pack_config: Optional[Path]) -> StackResult:
    result = StackResult(stack)
    try:
        site_plan = sources.plan_from_stack_file(stack)
        recording = run_stack_file(stack)
        config_path = pack_config or pack_dir / "config" / f"{site_plan.environment.value}.json"
        _, _, violations = evaluate(recording, read_pack_config(config_path), pack_dir)
        problem, note = secrets_problem(stack)
    except (ConfigError, pulumi.RunError, PackConfigError) as error:
        result.status, result.line = BAD_INPUT, "not valid input"
        result.details = str(error).splitlines()
        return result
    mandatory = [v for v in violations if v.level == "mandatory"]
    result.line = (f"{site_plan.environment.value}, {len(recording.resources)} resources, {len(mandatory)} mandatory "
                   f"of {len(violations)} policy violations ({config_path.name})")
    result.details = [f"[{v.level}] {v.policy}: {v.message}" for v in violations] + ([note] if note else [])
    if problem:
        result.status, result.line = BAD_INPUT, result.line + "; secrets cannot be read"
        result.details.append(problem)
    elif mandatory:
        result.status = FAILED_GATE
    return result


def run_site_ci(stacks: list[str], pack_dir: Path, pack_config: Optional[Path],
                upstream: Path = UPSTREAM_DIR) -> int:
    if not stacks:
        print(f"no Pulumi.<stack>.yaml beside {PROJECT_FILE} in {sources.ROOT}", file=sys.stderr)
        return BAD_INPUT
    results = [check_stack(stack, pack_dir, pack_config) for stack in stacks]
    width = max(len(r.stack) for r in results)
    for result in results:
        verdict = {OK: "ok", FAILED_GATE: "FAILED", BAD_INPUT: "INVALID"}[result.status]
        print(f"{result.stack.ljust(width)}  {verdict:7}  {result.line}")
        for line in (part for detail in result.details for part in detail.splitlines()):
            print(f"{' ' * (width + 2)}{line}")
    matrix = load_matrix()
    problems, notes = bump_problems(matrix, upstream)
    problems += sync_pins.drift(matrix)
    print(f"\nversion bump checks (checkedAgainst notes, deviations, copies of the pins): "
          f"{'passed' if not problems else f'{len(problems)} problems'}")
    for line in problems + notes:
        print(f"  - {line}")
    status = max([r.status for r in results] + [FAILED_GATE if problems else OK])
    print(f"\n{len(results)} stacks: {sum(r.status == OK for r in results)} passed; exit {status}", file=sys.stderr)
    return status
