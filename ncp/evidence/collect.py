"""Turn one acceptance run's outputs (the validation suite's JUnit XML and each endpoint's AIPerf artifact directory)
into evidence records, judged by the endpoint's own thresholds (acceptance.check).

Outputs layout (what the validation suite Job and the AIPerf Jobs write to the benchmark claim):
    <outputs>/validation/*.xml           JUnit XML of `isvctl test run`
    <outputs>/<endpoint>/                AIPerf --artifact-dir (profile_export_aiperf.json inside; with a
                                         concurrency sweep one concurrency_<level>/ per level)
    <outputs>/<endpoint>/startup.json    startup and failure behaviour, from the serving twin or a lab run
    <outputs>/<endpoint>/failure.json    (ncp/evidence/behaviour.py documents them)
    <outputs>/<service>/                 a Triton inference service's AIPerf --artifact-dir (with
                                         server_metrics_export.json for the preprocessing threshold)
"""
import xml.etree.ElementTree as ElementTree
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from ncp.plan.aiperf_args import judged_artifacts, sweep_levels
from ncp.acceptance.check import evaluate_export, load_export
from ncp.evidence.behaviour import BehaviourResult, judge_failure, judge_startup
from ncp.evidence.owners import check_owner, phase_owner
from ncp.evidence.record import (BenchmarkResult, CacheState, CheckRow, Environment, EvidenceRecord, Phase, Sizing,
                             ValidationResult, Workload, sha256_of)
from ncp.evidence.sweep import Sweep, point, read_sweep
from ncp.plan.catalog import ROOT
from ncp.plan.evidence_key import endpoint_key, gpu_driver, network_mode, service_key
from ncp.plan.site_plan import SitePlan
from ncp.plan.thresholds import AcceptanceThresholds
from ncp.cli_exit import BadInput


class OutputsError(BadInput):
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
    runtime = site_plan.matrix.workload("dynamoRuntime")
    return Environment(
        kubernetes_version=site_plan.kubernetes_version, hardware_profile=site_plan.profile.name,
        gpu_driver=gpu_driver(site_plan), component_versions=versions,
        images={"serving": endpoint_plan.image}, model_source=model.source, model_revision=model.revision,
        tokenizer=model.tokenizer or model.name, backend=endpoint.backend, backend_version=runtime.version,
        network_mode=network_mode(site_plan, endpoint_plan), cache_state=cache_state,
        storage_path=_model_storage(site_plan),
        sizing=Sizing(file=endpoint.sizing, sha256=sha256_of(ROOT / endpoint.sizing)))


def _model_storage(site_plan: SitePlan) -> str:
    storage = site_plan.config.components.serving.storage
    assert storage is not None, "a stack with endpoints or services has storage tiers (the plan requires them)"
    return storage.model_artifacts.storage_class


def _benchmark(directory: Path, thresholds: AcceptanceThresholds, concurrency: int) -> BenchmarkResult:
    """The judged run: each threshold's check (with Triton's server metrics where AIPerf wrote them) and its headline
    figures."""
    rows = evaluate_export(directory, thresholds)
    return BenchmarkResult(source=str(directory), thresholds=thresholds.model_dump(by_alias=True, exclude_none=True),
                           checks=[CheckRow(**row.__dict__) for row in rows],
                           figures=point(concurrency, load_export(directory)))


def _status(passed: bool, checks) -> str:
    return "PASS" if passed else "MISSING" if all(c.status in ("PASS", "MISSING") for c in checks) else "FAIL"


# RA: Validation Methodology: "Require failures to identify the owning layer before closing the run."
def judged_phases(validation: ValidationResult, benchmark: BenchmarkResult, sweep: Optional[Sweep],
                  behaviour: list[BehaviourResult]) -> tuple[list[Phase], list[str]]:
    """Every phase with its owner and verdict, and the owning layer of each failure (data/evidence-owners.yaml)."""
    phases = [Phase(name="validation", owner=phase_owner("validation"),
                    status="PASS" if validation.passed else "FAIL"),
              Phase(name="benchmark", owner=phase_owner("benchmark"),
                    status=_status(benchmark.passed, benchmark.checks))]  # type: ignore[arg-type]
    if sweep is not None:
        phases.append(Phase(name="sweep", owner=phase_owner("sweep"), status="PASS" if sweep.knee else "MISSING",
                            detail=f"knee at concurrency {sweep.knee}"))
    phases += [Phase(name=result.phase, owner=phase_owner(result.phase), status=result.status) for result in behaviour]
    failing = [phase_owner("validation")] if not validation.passed else []
    failing += [check_owner("benchmark", row.metric) for row in benchmark.checks if row.status != "PASS"]
    failing += [phase_owner("sweep") for phase in phases if phase.name == "sweep" and phase.status != "PASS"]
    failing += [check.owner for result in behaviour for check in result.checks if check.status != "PASS"]
    return phases, list(dict.fromkeys(failing))


