"""Turn one acceptance run's outputs (the validation suite's JUnit XML and each endpoint's AIPerf artifact directory)
into evidence records, judged by the endpoint's own thresholds (acceptance.check).

Outputs layout (what the validation suite Job and the AIPerf Jobs write to the benchmark claim):
    <outputs>/validation/*.xml           JUnit XML of `isvctl test run`
    <outputs>/<endpoint>/                AIPerf --artifact-dir (profile_export_aiperf.json inside)
"""
import xml.etree.ElementTree as ElementTree
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from acceptance.check import evaluate, load_export
from evidence.record import (BenchmarkResult, CacheState, CheckRow, Environment, EvidenceRecord, Sizing,
                             ValidationResult, Workload, sha256_of)
from plan.catalog import ROOT
from plan.site_plan import SitePlan

# RA: Validation Methodology: "Require failures to identify the owning layer before closing the run."
SERVING_LAYER, VALIDATION_LAYER = "Inference Serving Layer", "Cluster baseline (validation suite)"


class OutputsError(Exception):
    """The run's outputs are missing or unreadable; the message names the path and the fix."""


def read_junit(directory: Path) -> ValidationResult:
    files = sorted(Path(directory).glob("*.xml"))
    if not files:
        raise OutputsError(f"{directory}: no JUnit XML from the validation suite\n  fix: pass the outputs directory "
                           "the validation suite Job wrote (isvctl test run --junitxml)")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    failed = []
    for path in files:
        try:
            root = ElementTree.parse(path).getroot()
        except ElementTree.ParseError as error:
            raise OutputsError(f"{path}: not valid JUnit XML ({error})\n  fix: re-run the validation suite") from None
        suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
        for suite in suites:
            for key in totals:
                totals[key] += int(suite.get(key, 0))
            for case in suite.iter("testcase"):
                if case.find("failure") is not None or case.find("error") is not None:
                    failed.append(f"{case.get('classname', '')}.{case.get('name', '')}".strip("."))
    return ValidationResult(source=", ".join(p.name for p in files), failed_cases=failed, **totals)


def _environment(site_plan: SitePlan, endpoint_plan, cache_state: CacheState, versions: dict) -> Environment:
    endpoint = endpoint_plan.endpoint
    model = endpoint.model
    matrix = site_plan.matrix
    runtime = matrix.workload("dynamoRuntime")
    mode = endpoint_plan.mode + (" over RDMA rails" if endpoint_plan.mode == "disaggregated"
                                 and site_plan.network_enabled else "")
    storage = site_plan.config.components.serving.storage
    assert storage is not None, "a stack with endpoints has storage tiers (the plan requires them)"
    return Environment(
        kubernetes_version=site_plan.kubernetes_version, hardware_profile=site_plan.profile.name,
        gpu_driver=matrix.pin("gpuOperator").images.get("driver", "preinstalled"),
        component_versions=versions,
        images={"serving": endpoint_plan.image}, model_source=model.source, model_revision=model.revision,
        tokenizer=model.tokenizer or model.name, backend=endpoint.backend, backend_version=runtime.version,
        network_mode=mode, cache_state=cache_state,
        storage_path=storage.model_artifacts.storage_class,
        sizing=Sizing(file=endpoint.sizing, sha256=sha256_of(ROOT / endpoint.sizing)))


def _benchmark(directory: Path, thresholds) -> BenchmarkResult:
    rows = evaluate(load_export(directory), thresholds)
    return BenchmarkResult(source=str(directory), thresholds=thresholds.model_dump(by_alias=True, exclude_none=True),
                           checks=[CheckRow(**row.__dict__) for row in rows])


def build_records(stack: str, site_plan: SitePlan, versions: dict, outputs: Path, cache_state: CacheState,
                  run_id: Optional[str] = None, now: Optional[datetime] = None) -> list[EvidenceRecord]:
    """One record per endpoint; `versions`: the chart versions the stack deploys (the program's `versions` output)."""
    now = now or datetime.now(timezone.utc)
    run_id = run_id or now.strftime("%Y%m%dT%H%M%SZ")
    validation = read_junit(Path(outputs) / "validation")
    records = []
    for endpoint_plan in site_plan.endpoints:
        endpoint = endpoint_plan.endpoint
        benchmark = _benchmark(Path(outputs) / endpoint.name, endpoint.slo.thresholds)
        layers = ([VALIDATION_LAYER] if not validation.passed else []) + (
            [SERVING_LAYER] if not benchmark.passed else [])
        records.append(EvidenceRecord(
            run_id=run_id, created_at=now.isoformat(timespec="seconds"), stack=stack, site=site_plan.site.name,
            site_environment=site_plan.environment.value, endpoint=endpoint.name, tenant=endpoint.tenant,
            environment=_environment(site_plan, endpoint_plan, cache_state, versions),
            workload=Workload(isl=endpoint.slo.isl, osl=endpoint.slo.osl, concurrency=endpoint.slo.concurrency,
                              request_count=endpoint.slo.request_count),
            validation=validation, benchmark=benchmark, passed=not layers, failing_layers=layers))
    return records
