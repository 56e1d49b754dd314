"""The RA text split into sections and sentences, and the sentences that state a requirement.

The RA is plain text (a rendered web page): a section heading is a short line without a full stop between blank
lines; table rows are glued cells, so a sentence is any run of text ending in '.', '!' or '?'."""
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ncp.plan.catalog import ROOT

DEFAULT_RA_TEXT = ROOT.parent / "shared" / "reference" / "nvidia-inference-reference-architecture.txt"
RA_TEXT_ENV = "NCP_RA_TEXT"
# Words that make a sentence a requirement rather than a description (the RA's own modal vocabulary).
REQUIREMENT = re.compile(r"\b(must|should|shall|needs?|require[sd]?|requirement|mandate|do not|every|reject)\b",
                         re.IGNORECASE)
# Imperative sentences ("Use KAI Scheduler for ...", "Record partner-selected ..."): a verb the RA opens its
# instructions with, at the start of a sentence or of a table cell glued to the previous one ("...SchedulingUse").
IMPERATIVE = re.compile(
    r"(?:^|(?<=[a-z)]))(Use|Record|Keep|Place|Prefer|Decide|Treat|Validate|Add|Plan|Select|Define|Run|Start|Deploy|"
    r"Install|Avoid|Give|Include|Separate|Expose|Enable|Measure|Capture|Track|Pin|Document|Confirm|Map|Route|"
    r"Apply|Verify|Build|Store|Review|Tune|Benchmark|Compare|Publish|Label|Isolate|Scale|Limit|Set|Choose|"
    r"Prepare|Test|Check|Collect|Create|Ensure|Reserve|Align|Assign|Attach|Bind|Cache|Configure|Let|Make|"
    r"Point|Promote|Protect|Restrict|Return|Roll|Schedule|Stage|Start|Stop|Version|Write)\b")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[a-z0-9)][.!?])(?=[A-Z])")
_MAX_HEADING = 70


class RaTextMissing(FileNotFoundError):
    pass


@dataclass(frozen=True)
class Requirement:
    section: str
    sentence: str

    @property
    def key(self) -> tuple[str, str]:
        return self.section, normalize(self.sentence)


def normalize(text: str) -> str:
    return " ".join(text.split()).strip().lower()


def ra_text_path() -> Path:
    return Path(os.environ.get(RA_TEXT_ENV) or DEFAULT_RA_TEXT)


def read_ra_text(path: Optional[Path] = None) -> str:
    path = Path(path or ra_text_path())
    if not path.is_file():
        raise RaTextMissing(f"RA text not found at {path}\n  fix: set {RA_TEXT_ENV}=<path to "
                            "nvidia-inference-reference-architecture.txt> (shared/reference in the project workspace)")
    return path.read_text(encoding="utf-8")


def _is_heading(lines: list[str], index: int) -> bool:
    line = lines[index].strip()
    blank_around = (index == 0 or not lines[index - 1].strip()) and (
        index + 1 == len(lines) or not lines[index + 1].strip())
    return bool(line) and blank_around and len(line) <= _MAX_HEADING and not line.endswith((".", ":"))


def sections(text: str) -> dict[str, str]:
    """Heading -> body text (until the next heading), in document order."""
    lines = text.splitlines()
    result: dict[str, list[str]] = {}
    current = "Preamble"
    for index, line in enumerate(lines):
        if _is_heading(lines, index):
            current = line.strip()
            result.setdefault(current, [])
        else:
            result.setdefault(current, []).append(line)
    return {heading: "\n".join(body) for heading, body in result.items()}


def sentences(body: str) -> list[str]:
    found = []
    for paragraph in body.split("\n"):
        found += [s.strip(" •\t") for s in _SENTENCE_END.split(paragraph.strip()) if s.strip(" •\t")]
    return found


def requirements(text: str) -> list[Requirement]:
    return [Requirement(section, sentence) for section, body in sections(text).items()
            for sentence in sentences(body) if REQUIREMENT.search(sentence) or IMPERATIVE.search(sentence)]


def contains(text: str, section: str, sentence: str) -> bool:
    """Does the RA's `section` contain `sentence` (whitespace and case folded)?"""
    body = sections(text).get(section)
    return body is not None and normalize(sentence) in normalize(body)
