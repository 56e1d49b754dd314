"""The release review (`ncp report`): versions vs the RA matrix, images with digests and SBOM state, decisions,
disposition, policy results incl. the promotion gate, latest evidence per endpoint, traceability, and a site
picture rendered by Graphviz; exit codes for a missing RA text, a bad stack and a dangling RA reference."""
import json
import xml.etree.ElementTree as ElementTree

import pytest
import yaml

from ncp.plan.catalog import load_matrix
from ncp.plan.sources import plan_from_stack_file
from ncp.ratrace import matrix
from ncp.ratrace.ra_text import ra_text_path
from ncp.ratrace.scan import Reference
from ncp.report import cli as report_cli
from ncp.report.picture import EVIDENCE_COLOUR
from ncp.report.review import SBOM_UNKNOWN, image_row

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def prod_review(tmp_path_factory):
    if not ra_text_path().is_file():
        pytest.skip(f"{ra_text_path()} is absent: the review needs the RA text for its traceability matrix")
    out = tmp_path_factory.mktemp("review")
    index = out / "index.yaml"
    index.write_text(yaml.safe_dump({"records": [
        {"stack": "prod", "endpoint": "chat-dense", "runId": "old", "createdAt": "2026-01-01T00:00:00+00:00",
         "passed": False, "modelRevision": "a" * 40, "backendVersion": "1.5.0", "sizingSha256": "b" * 64,
         "record": "o"},
        {"stack": "prod", "endpoint": "chat-dense", "runId": "new", "createdAt": "2026-02-01T00:00:00+00:00",
         "passed": True, "modelRevision": "a" * 40, "backendVersion": "1.5.0", "sizingSha256": "b" * 64, "record": "n"},
    ]}))
    assert report_cli.main(["--stack", "prod", "--out", str(out), "--evidence-index", str(index)]) == 0
    return out, json.loads((out / "review.json").read_text())


def test_review_lists_every_matrix_entry_with_its_ra_entry(prod_review):
    _, review = prod_review
    by_name = {c["component"]: c for c in review["components"]}
    matrix_file = load_matrix()
    assert set(by_name) == set(matrix_file.components) | set(matrix_file.workloads)
    for name, pin in {**matrix_file.components, **matrix_file.workloads}.items():
        assert by_name[name]["raMatrix"] == pin.ra_matrix and by_name[name]["deviation"] == pin.deviation


# RA: Security And Compliance: "Release reviews should record component revisions, package metadata"
def test_review_images_policies_evidence(prod_review):
    _, review = prod_review
    site_plan = plan_from_stack_file("prod")
    serving = {e.image for e in site_plan.endpoints}
    rows = {i["reference"]: i for i in review["images"]}
    for image in serving:
        assert rows[image]["digest"] == image.split("@")[1] if "@" in image else rows[image]["digest"] is None
    assert {i["sbom"] for i in review["images"]} == {SBOM_UNKNOWN}, "no SBOM fact is recorded, so none is claimed"
    assert set(review["policies"]) == {"prod", "promotion"}
    gated = {v["message"].split(":")[0] for v in review["policies"]["promotion"]["violations"]
             if v["policy"] == "promotion-evidence"}
    assert gated == {e.endpoint.name for e in site_plan.endpoints}, "the index's records match no revision or sizing"
    latest = {e["endpoint"]: e["latestEvidence"] for e in review["endpoints"]}
    assert latest["chat-dense"]["runId"] == "new" and latest["reasoning-large"] is None
    trust = {e["endpoint"]: e["evidenceTrust"] for e in review["endpoints"]}
    assert trust["chat-dense"] == "refused: unsigned", "the review says why the gate would not believe the record"
    assert [d["decision"] for d in review["localDecisions"][:len(site_plan.config.local_decisions)]] == \
        [d.decision for d in site_plan.config.local_decisions]


# RA: Layered Inference Factory View: "confirm that every tenant-facing endpoint has a path through platform API"
def test_review_markdown_and_picture(prod_review):
    out, review = prod_review
    markdown = (out / "review.md").read_text()
    for heading in ("Components and versions", "SBOM", "Local implementation decisions", "Backend disposition",
                    "Policy results", "latest evidence", "RA traceability"):
        assert heading in markdown
    svg = ElementTree.parse(out / "site.svg").getroot()
    text = " ".join(t.text or "" for t in svg.iter(f"{SVG}text"))
    for tenant in review["tenants"]:
        assert tenant["name"] in text
    for endpoint in review["endpoints"]:
        assert endpoint["endpoint"] in text
    assert "Inference Serving Layer" in text and review["hardwareProfile"] in text
    assert (out / "site.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    borders = {node.find(f"{SVG}title").text: {p.get("stroke") for p in node.iter(f"{SVG}polygon")}
               for node in svg.iter(f"{SVG}g") if node.get("class") == "node"}
    assert EVIDENCE_COLOUR[True] in borders["e_chat_dense"], "passed latest evidence: green border"
    assert EVIDENCE_COLOUR[None] in borders["e_reasoning_large"], "no evidence: grey border"


