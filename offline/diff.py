"""Compare two stacks, or one stack at two revisions of its config, by layer and resource.

    python -m offline.diff lab prod               two stacks of this checkout
    python -m offline.diff prod@HEAD~1 prod       the prod stack config one commit ago against the working tree

Both sides run the program of this checkout under mocks (a revision changes only the stack config). Prints, per
layer, the resources only on one side and, for resources on both, the paths of the inputs that differ.
Exit codes: 0 compared (differences are not an error), 2 a stack file or revision that cannot be read or is invalid.
"""
import argparse
import subprocess
import sys
from typing import Any, Iterator, Optional

import pulumi
from cli_exit import BAD_INPUT, OK, run_command
from offline.recorder import Recording, Registration, run_stack_config, run_stack_file
from plan.errors import ConfigError, Problem
from plan.sources import config_of_document, stack_file

COMPONENT_PREFIX = "ncp-inference:layers:"


def _record(side: str) -> Recording:
    stack, _, revision = side.partition("@")
    if not revision:
        return run_stack_file(stack)
    path = stack_file(stack)
    # Bytes, not text: the shared loader decodes them and names where a file is not UTF-8.
    shown = subprocess.run(["git", "show", f"{revision}:./{path.name}"], cwd=path.parent, capture_output=True)
    if shown.returncode != 0:
        stderr = shown.stderr.decode("utf-8", errors="replace").strip()
        raise ConfigError(side, [Problem(side, f"git cannot show {path.name} at {revision}: {stderr}",
                                         "name a commit that has the stack file, e.g. prod@HEAD~1")])
    raw, secrets = config_of_document(shown.stdout, f"{path.name}@{revision}")
    return run_stack_config(raw, secrets, stack)


def _layer(registration: Registration, by_urn: dict[str, Registration]) -> str:
    """The outermost project component above a resource (its RA layer), or the stack for top-level resources."""
    layer = "stack"
    current: Optional[Registration] = registration
    while current is not None:
        if current.type.startswith(COMPONENT_PREFIX):
            layer = f"{current.type[len(COMPONENT_PREFIX):]} {current.name}"
        current = by_urn.get(current.parent)
    return layer


def _paths(old: Any, new: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            yield from _paths(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else str(key))
    elif old != new:
        yield prefix or "(value)"


def render_diff(left: Recording, right: Recording, left_name: str, right_name: str) -> str:
    sides = {}
    for name, recording in ((left_name, left), (right_name, right)):
        by_urn = {r.urn: r for r in recording.resources}
        sides[name] = {(r.type, r.name): (r, _layer(r, by_urn)) for r in recording.resources}
    before, after = sides[left_name], sides[right_name]
    layers: dict[str, list[str]] = {}
    for key in list(before) + [k for k in after if k not in before]:
        type_, name = key
        if key not in after:
            layers.setdefault(before[key][1], []).append(f"  - {type_} {name}  (only in {left_name})")
        elif key not in before:
            layers.setdefault(after[key][1], []).append(f"  + {type_} {name}  (only in {right_name})")
        else:
            changed = list(_paths(before[key][0].inputs, after[key][0].inputs))
            if changed:
                shown = ", ".join(changed[:8]) + (f" (+{len(changed) - 8} more)" if len(changed) > 8 else "")
                layers.setdefault(after[key][1], []).append(f"  ~ {type_} {name}: {shown}")
    if not layers:
        return f"{left_name} and {right_name} compose the same {len(left.resources)} resources with the same inputs"
    lines = [f"{left_name} ({len(left.resources)} resources) -> {right_name} ({len(right.resources)} resources)"]
    for layer, changes in layers.items():
        lines += ["", f"{layer}:", *changes]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m offline.diff", description=__doc__.splitlines()[0])
    parser.add_argument("left", help="stack name, or stack@git-revision")
    parser.add_argument("right", help="stack name, or stack@git-revision")
    args = parser.parse_args(argv)
    try:
        left, right = _record(args.left), _record(args.right)
    except (ConfigError, pulumi.RunError) as error:
        print(error, file=sys.stderr)
        return BAD_INPUT
    print(render_diff(left, right, args.left, args.right))
    return OK


if __name__ == "__main__":
    sys.exit(run_command(main))