def _endpoint_record(common: dict, site_plan: SitePlan, endpoint_plan, outputs: Path, cache_state: CacheState,
                     versions: dict, validation: ValidationResult) -> EvidenceRecord:
    endpoint, slo = endpoint_plan.endpoint, endpoint_plan.endpoint.slo
    directory = Path(outputs) / endpoint.name
    benchmark = _benchmark(Path(judged_artifacts(str(directory), slo.concurrency, slo.concurrency_sweep)),
                           slo.thresholds, slo.concurrency)
    sweep = read_sweep(directory, slo.concurrency, slo.concurrency_sweep)
    startup, failure = judge_startup(directory, slo.startup), judge_failure(directory, slo.failure)
    phases, failing = judged_phases(validation, benchmark, sweep, [startup, failure])
    return EvidenceRecord(
        **common, kind="endpoint", endpoint=endpoint.name, tenant=endpoint.tenant,
        key={**endpoint_key(site_plan, endpoint_plan), "cacheState": cache_state},
        environment=_environment(site_plan, endpoint_plan, cache_state, versions),
        workload=Workload(isl=slo.isl, osl=slo.osl, isl_stddev=slo.isl_stddev, osl_stddev=slo.osl_stddev,
                          concurrency=slo.concurrency, concurrency_sweep=sweep_levels(slo.concurrency,
                                                                                      slo.concurrency_sweep),
                          request_count=slo.request_count),
        validation=validation, benchmark=benchmark, sweep=sweep, startup=startup, failure=failure, phases=phases,
        passed=not failing, failing_layers=failing)


def _service_record(common: dict, site_plan: SitePlan, service_plan, outputs: Path, cache_state: CacheState,
                    versions: dict, validation: ValidationResult) -> EvidenceRecord:
    """A Triton inference service, judged like an endpoint on its own thresholds (request latency, throughput,
    preprocessing time from Triton's counters)."""
    service, slo = service_plan.service, service_plan.service.slo
    directory = Path(outputs) / service.name
    thresholds = AcceptanceThresholds.model_validate(service_plan.acceptance_thresholds())
    benchmark = _benchmark(directory, thresholds, slo.concurrency)
    phases, failing = judged_phases(validation, benchmark, None, [])
    key = {**service_key(site_plan, service_plan), "cacheState": cache_state}
    return EvidenceRecord(
        **common, kind="inferenceService", endpoint=service.name, tenant=service.tenant, key=key,
        environment=Environment(
            kubernetes_version=site_plan.kubernetes_version, hardware_profile=site_plan.profile.name,
            gpu_driver=gpu_driver(site_plan), component_versions=versions,
            images={"server": service_plan.server_image, "builder": service_plan.builder_image},
            model_source=service.artifact.source, model_revision=service.artifact.revision, tokenizer=None,
            backend="triton", backend_version=site_plan.matrix.workload("triton").version,
            network_mode=key["networkMode"], cache_state=cache_state, storage_path=_model_storage(site_plan),
            sizing=Sizing(file=key["sizingFile"], sha256=key["sizingSha256"])),
        workload=Workload(isl=None, osl=None, concurrency=slo.concurrency, request_count=slo.request_count),
        validation=validation, benchmark=benchmark, phases=phases, passed=not failing, failing_layers=failing)


def build_records(stack: str, site_plan: SitePlan, versions: dict, outputs: Path, cache_state: CacheState,
                  run_id: Optional[str] = None, now: Optional[datetime] = None) -> list[EvidenceRecord]:
    """One record per endpoint and per Triton inference service; `versions`: the chart versions the stack deploys
    (the program's `versions` output)."""
    now = now or datetime.now(timezone.utc)
    common = {"run_id": run_id or now.strftime("%Y%m%dT%H%M%SZ"), "created_at": now.isoformat(timespec="seconds"),
              "stack": stack, "site": site_plan.site.name, "site_environment": site_plan.environment.value}
    validation = read_junit(Path(outputs) / "validation")
    return ([_endpoint_record(common, site_plan, plan, outputs, cache_state, versions, validation)
             for plan in site_plan.endpoints]
            + [_service_record(common, site_plan, plan, outputs, cache_state, versions, validation)
               for plan in site_plan.inference_services])
