"""The evidence record schema, its Markdown rendering and the committed evidence index."""
# RA: Validation Methodology: "record the model, tokenizer, backend, container image, hardware, driver"
# RA: Validation Methodology: "Kubernetes version, network mode, storage path, prompt profile, output profile"
# RA: Serving Performance: "captured environment metadata, stored benchmark output, and a pass or fail threshold"
import hashlib
import json
from pathlib import Path
from typing import Callable, Literal, Optional, Union

import yaml
from pydantic import Field

from ncp.evidence.behaviour import BehaviourResult
from ncp.evidence.ci_reports import Case, ctrf_json, junit_xml
from ncp.evidence.signing import Signer
from ncp.evidence.store import split
from ncp.evidence.sweep import Sweep, SweepPoint
from ncp.plan.catalog import ROOT
from ncp.plan.names import EVIDENCE_INDEX, site_file
from ncp.plan.strict import StrictModel

# 2: signed (signature), keyed (key), kinds (endpoint, inferenceService), sweep, startup, failure, phases with owners
SCHEMA_VERSION = 2


def index_file(stack: str) -> Path:
    """The stack's committed evidence index, in its site folder (sites/<stack>/evidence/index.yaml)."""
    return ROOT / site_file(EVIDENCE_INDEX, stack)


CacheState = Literal["cold", "warm"]  # the model cache at the start of the run
EvidenceKind = Literal["endpoint", "inferenceService"]
PhaseStatus = Literal["PASS", "FAIL", "MISSING", "NOT RUN"]


class Sizing(StrictModel):
    file: str
    sha256: str


# RA: Known Limitations: "Benchmark results must be tied to the model, hardware, backend, traffic profile"
# RA: Performance Guidance: "Do not compare configurations unless the model, tokenizer, prompt distribution"
class Environment(StrictModel):
    kubernetes_version: str
    hardware_profile: str
    gpu_driver: str = Field(description="GPU Operator driver version the stack pins")
    component_versions: dict[str, str]
    images: dict[str, str] = Field(description="image references the run's workloads use (digest where pinned)")
    model_source: str
    model_revision: str
    tokenizer: Optional[str] = Field(description="None for a Triton service (tensors in, no tokens)")
    backend: str
    backend_version: str = Field(description="runtime release the backend image belongs to (Dynamo, Triton)")
    network_mode: str = Field(description="aggregated or disaggregated, and whether KV moves over RDMA rails")
    cache_state: CacheState
    storage_path: str = Field(description="storage class of the model artifacts")
    sizing: Sizing


class Workload(StrictModel):
    isl: Optional[int] = Field(description="mean input length (tokens); None for a Triton service")
    osl: Optional[int] = Field(description="mean output length (tokens); None for a Triton service")
    isl_stddev: int = 0
    osl_stddev: int = 0
    concurrency: int = Field(description="the level judged against the thresholds")
    concurrency_sweep: list[int] = Field(default_factory=list, description="every level measured (empty: none)")
    request_count: int


class ValidationResult(StrictModel):
    source: str
    tests: int
    failures: int
    errors: int
    skipped: int
    failed_cases: list[str] = Field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.tests > 0 and not (self.failures or self.errors)


class CheckRow(StrictModel):
    metric: str
    stat: str
    unit: str
    measured: Optional[float]
    threshold: str
    status: str
    detail: str = ""


class BenchmarkResult(StrictModel):
    source: str
    thresholds: dict
    checks: list[CheckRow]
    figures: Optional[SweepPoint] = Field(default=None, description="the run's headline figures, thresholds or not "
                                                                     "(what `compare` holds against the baseline)")

    @property
    def passed(self) -> bool:
        return all(row.status == "PASS" for row in self.checks)


class Phase(StrictModel):
    """One phase of the run, its verdict and the layer that owns it (data/evidence-owners.yaml)."""
    name: str
    owner: str
    status: PhaseStatus
    detail: str = ""


class EvidenceRecord(StrictModel):
    schema_version: int = SCHEMA_VERSION
    kind: EvidenceKind = "endpoint"
    run_id: str
    created_at: str
    stack: str
    site: str
    site_environment: str
    endpoint: str
    tenant: str
    key: dict[str, str] = Field(description="the like-for-like key (evidence_key.py KEY_FIELDS) it was measured "
                                            "under; the promotion gate and `compare` match on it")
    environment: Environment
    workload: Workload
    validation: ValidationResult
    benchmark: BenchmarkResult
    sweep: Optional[Sweep] = None
    startup: Optional[BehaviourResult] = None
    failure: Optional[BehaviourResult] = None
    phases: list[Phase] = Field(default_factory=list, description="every phase with its owner and verdict")
    passed: bool
    failing_layers: list[str] = Field(default_factory=list, description="owning RA layer of each failure")
    signature: Optional[dict] = Field(default=None, description="ed25519 over the rest (ncp/evidence/signing.py)")

    def to_json(self) -> str:
        return json.dumps(self.model_dump(by_alias=True, mode="json"), indent=2, sort_keys=False) + "\n"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _fmt(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.4g}"