def test_image_row_without_digest_or_registry():
    assert image_row("nginx:1.27")["origin"] == "docker.io" and image_row("nginx:1.27")["digest"] is None
    row = image_row("localhost:5000/team/tool@sha256:abc")
    assert row["origin"] == "localhost:5000" and row["digest"] == "sha256:abc" and row["tag"] == ""


def test_exit_codes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NCP_RA_TEXT", str(tmp_path / "missing.txt"))
    assert report_cli.main(["--stack", "prod", "--out", str(tmp_path)]) == 2
    assert "RA text not found" in capsys.readouterr().err
    monkeypatch.delenv("NCP_RA_TEXT")
    assert report_cli.main(["--stack", "no-such-stack", "--out", str(tmp_path)]) == 2
    if not ra_text_path().is_file():
        pytest.skip("the RA text is absent")
    bad = Reference("Validation Methodology", "Platform validation is optional.", "test", "tests/x.py:1")
    monkeypatch.setattr(matrix, "comment_references", lambda: [bad])
    assert report_cli.main(["--stack", "lab", "--out", str(tmp_path)]) == 1
    assert "Platform validation is optional." in capsys.readouterr().err


def test_sbom_facts_come_from_data_and_unknowns_are_disposition_items(prod_review, monkeypatch):
    from ncp.report import sbom
    _, review = prod_review
    assert sbom.sbom_facts().images == {}, "the shipped data claims no fact it has no source for"
    assert len(review["dispositionItems"]) == len(review["images"]), "every unknown SBOM is a disposition item"
    assert all("data/image-sbom.yaml" in item for item in review["dispositionItems"])
    recorded = review["images"][0]["repository"]
    facts = sbom.SbomFacts.model_validate({"images": {recorded: {
        "sbom": "published", "where": "cosign download sbom", "source": "vendor docs (test fact)"}}})
    from ncp.report import review as review_module
    monkeypatch.setattr(review_module, "sbom_facts", lambda: facts)
    row = image_row(review["images"][0]["reference"])
    assert row["sbom"] == "published (cosign download sbom); source: vendor docs (test fact)"
    assert sbom.disposition_items([row]) == []
    with pytest.raises(Exception, match="source"):
        sbom.SbomFacts.model_validate({"images": {recorded: {"sbom": "published"}}})


def test_inference_services_are_reviewed_and_drawn_beside_the_endpoints(tmp_path):
    """The traditional ML path is part of the site: its services are rows of the review and boxes of the picture."""
    if not ra_text_path().is_file():
        pytest.skip(f"{ra_text_path()} is absent: the review needs the RA text for its traceability matrix")
    assert report_cli.main(["--stack", "vision", "--out", str(tmp_path)]) == 0
    review = json.loads((tmp_path / "review.json").read_text())
    (row,) = [e for e in review["endpoints"] if e["endpoint"] == "shelf-classify"]
    assert (row["tenant"], row["mode"], row["gpus"], row["backend"]) == ("retail-vision", "triton, MIG 1g.18gb", 8,
                                                                        "triton")
    texts = {t.text for t in ElementTree.parse(tmp_path / "site.svg").iter(f"{SVG}text")}
    assert "shelf-classify" in texts


def test_review_without_the_ra_text_marks_traceability_not_available(tmp_path, monkeypatch, capsys):
    """A fork without ../shared beside it still gets its review; the traceability section says it is missing."""
    from ncp.ratrace import ra_text

    monkeypatch.delenv("NCP_RA_TEXT", raising=False)
    monkeypatch.setattr(ra_text, "DEFAULT_RA_TEXT", tmp_path / "absent" / "ra.txt")
    assert report_cli.main(["--stack", "lab", "--out", str(tmp_path / "out")]) == 0
    assert "warning: RA traceability not available: the RA text is not at " in capsys.readouterr().err
    review = json.loads((tmp_path / "out" / "review.json").read_text())
    assert review["traceability"]["available"] is False and review["traceability"]["rows"] == []
    markdown = (tmp_path / "out" / "review.md").read_text()
    assert "## RA traceability\n\nNot available: the RA text is not at " in markdown
