"""Every alert the program renders (example stacks lab and prod: GPU health, tenant usage, break-fix, each endpoint's
and each inference service's rules) names its owning layer and its runbook, and the runbook exists: `layer` is one of
the runbook files in docs/runbooks/, `runbook_url` points at that file and at a `## <alert>` section in it, and the
section says what the alert means, which signal it reads and how that signal behaves at its exporter. No runbook
section is left without an alert."""
import re

import pytest

from tests.support.rule_tests import rule_files, rules_of
from ncp.plan.catalog import ROOT
from ncp.plan.names import RUNBOOKS, runbook_url

RUNBOOK_DIR = ROOT / RUNBOOKS
SECTION = re.compile(r"^## (\S+)\n(.*?)(?=^## |\Z)", re.M | re.S)


def rendered_alerts(recording) -> list[dict]:
    return [rule for groups in rule_files(recording).values() for rule in rules_of(groups, "alert")]


def runbook_sections() -> dict[str, dict[str, str]]:
    """Layer -> {alert: section text}, from docs/runbooks/<layer>.md."""
    return {path.stem: dict(SECTION.findall(path.read_text())) for path in sorted(RUNBOOK_DIR.glob("*.md"))}


@pytest.mark.parametrize("stack", ["lab", "prod"])
def test_every_alert_names_its_layer_and_an_existing_runbook_section(stack, request):
    sections = runbook_sections()
    problems = []
    for rule in rendered_alerts(request.getfixturevalue(stack)):
        name, layer = rule["alert"], rule["labels"].get("layer")
        if layer not in sections:
            problems.append(f"{name}: layer {layer!r} has no runbook file {RUNBOOKS}/{layer}.md")
            continue
        if rule["annotations"].get("runbook_url") != runbook_url(layer, name):
            problems.append(f"{name}: runbook_url {rule['annotations'].get('runbook_url')!r}, "
                            f"expected {runbook_url(layer, name)}")
        if name not in sections[layer]:
            problems.append(f"{name}: no `## {name}` section in {RUNBOOKS}/{layer}.md")
            continue
        text = sections[layer][name]
        if "Meaning:" not in text or not re.search(r"(Exporter behaviour|Signal):", text):
            problems.append(f"{name}: its section must say `Meaning:` and the signal's exporter behaviour")
    assert problems == []


def test_no_runbook_section_outlives_its_alert(lab, prod):
    alerts = {rule["alert"] for recording in (lab, prod) for rule in rendered_alerts(recording)}
    documented = {name for sections in runbook_sections().values() for name in sections}
    assert documented - alerts == set()
    assert all("Owning layer:" in path.read_text() for path in RUNBOOK_DIR.glob("*.md"))