def _sweep_lines(sweep: Sweep) -> list[str]:
    lines = ["", "## Concurrency sweep", "", f"Knee: **{sweep.knee}** ({sweep.knee_rule})", "",
             "| Concurrency | Output tok/s | Requests/s | TTFT p95 ms | ITL p95 ms | Latency p99 ms | Errors |",
             "|---|---|---|---|---|---|---|"]
    return lines + [f"| {p.concurrency}{' (knee)' if p.concurrency == sweep.knee else ''} | "
                    f"{_fmt(p.output_token_throughput)} | {_fmt(p.request_throughput)} | "
                    f"{_fmt(p.time_to_first_token_p95_ms)} | {_fmt(p.inter_token_latency_p95_ms)} | "
                    f"{_fmt(p.request_latency_p99_ms)} | {p.errors:g} |" for p in sweep.levels]


def _behaviour_lines(result: Optional[BehaviourResult]) -> list[str]:
    if result is None:
        return []
    title = {"startup": "Startup (cold and warm)", "failure": "Failure behaviour (worker killed mid-run)"}
    lines = ["", f"## {title[result.phase]}", "", f"**{result.status}**" + (f" · `{result.source}`"
                                                                           if result.source else "")]
    if result.checks:
        lines += ["", "| Check | Measured | Threshold | Result | Owner |", "|---|---|---|---|---|"]
        lines += [f"| {c.metric} | {_fmt(c.measured)} {c.unit} | {c.threshold} | {c.status} | {c.owner} |"
                  for c in result.checks]
        lines += [f"- {c.metric}: {c.detail}" for c in result.checks if c.detail]
    return lines


def render_markdown(record: EvidenceRecord) -> str:
    env = record.environment
    lines = [f"# Acceptance evidence: {record.endpoint} on {record.site} ({record.site_environment})", "",
             f"**{'PASSED' if record.passed else 'FAILED'}** · run `{record.run_id}` · {record.created_at} · "
             f"stack `{record.stack}` · {record.kind}", ""]
    if record.failing_layers:
        lines += ["Failing layers: " + ", ".join(record.failing_layers), ""]
    lines += ["## Phases", "", "| Phase | Owner | Result |", "|---|---|---|"]
    lines += [f"| {p.name} | {p.owner} | {p.status}{f' ({p.detail})' if p.detail else ''} |" for p in record.phases]
    lines += ["", "## Like-for-like key", "", "| Key | Value |", "|---|---|"]
    lines += [f"| {name} | `{value}` |" for name, value in record.key.items()]
    lines += ["", "## Environment", "", "| Fact | Value |", "|---|---|"]
    facts = {"Kubernetes": env.kubernetes_version, "Hardware profile": env.hardware_profile,
             "GPU driver": env.gpu_driver, "Model": f"{env.model_source} @ {env.model_revision}",
             "Tokenizer": env.tokenizer or "-", "Backend": f"{env.backend} ({env.backend_version})",
             "Network mode": env.network_mode, "Cache state": env.cache_state, "Storage": env.storage_path,
             "Sizing file": f"{env.sizing.file} (sha256 {env.sizing.sha256[:12]})"}
    facts.update({f"Version {name}": version for name, version in env.component_versions.items()})
    facts.update({f"Image {name}": f"`{ref}`" for name, ref in env.images.items()})
    lines += [f"| {fact} | {value} |" for fact, value in facts.items()]
    w = record.workload
    shape = (f"ISL {w.isl}±{w.isl_stddev}, OSL {w.osl}±{w.osl_stddev}, " if w.isl is not None else "")
    lines += ["", "## Workload", "", f"{shape}concurrency {w.concurrency}, {w.request_count} requests"
              + (f"; sweep {', '.join(map(str, w.concurrency_sweep))}" if w.concurrency_sweep else ""), "",
              "## Validation suite", "",
              f"{record.validation.tests} tests, {record.validation.failures} failures, {record.validation.errors} "
              f"errors, {record.validation.skipped} skipped (`{record.validation.source}`)"]
    lines += [f"- failed: {case}" for case in record.validation.failed_cases]
    lines += ["", "## Benchmark (AIPerf)", "", f"Export `{record.benchmark.source}`", "",
              "| Metric | Stat | Measured | Threshold | Result |", "|---|---|---|---|---|"]
    lines += [f"| {r.metric} | {r.stat} | {_fmt(r.measured)} {r.unit} | {r.threshold} | {r.status} |"
              for r in record.benchmark.checks]
    lines += (_sweep_lines(record.sweep) if record.sweep else []) + _behaviour_lines(record.startup)
    lines += _behaviour_lines(record.failure)
    if record.signature:
        lines += ["", f"Signed ({record.signature.get('algorithm')}, key `{record.signature.get('keyId')}`): "
                      "`ncp evidence verify` checks it."]
    return "\n".join(lines) + "\n"


