"""Compare two stacks, or one stack at two revisions of the repository, by layer and resource.

    ncp diff lab prod               two stacks of this checkout
    ncp diff prod@HEAD~1 prod       prod one commit ago against the working tree
    ncp diff prod@v1.2 prod@main    prod at two commits

A side without a revision runs the program of this checkout. A side `<stack>@<revision>` runs the whole repository
as of that commit (program, stack file, sizing files, compatibility matrix, profiles, data files), unpacked from git
into a temporary directory, so a chart bump or a re-sized endpoint shows as the resources it changes. Prints, per
layer, the resources only on one side and, for resources on both, each changed input with its old and new value;
then the changed stack outputs. "The same inputs" is said only when resources, inputs, dependencies, options and
outputs are all equal.
Exit codes: 0 compared (differences are not an error), 2 a stack file or revision that cannot be read or is invalid.
"""
import argparse
import difflib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any, Iterator, Optional

import pulumi
from ncp.cli_exit import BAD_INPUT, OK
from ncp.readmodel.manifests import as_written
from ncp.readmodel.recorder import Recording, Registration, install_order, run_stack_file
from ncp.plan import sources
from ncp.plan.errors import ConfigError, Problem

COMPONENT_PREFIX = "ncp-inference:layers:"
MAX_CHANGES_PER_RESOURCE = 20
MAX_VALUE_CHARS = 110
MAX_TEXT_LINES = 6

# Runs in the unpacked revision with that revision's own code; writes the recording as JSON to argv[2].
_RECORD_AT_REVISION = """
import json, sys
from dataclasses import asdict
from ncp.readmodel.manifests import as_written
from ncp.readmodel.recorder import run_stack_file
from ncp.plan.errors import ConfigError
try:
    recording = run_stack_file(sys.argv[1])
except ConfigError as error:
    print(error, file=sys.stderr)
    sys.exit(2)
with open(sys.argv[2], "w") as out:
    json.dump({"resources": [asdict(r) for r in recording.resources], "outputs": recording.outputs}, out, default=str)
"""


def _bad_revision(side: str, message: str, fix: str) -> ConfigError:
    return ConfigError(side, [Problem(side, message, fix)])


def _unpack(revision: str, side: str, into: Path) -> None:
    """The project directory as of `revision` (git archive of the project's subtree) unpacked into `into`."""
    root = sources.ROOT
    prefix = subprocess.run(["git", "rev-parse", "--show-prefix"], cwd=root, capture_output=True, text=True)
    if prefix.returncode != 0:
        raise _bad_revision(side, f"{root} is not a git checkout: {prefix.stderr.strip()}",
                            "compare revisions inside a git clone of the project: git clone <the project's repository> "
                            "&& cd <the clone> and run the same command there")
    archive = subprocess.run(["git", "archive", "--format=tar", f"{revision}:{prefix.stdout.strip()}"], cwd=root,
                             capture_output=True)
    if archive.returncode != 0:
        raise _bad_revision(side, f"git cannot read the project at {revision}: "
                                  f"{archive.stderr.decode(errors='replace').strip()}",
                            "name a commit of this repository, e.g. prod@HEAD~1 (see `git log --oneline`)")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")


def _record_at(stack: str, revision: str, side: str) -> Recording:
    with tempfile.TemporaryDirectory(prefix="ncp-diff-") as tmp:
        checkout, result = Path(tmp) / "project", Path(tmp) / "recording.json"
        checkout.mkdir()
        _unpack(revision, side, checkout)
        if not (checkout / f"Pulumi.{stack}.yaml").is_file():
            raise _bad_revision(side, f"Pulumi.{stack}.yaml does not exist at {revision}",
                                "name a commit that has the stack file (git log -- Pulumi.<stack>.yaml)")
        run = subprocess.run([sys.executable, "-c", _RECORD_AT_REVISION, stack, str(result)], cwd=checkout,
                             capture_output=True, text=True)
        if run.returncode != 0:
            detail = run.stderr.strip() or f"exit {run.returncode}"
            raise _bad_revision(side, f"the program at {revision} did not compose the stack:\n{detail}",
                                f"see why it does not compose there: git worktree add /tmp/ncp-at-revision {revision} "
                                f"&& cd /tmp/ncp-at-revision && ncp check --stack {stack}")
        data = json.loads(result.read_text())
    known = {f.name for f in fields(Registration)}
    resources = [Registration(**{name: r.get(name, {}) for name in known}) for r in data["resources"]]
    return Recording(stack=stack, resources=resources, outputs=data["outputs"])


def record_side(side: str) -> Recording:
    stack, _, revision = side.partition("@")
    return _record_at(stack, revision, side) if revision else run_stack_file(stack)


def _layer(registration: Registration, by_urn: dict[str, Registration]) -> str:
    """The outermost project component above a resource (its RA layer), or the stack for top-level resources."""
    layer = "stack"
    current: Optional[Registration] = registration
    while current is not None:
        if current.type.startswith(COMPONENT_PREFIX):
            layer = f"{current.type[len(COMPONENT_PREFIX):]} {current.name}"
        current = by_urn.get(current.parent)
    return layer


def _short(value: Any, skip: int = 0) -> str:
    """A value on one line: plain text as written, anything else (or text with newlines) as JSON; long ones cut,
    starting `skip` characters in (where two long values start to differ)."""
    plain = isinstance(value, str) and value and "\n" not in value
    text = value if plain else json.dumps(value, sort_keys=True, default=str)
    if skip:
        text = "…" + text[skip:]
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS - 1] + "…"


