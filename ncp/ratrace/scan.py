"""Collect RA references kept next to the code: `# RA: <section>: "<sentence or fragment>"` comments in the
project's Python files, and the RA section every policy carries as its compliance framework reference."""
import io
import os
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path

from ncp.plan.catalog import ROOT

# A section heading may itself hold a colon ("Example Workload: Large MoE LLM Inference"): the last `: "` ends it.
COMMENT = re.compile(r'^#\s*RA:\s*(?P<section>[^"]+?)\s*:\s*"(?P<sentence>[^"]+)"')
MARKER = re.compile(r"^#\s*RA:")
# Not the project's code: virtualenvs (.venv, .venv-twin, .venv-scanners, policy/venv), caches, state; every hidden
# directory is skipped as well.
SKIP_DIRS = {"venv", "node_modules", "__pycache__"}
# What a reference proves depends on where it lives.
KINDS = (("policy/", "policy"), ("ncp/plan/", "config rule"), ("tests/", "test"), ("ncp/evidence/", "evidence record"))


@dataclass(frozen=True)
class Reference:
    section: str
    sentence: str  # empty for section-level references (policies)
    kind: str
    where: str  # path:line, or policy:<name>


def _kind(relative: str) -> str:
    return next((kind for prefix, kind in KINDS if relative.startswith(prefix)), "implementation")


def python_files(root: Path = ROOT):
    """The project's Python files, sorted; skipped directories are not entered (a virtualenv holds thousands)."""
    found = []
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = [d for d in subdirectories if d not in SKIP_DIRS and not d.startswith(".")]
        found += [Path(directory) / name for name in files if name.endswith(".py")]
    yield from sorted(found)


def _comments(path: Path):
    """(line, text) of every real comment token: strings and docstrings that mention `# RA:` are not references."""
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
    return [(token.start[0], token.string) for token in tokens if token.type == tokenize.COMMENT]


def comment_references(root: Path = ROOT) -> list[Reference]:
    found = []
    for path in python_files(root):
        relative = path.relative_to(root).as_posix()
        for number, comment in _comments(path):
            match = COMMENT.match(comment)
            if match:
                found.append(Reference(match["section"].strip(), match["sentence"].strip(), _kind(relative),
                                       f"{relative}:{number}"))
            elif MARKER.match(comment):  # a reference that does not parse must not vanish: it resolves to nothing
                found.append(Reference("", comment, _kind(relative), f"{relative}:{number}"))
    return found


def named_sections(reference: str, headings) -> list[str]:
    """RA headings a policy's framework reference names: "A; B: C (what of C)" -> A, B, C."""
    parts = (part.split("(", 1)[0].strip() for part in re.split(r"[;:]", reference))
    return [part for part in parts if part in headings]


def policy_references(headings) -> list[Reference]:
    """One section-level reference per RA heading named in a policy's framework reference."""
    from ncp.offline.policy_check import load_pack

    _, _, policies = load_pack()
    return [Reference(section, "", "policy", f"policy:{policy.name}") for policy in policies
            for section in named_sections(policy.framework.reference, headings)]


def unnamed_policy_sections(headings) -> list[str]:
    """Policies whose framework reference names no RA heading at all (a broken reference)."""
    from ncp.offline.policy_check import load_pack

    _, _, policies = load_pack()
    return [f"{p.name}: {p.framework.reference!r}" for p in policies
            if not named_sections(p.framework.reference, headings)]
