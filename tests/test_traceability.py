"""RA traceability: requirements come from the RA text, every `# RA:` reference in the project quotes text the RA
contains, and a misquoted or misplaced reference is reported (the release review exits 1 on it)."""
import pytest

from ncp.ratrace import matrix
from ncp.ratrace.ra_text import contains, normalize, ra_text_path, read_ra_text, requirements, sections
from ncp.ratrace.scan import Reference, comment_references, policy_references, python_files, unnamed_policy_sections

GATE_SENTENCE = "Every deployment needs a named hardware profile and validation evidence."
MOE_SECTION = "Example Workload: Large MoE LLM Inference"


@pytest.fixture(scope="module")
def ra_text() -> str:
    if not ra_text_path().is_file():
        pytest.skip(f"{ra_text_path()} is absent: the RA text (shared/reference) is not available here")
    return read_ra_text()


def test_requirements_are_the_ras_modal_sentences(ra_text):
    found = {(r.section, r.sentence) for r in requirements(ra_text)}
    assert any(section == "Architecture Decision Guardrails" and GATE_SENTENCE in sentence
               for section, sentence in found)
    assert ("Validation Methodology", "Platform validation requires lab execution.") in found
    assert not any("The architecture uses a layered approach." == sentence for _, sentence in found), \
        "a descriptive sentence is not a requirement"
    assert {"Validation Methodology", "Serving Performance", "Security And Compliance"} <= set(sections(ra_text))


def test_every_reference_in_the_project_resolves(ra_text):
    references = comment_references()
    assert len(references) >= 5, "the evidence, report and policy code carry RA references"
    assert matrix.dangling(ra_text, references) == []


def test_misquoted_or_misplaced_references_are_reported(ra_text, tmp_path):
    (tmp_path / "ncp" / "plan").mkdir(parents=True)
    (tmp_path / "ncp" / "plan" / "rule.py").write_text(
        f'x = 1  # RA: Architecture Decision Guardrails: "{GATE_SENTENCE}"\n'
        '# RA: Architecture Decision Guardrails: "Every deployment needs no evidence at all."\n'
        f'# RA: Serving Performance: "{GATE_SENTENCE}"\n'
        '# RA: No Such Section: "Platform validation requires lab execution."\n'
        f'# RA: {MOE_SECTION}: "separate compute profiles for prefill and decode"\n'
        '# RA: Serving Performance - Reject comparisons that omit backend version\n')
    references = comment_references(tmp_path)
    assert [r.kind for r in references] == ["config rule"] * 6
    assert references[4].section == MOE_SECTION, "a heading holding a colon is one section"
    problems = matrix.dangling(ra_text, references)
    assert [p.split(":")[1] for p in problems] == ["2", "3", "4", "6"], problems
    assert "is not a reference" in problems[-1], "a malformed reference is reported, not dropped"
    assert contains(ra_text, "Architecture Decision Guardrails", GATE_SENTENCE.upper()), "case and spacing fold"


def test_policy_sections_must_name_ra_headings(ra_text):
    assert unnamed_policy_sections(set(sections(ra_text))) == []
    cited = {r.section for r in policy_references(set(sections(ra_text))) if r.where == "policy:image-references"}
    assert cited == {"Isolation And Security", "Security And Compliance"}, "a heading with a parenthetical counts"
    assert len(unnamed_policy_sections(set())) > 0, "a pack whose references match no heading is reported"


def test_matrix_marks_covered_and_not_covered(ra_text):
    reference = Reference("Architecture Decision Guardrails", GATE_SENTENCE, "policy", "policy/x.py:1")
    rows, dangling = matrix.build(ra_text, [reference])
    assert dangling == []
    by_sentence = {row.requirement.sentence: row.as_dict() for row in rows}
    gate = next(row for sentence, row in by_sentence.items() if GATE_SENTENCE in sentence)
    assert gate["status"] == "covered" and gate["coveredBy"] == [{"kind": "policy", "where": "policy/x.py:1"}]
    assert any(row["status"] == "not covered" for row in by_sentence.values())
    assert "**not covered**" in matrix.render([row.as_dict() for row in rows])


QUEUE_SECTION = "Telemetry And Observability"


def test_a_fragment_is_partial_never_covered(ra_text):
    """A reference quoting part of a sentence must not credit the whole sentence."""
    whole = next(r for r in requirements(ra_text) if r.section == "Architecture Decision Guardrails"
                 and GATE_SENTENCE in r.sentence)
    fragment = Reference(whole.section, "Every deployment needs a named hardware profile", "policy", "policy/x.py:1")
    rows, _ = matrix.build(ra_text, [fragment])
    row = next(row.as_dict() for row in rows if row.requirement == whole)
    assert row["status"] == "partial" and row["coveredBy"] == []
    assert row["partialBy"] == [{"kind": "policy", "where": "policy/x.py:1",
                                 "quote": "Every deployment needs a named hardware profile"}]
    assert "**partial**" in matrix.render([row])


def test_section_policies_are_context_not_coverage(ra_text):
    rows, _ = matrix.build(ra_text, [])
    with_policies = [row.as_dict() for row in rows if row.section_policies]
    assert with_policies, "some sections are cited by policies"
    assert all(row["status"] == "not covered" for row in with_policies)
    assert "section policy only" not in matrix.render(with_policies)


def test_imperative_sentences_are_requirements(ra_text):
    found = {normalize(r.sentence) for r in requirements(ra_text)}
    assert any(s.startswith("use kai scheduler for queue and allocation policy") for s in found)
    assert any(s.startswith("record partner-selected storage, gateway, registry") for s in found)
    assert "the architecture uses a layered approach." not in found


def test_held_down_references_still_exist_and_are_not_covered(ra_text):
    references = comment_references()
    rows, _ = matrix.build(ra_text, references)
    for entry in matrix.downgrades():
        matching = [r for r in references if r.where.split(":", 1)[0] == entry["where"]
                    and normalize(r.sentence) == normalize(entry["sentence"])]
        assert matching, f"stale entry in ratrace/downgrades.yaml: {entry['where']}: {entry['sentence']}"
        row = next(row for row in rows if normalize(row.requirement.sentence) == normalize(entry["sentence"]))
        assert row.status == entry["status"], row.as_dict()


def test_the_project_matrix_counts_add_up(ra_text):
    rows, dangling = matrix.build(ra_text)
    dicts = [row.as_dict() for row in rows]
    count = matrix.counts(dicts)
    assert sum(count.values()) == len(rows) and dangling == []
    assert all(row["coveredBy"] == [] or row["status"] == "covered" for row in dicts)
    assert f"{count['covered']} covered" in matrix.summary(dicts)


def test_only_the_projects_own_files_are_scanned(tmp_path):
    """A fresh clone holds its virtualenvs (.venv-twin's packages include non-UTF-8 sources): never scanned."""
    for venv in (".venv-twin/lib", "policy/venv/lib", ".git/hooks", "pkg/__pycache__"):
        (tmp_path / venv).mkdir(parents=True)
        (tmp_path / venv / "vendored.py").write_bytes(b"# caf\xe9\n")
    (tmp_path / "pkg" / "own.py").write_text("x = 1\n")
    assert [p.relative_to(tmp_path).as_posix() for p in python_files(tmp_path)] == ["pkg/own.py"]
