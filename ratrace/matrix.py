"""The traceability matrix: every RA requirement with the references that cover it, or "not covered"."""
from dataclasses import dataclass, field
from typing import Optional

from ratrace.ra_text import Requirement, contains, normalize, requirements, sections
from ratrace.scan import Reference, comment_references, policy_references, unnamed_policy_sections


@dataclass
class Row:
    requirement: Requirement
    covered_by: list[Reference] = field(default_factory=list)  # sentence-level references
    section_policies: list[str] = field(default_factory=list)  # policies that cite the whole section

    def as_dict(self) -> dict:
        return {"section": self.requirement.section, "sentence": self.requirement.sentence,
                "coveredBy": [{"kind": r.kind, "where": r.where} for r in self.covered_by],
                "sectionPolicies": self.section_policies,
                "status": "covered" if self.covered_by else "section policy only" if self.section_policies
                else "not covered"}


def dangling(text: str, references: list[Reference]) -> list[str]:
    """References that point at text the RA does not contain (wrong section or misquoted sentence)."""
    problems = [f"{r.where}: RA section {r.section!r} has no sentence {r.sentence!r}" if r.section else
                f"{r.where}: {r.sentence!r} is not a reference; write # RA: <section>: \"<sentence or fragment>\""
                for r in references if not contains(text, r.section, r.sentence)]
    return problems + [f"policy {entry} names no RA section" for entry in unnamed_policy_sections(set(sections(text)))]


def build(text: str, references: Optional[list[Reference]] = None) -> tuple[list[Row], list[str]]:
    references = comment_references() if references is None else references
    headings = set(sections(text))
    section_policies: dict[str, list[str]] = {}
    for reference in policy_references(headings):
        section_policies.setdefault(reference.section, []).append(reference.where.split(":", 1)[1])
    rows = []
    for requirement in requirements(text):
        sentence = normalize(requirement.sentence)
        covering = [r for r in references
                    if r.section == requirement.section and normalize(r.sentence) in sentence]
        rows.append(Row(requirement, covering, sorted(set(section_policies.get(requirement.section, [])))))
    return rows, dangling(text, references)


def render(rows: list[dict]) -> str:
    """Markdown table of `Row.as_dict()` rows (the form the release review's JSON keeps)."""
    count = {status: sum(r["status"] == status for r in rows)
             for status in ("covered", "section policy only", "not covered")}
    lines = [f"{len(rows)} RA requirement sentences: {count['covered']} covered by a reference to the sentence, "
             f"{count['section policy only']} only by a policy citing the section, {count['not covered']} not "
             "covered.", "", "| RA section | Requirement | Enforced or evidenced by |", "|---|---|---|"]
    for row in rows:
        where = [f"{c['kind']}: `{c['where']}`" for c in row["coveredBy"]]
        where += [f"policy (section): `{name}`" for name in row["sectionPolicies"]]
        sentence = row["sentence"].replace("|", "/")
        lines.append(f"| {row['section']} | {sentence} | {'<br>'.join(where) or '**not covered**'} |")
    return "\n".join(lines)