def _common_prefix(old: Any, new: Any) -> int:
    """Where two long one-line texts start to differ, less some context; 0 when both fit on a line."""
    if not (isinstance(old, str) and isinstance(new, str)) or max(len(old), len(new)) <= MAX_VALUE_CHARS:
        return 0
    same = len(os.path.commonprefix([old, new]))
    return max(0, same - 30)


def changes(old: Any, new: Any, prefix: str = "") -> Iterator[str]:
    """One line per changed leaf: `path: old → new` (absent values shown as `(absent)`, long texts as a line diff)."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            yield from changes(old.get(key, _ABSENT), new.get(key, _ABSENT), f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (before, after) in enumerate(zip(old, new, strict=True)):
            yield from changes(before, after, f"{prefix}[{index}]")
    elif isinstance(old, list) and isinstance(new, list):
        yield from _list_changes(old, new, prefix or "(value)")
    elif old != new:
        path = prefix or "(value)"
        if isinstance(old, str) and isinstance(new, str) and ("\n" in old or "\n" in new):
            lines = [line for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0)
                     if line[:1] in "+-" and not line.startswith(("+++", "---"))]
            shown = lines[:MAX_TEXT_LINES] + ([f"… {len(lines) - MAX_TEXT_LINES} more changed lines"]
                                              if len(lines) > MAX_TEXT_LINES else [])
            yield f"{path}: text changed\n" + "\n".join(f"  {_short(line)}" for line in shown)
        else:
            skip = _common_prefix(old, new)
            yield f"{path}: {_describe(old, skip)} → {_describe(new, skip)}"


def _list_changes(old: list, new: list, path: str) -> Iterator[str]:
    """Lists of different lengths: the entries removed and added (a tenant's namespace joining a peer list)."""
    def canonical(item: Any) -> str:
        return json.dumps(item, sort_keys=True, default=str)
    old_keys, new_keys = [canonical(item) for item in old], [canonical(item) for item in new]
    for item, key in zip(old, old_keys, strict=True):
        if key not in new_keys:
            yield f"{path}: removed {_short(item)}"
    for item, key in zip(new, new_keys, strict=True):
        if key not in old_keys:
            yield f"{path}: added {_short(item)}"
    if set(old_keys) == set(new_keys):  # only duplicates differ
        yield f"{path}: {_short(old)} → {_short(new)}"


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


_ABSENT = _Absent()


def _describe(value: Any, skip: int = 0) -> str:
    return "(absent)" if value is _ABSENT else _short(value, skip)


def _compared(registration: Registration, names: dict[str, str]) -> dict[str, Any]:
    """What of a registration a reviewer cares about: inputs, what it is installed after, and its options."""
    return {"inputs": as_written(registration.inputs),
            "dependsOn": sorted(names.get(urn, urn) for urn in registration.dependencies),
            "options": registration.options}


def _resource_changes(old: Registration, new: Registration, old_names: dict[str, str],
                      new_names: dict[str, str]) -> list[str]:
    found = list(changes(_compared(old, old_names), _compared(new, new_names)))
    return [line[len("inputs."):] if line.startswith("inputs.") else line for line in found]


def _indent(entries: list[str], prefix: str) -> str:
    return "\n".join(prefix + line if i == 0 else " " * len(prefix) + line
                     for entry in entries for i, line in enumerate(entry.split("\n")))


def render_diff(left: Recording, right: Recording, left_name: str, right_name: str) -> str:
    sides = {}
    names = {}
    for name, recording in ((left_name, left), (right_name, right)):
        by_urn = {r.urn: r for r in recording.resources}
        names[name] = {r.urn: f"{r.type} {r.name}" for r in recording.resources}
        sides[name] = {(r.type, r.name): (r, _layer(r, by_urn)) for r in recording.resources}
    before, after = sides[left_name], sides[right_name]
    layers: dict[str, list[str]] = {}
    ordered = [(r.type, r.name) for r in install_order(left)]
    ordered += [(r.type, r.name) for r in install_order(right) if (r.type, r.name) not in before]
    for key in ordered:
        type_, name = key
        if key not in after:
            layers.setdefault(before[key][1], []).append(f"  - {type_} {name}  (only in {left_name})")
        elif key not in before:
            layers.setdefault(after[key][1], []).append(f"  + {type_} {name}  (only in {right_name})")
        else:
            found = _resource_changes(before[key][0], after[key][0], names[left_name], names[right_name])
            if found:
                shown = found[:MAX_CHANGES_PER_RESOURCE]
                more = [f"(+{len(found) - len(shown)} more changes)"] if len(found) > len(shown) else []
                layers.setdefault(after[key][1], []).append(
                    f"  ~ {type_} {name}\n" + _indent(shown + more, "      "))
    outputs = list(changes(as_written(left.outputs), as_written(right.outputs)))
    if not layers and not outputs:
        return (f"{left_name} and {right_name} compose the same {len(left.resources)} resources with the same "
                f"inputs, dependencies, options and outputs")
    lines = [f"{left_name} ({len(left.resources)} resources) -> {right_name} ({len(right.resources)} resources)"]
    for layer in layers:  # in install order
        lines += ["", f"{layer}:", *layers[layer]]
    if outputs:
        lines += ["", "stack outputs:", _indent(outputs, "  ~ ")]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ncp diff", description=__doc__.splitlines()[0])
    parser.add_argument("left", help="stack name, or stack@git-revision")
    parser.add_argument("right", help="stack name, or stack@git-revision")
    args = parser.parse_args(argv)
    try:
        left, right = record_side(args.left), record_side(args.right)
    except (ConfigError, pulumi.RunError) as error:
        print(error, file=sys.stderr)
        return BAD_INPUT
    print(render_diff(left, right, args.left, args.right))
    return OK
