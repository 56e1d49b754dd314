"""The traceability matrix: every RA requirement with the references that back it, and how far.

A requirement is "covered" only by a reference that quotes the whole sentence; a reference quoting a fragment of it
makes it "partial" (the rest of the sentence may ask for more than the code does); a policy that cites only the
sentence's section is context, never coverage ("not covered" unless a sentence-level reference exists).
References that quote a whole sentence the code does not fully back are held down by ratrace/downgrades.yaml."""
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Optional

import yaml

from ncp.ratrace.ra_text import Requirement, contains, normalize, requirements, sections
from ncp.ratrace.scan import Reference, comment_references, policy_references, unnamed_policy_sections

DOWNGRADES_FILE = Path(__file__).with_name("downgrades.yaml")
STATUSES = ("covered", "partial", "not covered")


@lru_cache(maxsize=1)
def downgrades() -> tuple[dict, ...]:
    return tuple(yaml.safe_load(DOWNGRADES_FILE.read_text()) or ())


def _downgrade(reference: Reference) -> Optional[dict]:
    return next((entry for entry in downgrades() if reference.where.split(":", 1)[0] == entry["where"]
                 and normalize(reference.sentence) == normalize(entry["sentence"])), None)


@dataclass
class Row:
    requirement: Requirement
    covered_by: list[Reference] = field(default_factory=list)  # quote the whole sentence
    partial_by: list[Reference] = field(default_factory=list)  # quote a fragment, or are held down
    section_policies: list[str] = field(default_factory=list)  # policies that cite the whole section: context only
    notes: list[str] = field(default_factory=list)  # why a whole-sentence reference is held down

    @property
    def status(self) -> str:
        return "covered" if self.covered_by else "partial" if self.partial_by else "not covered"

    def as_dict(self) -> dict:
        return {"section": self.requirement.section, "sentence": self.requirement.sentence,
                "coveredBy": [{"kind": r.kind, "where": r.where} for r in self.covered_by],
                "partialBy": [{"kind": r.kind, "where": r.where, "quote": r.sentence} for r in self.partial_by],
                "sectionPolicies": self.section_policies, "notes": self.notes, "status": self.status}


def dangling(text: str, references: list[Reference]) -> list[str]:
    """References that point at text the RA does not contain (wrong section or misquoted sentence)."""
    problems = [f"{r.where}: RA section {r.section!r} has no sentence {r.sentence!r}" if r.section else
                f"{r.where}: {r.sentence!r} is not a reference; write # RA: <section>: \"<sentence or fragment>\""
                for r in references if not contains(text, r.section, r.sentence)]
    return problems + [f"policy {entry} names no RA section" for entry in unnamed_policy_sections(set(sections(text)))]


def _whole(reference: Reference, requirement: Requirement) -> bool:
    """The reference quotes the whole sentence (its full stop aside), or all of it after the label of a table cell
    the rendered page glued to it ("Hardware profileEvery deployment needs ...")."""
    quote = normalize(reference.sentence).rstrip(".!?")
    original = " ".join(requirement.sentence.split()).rstrip(".!?")
    if quote == original.lower():
        return True
    label = original[: len(original) - len(quote)]
    return (original.lower().endswith(quote) and bool(label) and (label[-1].isalnum() or label.endswith(")"))
            and original[len(label)].isupper())


def build(text: str, references: Optional[list[Reference]] = None) -> tuple[list[Row], list[str]]:
    references = comment_references() if references is None else references
    headings = set(sections(text))
    section_policies: dict[str, list[str]] = {}
    for reference in policy_references(headings):
        section_policies.setdefault(reference.section, []).append(reference.where.split(":", 1)[1])
    rows = []
    for requirement in requirements(text):
        sentence = normalize(requirement.sentence)
        row = Row(requirement, section_policies=sorted(set(section_policies.get(requirement.section, []))))
        for reference in references:
            if reference.section != requirement.section or not reference.sentence \
                    or normalize(reference.sentence) not in sentence:
                continue
            whole = _whole(reference, requirement)
            held = _downgrade(reference) if whole else None
            if held:
                row.notes.append(f"{reference.where}: {held['reason']}")
                if held["status"] == "partial":
                    row.partial_by.append(reference)
            elif whole:
                row.covered_by.append(reference)
            else:
                row.partial_by.append(reference)
        rows.append(row)
    return rows, dangling(text, references)


def counts(rows: list[dict]) -> dict[str, int]:
    return {status: sum(row["status"] == status for row in rows) for status in STATUSES}


def summary(rows: list[dict]) -> str:
    count = counts(rows)
    return (f"{len(rows)} RA requirement sentences: {count['covered']} covered (a reference quotes the whole "
            f"sentence), {count['partial']} partial (a reference quotes a fragment), {count['not covered']} not "
            "covered (a policy citing only the section does not count).")


def render(rows: list[dict]) -> str:
    """Markdown table of `Row.as_dict()` rows (the form the release review's JSON keeps)."""
    lines = [summary(rows), "", "| RA section | Requirement | Status | Backed by |", "|---|---|---|---|"]
    for row in rows:
        where = [f"{c['kind']}: `{c['where']}`" for c in row["coveredBy"]]
        where += [f"{c['kind']} (fragment \"{c['quote']}\"): `{c['where']}`" for c in row.get("partialBy", [])]
        where += [f"held down: {note}" for note in row.get("notes", [])]
        where += [f"section cited by policy `{name}` (not coverage)" for name in row["sectionPolicies"]]
        sentence = row["sentence"].replace("|", "/")
        status = row["status"] if row["status"] == "covered" else f"**{row['status']}**"
        lines.append(f"| {row['section']} | {sentence} | {status} | {'<br>'.join(where).replace('|', '/') or '-'} |")
    return "\n".join(lines)
