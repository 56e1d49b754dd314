"""The evidence record schema, its Markdown rendering and the committed evidence index."""
# RA: Validation Methodology: "record the model, tokenizer, backend, container image, hardware, driver"
# RA: Validation Methodology: "Kubernetes version, network mode, storage path, prompt profile, output profile"
# RA: Serving Performance: "captured environment metadata, stored benchmark output, and a pass or fail threshold"
import hashlib
import json
from pathlib import Path
from typing import Literal, Optional, Union

import yaml
from pydantic import Field

from evidence.store import split
from plan.catalog import ROOT
from plan.strict import StrictModel

SCHEMA_VERSION = 1
INDEX_FILE = ROOT / "evidence" / "index.yaml"

CacheState = Literal["cold", "warm"]  # the model cache at the start of the run


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
    tokenizer: str
    backend: str
    backend_version: str = Field(description="Dynamo runtime release the backend image belongs to")
    network_mode: str = Field(description="aggregated or disaggregated, and whether KV moves over RDMA rails")
    cache_state: CacheState
    storage_path: str = Field(description="storage class of the model artifacts")
    sizing: Sizing


class Workload(StrictModel):
    isl: int
    osl: int
    concurrency: int
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

    @property
    def passed(self) -> bool:
        return all(row.status == "PASS" for row in self.checks)


class EvidenceRecord(StrictModel):
    schema_version: int = SCHEMA_VERSION
    run_id: str
    created_at: str
    stack: str
    site: str
    site_environment: str
    endpoint: str
    tenant: str
    environment: Environment
    workload: Workload
    validation: ValidationResult
    benchmark: BenchmarkResult
    passed: bool
    failing_layers: list[str] = Field(default_factory=list, description="owning RA layer of each failure")

    def to_json(self) -> str:
        return json.dumps(self.model_dump(by_alias=True), indent=2, sort_keys=False) + "\n"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def render_markdown(record: EvidenceRecord) -> str:
    env = record.environment
    lines = [f"# Acceptance evidence: {record.endpoint} on {record.site} ({record.site_environment})", "",
             f"**{'PASSED' if record.passed else 'FAILED'}** · run `{record.run_id}` · {record.created_at} · "
             f"stack `{record.stack}`", ""]
    if record.failing_layers:
        lines += ["Failing layers: " + ", ".join(record.failing_layers), ""]
    lines += ["## Environment", "", "| Fact | Value |", "|---|---|"]
    facts = {"Kubernetes": env.kubernetes_version, "Hardware profile": env.hardware_profile,
             "GPU driver": env.gpu_driver, "Model": f"{env.model_source} @ {env.model_revision}",
             "Tokenizer": env.tokenizer, "Backend": f"{env.backend} (Dynamo {env.backend_version})",
             "Network mode": env.network_mode, "Cache state": env.cache_state, "Storage": env.storage_path,
             "Sizing file": f"{env.sizing.file} (sha256 {env.sizing.sha256[:12]})"}
    facts.update({f"Version {name}": version for name, version in env.component_versions.items()})
    facts.update({f"Image {name}": f"`{ref}`" for name, ref in env.images.items()})
    lines += [f"| {fact} | {value} |" for fact, value in facts.items()]
    w = record.workload
    lines += ["", "## Workload", "", f"ISL {w.isl}, OSL {w.osl}, concurrency {w.concurrency}, "
              f"{w.request_count} requests", "", "## Validation suite", "",
              f"{record.validation.tests} tests, {record.validation.failures} failures, {record.validation.errors} "
              f"errors, {record.validation.skipped} skipped (`{record.validation.source}`)"]
    lines += [f"- failed: {case}" for case in record.validation.failed_cases]
    lines += ["", "## Benchmark (AIPerf)", "", f"Export `{record.benchmark.source}`", "",
              "| Metric | Stat | Measured | Threshold | Result |", "|---|---|---|---|---|"]
    lines += [f"| {r.metric} | {r.stat} | {'-' if r.measured is None else f'{r.measured:.4g}'} {r.unit} | "
              f"{r.threshold} | {r.status} |" for r in record.benchmark.checks]
    return "\n".join(lines) + "\n"


def write_json_and_markdown(store, key: str, json_text: str, markdown: str) -> str:
    """<key>.json and <key>.md in the evidence store (a local directory or a bucket); returns the JSON's location."""
    store.put(f"{key}.md", markdown)
    return store.put(f"{key}.json", json_text)


def write_record(record: EvidenceRecord, store) -> str:
    """<store>/<endpoint>/<run id>.json and .md; returns the JSON's location."""
    return write_json_and_markdown(store, f"{record.endpoint}/{record.run_id}", record.to_json(),
                                   render_markdown(record))


def index_entry(record: EvidenceRecord, location: str) -> dict:
    env = record.environment
    return {"stack": record.stack, "endpoint": record.endpoint, "runId": record.run_id,
            "createdAt": record.created_at, "passed": record.passed, "modelRevision": env.model_revision,
            "backend": env.backend, "backendVersion": env.backend_version, "sizingFile": env.sizing.file,
            "sizingSha256": env.sizing.sha256, "record": location}


def read_index(location: Union[str, Path] = INDEX_FILE) -> list[dict]:
    """The index's records from a local file or an s3:// object (missing: none)."""
    store, key = split(location)
    text = store.get(key)
    return (yaml.safe_load(text) or {}).get("records", []) if text else []


def append_index(entry: dict, location: Union[str, Path] = INDEX_FILE) -> None:
    records = read_index(location) + [entry]
    store, key = split(location)
    store.put(key, yaml.safe_dump({"schemaVersion": SCHEMA_VERSION, "records": records}, sort_keys=False))


def latest_per_endpoint(stack: str, path: Path = INDEX_FILE) -> dict[str, dict]:
    latest: dict[str, dict] = {}
    for entry in read_index(path):
        if entry.get("kind", "endpoint") != "endpoint":  # readiness records belong to the site, not an endpoint
            continue
        if entry.get("stack") == stack and entry["createdAt"] >= latest.get(entry["endpoint"], {}).get("createdAt", ""):
            latest[entry["endpoint"]] = entry
    return latest
