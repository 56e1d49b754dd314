"""The record as CI systems read it: JUnit XML (one testsuite per phase, one testcase per check) and CTRF JSON
(Common Test Report Format, specVersion 1.0.0: ctrf-io/ctrf schema/ctrf.schema.json — required `reportFormat`,
`specVersion`, `results.tool.name`, `results.summary.{tests,passed,failed,skipped,pending,other,start,stop}` with
start/stop in ms since the epoch, `results.tests[].{name,status,duration}`, status one of passed, failed, skipped,
pending, other). A MISSING check fails in both (the gate treats it as failed); a phase NOT RUN is skipped."""
import json
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from datetime import datetime

CTRF_SPEC_VERSION = "1.0.0"
TOOL = "ncp-inference evidence"
STATUS = {"PASS": "passed", "FAIL": "failed", "MISSING": "failed", "NOT RUN": "skipped"}


@dataclass(frozen=True)
class Case:
    phase: str
    name: str
    status: str  # PASS | FAIL | MISSING | NOT RUN
    owner: str
    message: str = ""


def junit_xml(title: str, run_id: str, cases: list[Case]) -> str:
    root = ElementTree.Element("testsuites", name=f"{title} ({run_id})")
    phases: dict[str, list[Case]] = {}
    for case in cases:
        phases.setdefault(case.phase, []).append(case)
    for phase, members in phases.items():
        failed = sum(STATUS[c.status] == "failed" for c in members)
        skipped = sum(STATUS[c.status] == "skipped" for c in members)
        suite = ElementTree.SubElement(root, "testsuite", name=phase, tests=str(len(members)), failures=str(failed),
                                       errors="0", skipped=str(skipped))
        for case in members:
            element = ElementTree.SubElement(suite, "testcase", classname=f"{title}.{phase}", name=case.name)
            ElementTree.SubElement(ElementTree.SubElement(element, "properties"), "property", name="owner",
                                   value=case.owner)
            if STATUS[case.status] == "failed":
                ElementTree.SubElement(element, "failure", type=case.status,
                                       message=f"{case.status} (owner: {case.owner}) {case.message}".strip())
            elif STATUS[case.status] == "skipped":
                ElementTree.SubElement(element, "skipped", message=case.message or "not run")
    root.set("tests", str(len(cases)))
    root.set("failures", str(sum(STATUS[c.status] == "failed" for c in cases)))
    ElementTree.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ElementTree.tostring(root, encoding="unicode") + "\n"


def ctrf_json(title: str, run_id: str, created_at: str, cases: list[Case], environment: dict) -> str:
    start = int(datetime.fromisoformat(created_at).timestamp() * 1000)
    tests = [{"name": f"{case.phase}: {case.name}", "status": STATUS[case.status], "duration": 0,
              "rawStatus": case.status, "suite": [title, case.phase], "tags": [case.owner],
              **({"message": case.message} if case.message else {}), "extra": {"owner": case.owner}}
             for case in cases]
    summary = {status: sum(t["status"] == status for t in tests)
               for status in ("passed", "failed", "skipped", "pending", "other")}
    report = {"reportFormat": "CTRF", "specVersion": CTRF_SPEC_VERSION, "runId": run_id, "timestamp": created_at,
              "generatedBy": TOOL,
              "results": {"tool": {"name": TOOL}, "summary": {"tests": len(tests), **summary, "start": start,
                                                                "stop": start},
                          "tests": tests, "environment": {"appName": title, "buildName": run_id,
                                                          "extra": environment}}}
    return json.dumps(report, indent=2) + "\n"