def ci_cases(record: EvidenceRecord) -> list[Case]:
    """The record's checks as CI test cases: the suite's failed cases, every benchmark check, the sweep's knee,
    startup and failure checks; a phase without checks is one case."""
    owners = {p.name: p.owner for p in record.phases}
    cases = [Case("validation", case, "FAIL", owners["validation"]) for case in record.validation.failed_cases]
    cases.append(Case("validation", "suite", "PASS" if record.validation.passed else "FAIL", owners["validation"],
                      f"{record.validation.tests} tests, {record.validation.failures} failures"))
    cases += [Case("benchmark", f"{r.metric} {r.stat}", r.status, owners["benchmark"],
                   f"measured {_fmt(r.measured)} {r.unit}, threshold {r.threshold} {r.detail}".strip())
              for r in record.benchmark.checks]
    if record.sweep:
        cases.append(Case("sweep", "knee", "PASS" if record.sweep.knee else "MISSING", owners["sweep"],
                          f"knee at concurrency {record.sweep.knee} ({record.sweep.knee_rule})"))
    for result in (record.startup, record.failure):
        if result is None:
            continue
        cases += [Case(result.phase, c.metric, c.status, c.owner, c.detail) for c in result.checks] or [
            Case(result.phase, result.phase, result.status, owners[result.phase], "no thresholds set")]
    return cases


def write_signed(store, key: str, payload: dict, markdown: Callable[[dict], str], cases: list[Case], title: str,
                 signer: Signer) -> tuple[str, str]:
    """<key>.json (signed), .md (markdown(signature)), .junit.xml and .ctrf.json in the evidence store (a local
    directory or a bucket); returns the JSON's location and the sha256 of its bytes (the index entry signs it)."""
    signed = signer.sign({k: v for k, v in payload.items() if k != "signature"})
    text = json.dumps(signed, indent=2) + "\n"
    store.put(f"{key}.md", markdown(signed["signature"]))
    store.put(f"{key}.junit.xml", junit_xml(title, signed["runId"], cases))
    store.put(f"{key}.ctrf.json", ctrf_json(title, signed["runId"], signed["createdAt"], cases,
                                             signed.get("key") or {}))
    return store.put(f"{key}.json", text), hashlib.sha256(text.encode()).hexdigest()


def write_record(record: EvidenceRecord, store, signer: Signer) -> tuple[str, str]:
    """<store>/<endpoint>/<run id>.{json,md,junit.xml,ctrf.json}; returns the JSON's location and sha256."""
    return write_signed(store, f"{record.endpoint}/{record.run_id}", record.model_dump(by_alias=True, mode="json"),
                        lambda signature: render_markdown(record.model_copy(update={"signature": signature})),
                        ci_cases(record), record.endpoint, signer)


def signed_entry(fields: dict, kind: str, location: str, sha256: str, signer: Signer) -> dict:
    """An index entry: what the gates select on, the record's location and sha256, its expiry, signed."""
    return signer.sign({**fields, "kind": kind, "record": location, "recordSha256": sha256,
                        "expiresAt": signer.expires_at(kind, fields["createdAt"])})


def index_entry(record: EvidenceRecord, location: str, sha256: str, signer: Signer) -> dict:
    env = record.environment
    return signed_entry({"stack": record.stack, "endpoint": record.endpoint, "runId": record.run_id,
                         "createdAt": record.created_at, "passed": record.passed, "key": record.key,
                         "backend": env.backend, "backendVersion": env.backend_version},
                        record.kind, location, sha256, signer)


def read_index(location: Union[str, Path]) -> list[dict]:
    """The index's records from a local file or an s3:// object (missing: none)."""
    store, key = split(location)
    text = store.get(key)
    return (yaml.safe_load(text) or {}).get("records", []) if text else []


def append_index(entry: dict, location: Union[str, Path]) -> None:
    records = read_index(location) + [entry]
    store, key = split(location)
    store.put(key, yaml.safe_dump({"schemaVersion": SCHEMA_VERSION, "records": records}, sort_keys=False))


def latest_per_endpoint(stack: str, path: Optional[Path] = None) -> dict[str, dict]:
    latest: dict[str, dict] = {}
    for entry in read_index(path or index_file(stack)):
        if entry.get("kind", "endpoint") == "readiness":  # readiness records belong to the site, not an endpoint
            continue
        if entry.get("stack") == stack and entry["createdAt"] >= latest.get(entry["endpoint"], {}).get("createdAt", ""):
            latest[entry["endpoint"]] = entry
    return latest
