"""Every alert the program renders (example stacks lab and prod: GPU health, tenant usage, break-fix, each endpoint's
and each inference service's rules) has its runbook, and the runbook exists. Two kinds of runbook live in
docs/runbooks/: a layer runbook (`Owning layer:`, one `## <alert>` section per alert saying what it means, which
signal it reads and how that signal behaves at its exporter) for every alert, and a fault-class procedure (XID, row
remap, NIC link down, thermal, capacity: data/break-fix.yaml faultClasses) for the alerts of a fault class.
`runbook_url` is the fault class's procedure where the alert has one, else its section of the layer runbook. The
`layer` label is the documented owning layer (data/break-fix.yaml alertLayers; tests/test_break_fix.py). No layer
runbook section is left without an alert."""
import re

import pytest

from tests.support.rule_tests import rule_files, rules_of
from ncp.plan.break_fix import break_fix
from ncp.plan.catalog import ROOT
from ncp.plan.names import RUNBOOKS, runbook_url

RUNBOOK_DIR = ROOT / RUNBOOKS
SECTION = re.compile(r"^## (\S+)\n(.*?)(?=^## |\Z)", re.M | re.S)


def rendered_alerts(recording) -> list[dict]:
    return [rule for groups in rule_files(recording).values() for rule in rules_of(groups, "alert")]


def layer_runbooks() -> list:
    return [path for path in sorted(RUNBOOK_DIR.glob("*.md")) if "Owning layer:" in path.read_text()]


def runbook_sections() -> dict[str, dict[str, str]]:
    """Layer runbook -> {alert: section text}, from the docs/runbooks/<layer>.md files."""
    return {path.stem: dict(SECTION.findall(path.read_text())) for path in layer_runbooks()}


@pytest.mark.parametrize("stack", ["lab", "prod"])
def test_every_alert_has_its_runbook(stack, request):
    sections, facts = runbook_sections(), break_fix()
    problems = []
    for rule in rendered_alerts(request.getfixturevalue(stack)):
        name = rule["alert"]
        home = next((layer for layer, alerts in sections.items() if name in alerts), None)
        if home is None:
            problems.append(f"{name}: no `## {name}` section in any layer runbook of {RUNBOOKS}")
            continue
        wanted = facts.runbook_of(name) or runbook_url(home, name)
        if rule["annotations"].get("runbook_url") != wanted:
            problems.append(f"{name}: runbook_url {rule['annotations'].get('runbook_url')!r}, expected {wanted}")
        if not (ROOT / wanted.split("#")[0]).is_file():
            problems.append(f"{name}: {wanted} does not exist")
        text = sections[home][name]
        if "Meaning:" not in text or not re.search(r"(Exporter behaviour|Signal):", text):
            problems.append(f"{name}: its section must say `Meaning:` and the signal's exporter behaviour")
    assert problems == []


def test_no_runbook_section_outlives_its_alert(lab, prod):
    alerts = {rule["alert"] for recording in (lab, prod) for rule in rendered_alerts(recording)}
    documented = {name for sections in runbook_sections().values() for name in sections}
    assert documented - alerts == set()
    assert len(layer_runbooks()) >= 4, "the layer runbooks carry `Owning layer:`"
