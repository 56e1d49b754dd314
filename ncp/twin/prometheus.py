"""The telemetry twin (#25): the real Prometheus server (tools/e2e/bootstrap.sh builds it at promtool's module version)
scraping the serving twin's processes through the scrape jobs the Prometheus Operator generates from the program's
rendered PodMonitors, with the program's rendered recording and alerting rules loaded.

The scrape jobs follow the operator's generatePodMonitorConfig step by step (data/serving-twin.yaml `telemetry`
names each step's file and lines at the pinned operator module); only discovery stands in: each twin process is the
target Prometheus' pod discovery would yield for its pod (the same `__meta_kubernetes_*` labels), listed in a
file_sd file, because the twin's processes are not pods."""
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from ncp.engine_bin import find_engine_binary
from ncp.twin.graph import twin_settings

OVERRIDE_ENV = "NCP_PROMETHEUS"  # an explicit prometheus binary, e.g. while the rest of the engine is still building
META = "__meta_kubernetes_"


class PrometheusError(Exception):
    """The Prometheus server exited, never became ready, or a query failed; the message carries its log tail."""


def telemetry_settings() -> dict:
    return twin_settings()["telemetry"]


def find_prometheus() -> tuple[Optional[Path], str]:
    """The prometheus binary in the bootstrap bin dir, or None and the reason it is not there."""
    return find_engine_binary("prometheus", OVERRIDE_ENV)


# --- discovery: what the pod role yields for a pod --------------------------------------------------------------

def sanitize(name: str) -> str:
    """The operator's and the pod discovery's label-name sanitising (promcfg.go:59-63): [^a-zA-Z0-9_] -> _."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


@dataclass(frozen=True)
class PodTarget:
    """One container port of one pod, as Prometheus' Kubernetes pod discovery sees it."""
    namespace: str
    pod: str
    labels: dict[str, str]
    port_name: str
    address: str  # host:port the process listens on (the pod IP and container port)
    node: str = "twin-node"
    phase: str = "Running"

    def meta(self) -> dict[str, str]:
        host, port = self.address.rsplit(":", 1)
        meta = {"__address__": self.address, f"{META}namespace": self.namespace, f"{META}pod_name": self.pod,
                f"{META}pod_ip": host, f"{META}pod_phase": self.phase, f"{META}pod_ready": "true",
                f"{META}pod_node_name": self.node, f"{META}pod_container_name": telemetry_settings()["container"],
                f"{META}pod_container_port_name": self.port_name, f"{META}pod_container_port_number": port,
                f"{META}pod_container_port_protocol": "TCP", f"{META}pod_container_init": "false"}
        for key, value in self.labels.items():
            meta[f"{META}pod_label_{sanitize(key)}"] = value
            meta[f"{META}pod_labelpresent_{sanitize(key)}"] = "true"
        return meta


def file_sd(targets: list[PodTarget]) -> list[dict]:
    """A file_sd document: one group per target (its meta labels are the group's labels)."""
    groups = []
    for target in targets:
        labels = target.meta()
        groups.append({"targets": [labels.pop("__address__")], "labels": labels})
    return groups


# --- the operator's scrape job for a PodMonitor endpoint ----------------------------------------------------------

RELABEL_KEYS = (("sourceLabels", "source_labels"), ("separator", "separator"), ("targetLabel", "target_label"),
                ("regex", "regex"), ("modulus", "modulus"), ("replacement", "replacement"), ("action", "action"))


def relabel_config(rule: dict) -> dict:
    """generateRelabelConfig (promcfg.go:2150-2187): the CRD's camelCase fields in Prometheus' names and order, the
    action lower-cased; unset fields are left out."""
    out = {}
    for crd, prom in RELABEL_KEYS:
        if rule.get(crd) not in (None, "", []):
            out[prom] = rule[crd].lower() if crd == "action" else rule[crd]
    unknown = set(rule) - {crd for crd, _ in RELABEL_KEYS}
    if unknown:
        raise ValueError(f"relabeling {rule} has fields the translation does not know: {sorted(unknown)}")
    return out


def _selector_relabelings(selector: dict) -> list[dict]:
    if set(selector) - {"matchLabels"}:
        raise ValueError(f"PodMonitor selector {selector}: only matchLabels is translated (promcfg.go:1371-1378)")
    return [{"action": "keep", "source_labels": [f"{META}pod_label_{sanitize(key)}",
                                                  f"{META}pod_labelpresent_{sanitize(key)}"],
             "regex": f"({value});true"} for key, value in sorted(selector.get("matchLabels", {}).items())]


def _sharding(shard: str) -> list[dict]:
    return [{"source_labels": ["__address__", "__tmp_hash"], "target_label": "__tmp_hash", "regex": "(.+);",
             "replacement": "$1", "action": "replace"},
            {"source_labels": ["__tmp_hash"], "target_label": "__tmp_hash", "modulus": 1, "action": "hashmod"},
            {"source_labels": ["__tmp_hash", "__tmp_disable_sharding"], "regex": f"{shard};|.+;.+", "action": "keep"}]


ENDPOINT_FIELDS = {"port", "interval", "relabelings", "path", "scheme", "honorLabels", "scrapeTimeout"}


def pod_monitor_jobs(monitor: dict, sd_file: Path, interval: Optional[str] = None) -> list[dict]:
    """generatePodMonitorConfig (promcfg.go:1285-1535) for each podMetricsEndpoint of a rendered PodMonitor, with
    file_sd_configs in place of kubernetes_sd_configs (the stand-in, data/serving-twin.yaml telemetry.standIns).
    A field the translation does not model is refused rather than silently dropped."""
    meta, spec = monitor["metadata"], monitor["spec"]
    namespace, name = meta["namespace"], meta["name"]
    unknown = set(spec) - {"selector", "podMetricsEndpoints"}
    if unknown:
        raise ValueError(f"PodMonitor {namespace}/{name}: fields {sorted(unknown)} are not translated")
    jobs = []
    for index, endpoint in enumerate(spec["podMetricsEndpoints"]):
        if set(endpoint) - ENDPOINT_FIELDS:
            raise ValueError(f"PodMonitor {namespace}/{name} endpoint {index}: fields "
                             f"{sorted(set(endpoint) - ENDPOINT_FIELDS)} are not translated")
        relabelings = [{"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"},
                       {"action": "drop", "source_labels": [f"{META}pod_phase"], "regex": "(Failed|Succeeded)"},
                       *_selector_relabelings(spec.get("selector", {})),
                       {"action": "keep", "source_labels": [f"{META}pod_container_port_name"],
                        "regex": endpoint["port"]},
                       {"source_labels": [f"{META}namespace"], "target_label": "namespace"},
                       {"source_labels": [f"{META}pod_container_name"], "target_label": "container"},
                       {"source_labels": [f"{META}pod_name"], "target_label": "pod"},
                       {"target_label": "job", "replacement": f"{namespace}/{name}"},
                       {"target_label": "endpoint", "replacement": endpoint["port"]},
                       *(relabel_config(rule) for rule in endpoint.get("relabelings", [])),
                       *_sharding(telemetry_settings()["shard"])]
        job = {"job_name": f"podMonitor/{namespace}/{name}/{index}",
               "honor_labels": bool(endpoint.get("honorLabels", False)),
               "file_sd_configs": [{"files": [str(sd_file)], "refresh_interval": "1s"}],
               "scrape_interval": interval or endpoint.get("interval", "30s")}
        for crd, prom in (("scrapeTimeout", "scrape_timeout"), ("path", "metrics_path"), ("scheme", "scheme")):
            if crd in endpoint:
                job[prom] = endpoint[crd]
        if interval:
            job["scrape_timeout"] = interval
        job["relabel_configs"] = relabelings
        jobs.append(job)
    return jobs


def prometheus_config(jobs: list[dict], rule_files: list[str], interval: str) -> dict:
    return {"global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": rule_files, "scrape_configs": jobs}


# --- the server ---------------------------------------------------------------------------------------------------

def http_get_json(url: str, timeout: float = 10) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


@dataclass
class PrometheusServer:
    """A Prometheus process with the given scrape jobs, rule groups and targets, in its own directory."""
    binary: Path
    directory: Path
    port: int
    jobs: list[dict]
    rule_groups: dict[str, list[dict]] = field(default_factory=dict)  # file name -> groups (PrometheusRule spec)
    interval: str = "1s"
    process: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def sd_file(self) -> Path:
        return self.directory / "targets.json"

    def write_targets(self, targets: list[PodTarget]) -> None:
        """The discovered pods; Prometheus re-reads the file (file_sd watches it), as pods come and go."""
        staging = self.sd_file.with_suffix(".tmp")
        staging.write_text(json.dumps(file_sd(targets), indent=1))
        staging.replace(self.sd_file)

    def start(self, targets: list[PodTarget]) -> "PrometheusServer":
        self.directory.mkdir(parents=True, exist_ok=True)
        self.write_targets(targets)
        rule_paths = []
        for name, groups in self.rule_groups.items():
            path = self.directory / f"{name}.rules.yaml"
            path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
            rule_paths.append(str(path))
        config = self.directory / "prometheus.yml"
        config.write_text(yaml.safe_dump(prometheus_config(self.jobs, rule_paths, self.interval), sort_keys=False))
        log = open(self.directory / "prometheus.log", "wb")
        self.process = subprocess.Popen(
            [str(self.binary), f"--config.file={config}", f"--storage.tsdb.path={self.directory / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.directory, start_new_session=True)
        self.wait_ready()
        return self

    def log_tail(self, lines: int = 30) -> str:
        path = self.directory / "prometheus.log"
        text = path.read_text(errors="replace").splitlines() if path.exists() else []
        return f"--- prometheus ({path}):\n" + "\n".join(text[-lines:])

    def _check_running(self) -> None:
        if self.process is None:
            raise PrometheusError("prometheus was not started")
        if self.process.poll() is not None:
            raise PrometheusError(f"prometheus exited with {self.process.returncode}\n{self.log_tail()}")

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_running()
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        raise PrometheusError(f"prometheus at {self.url} not ready within {timeout:.0f}s\n{self.log_tail()}")

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        try:
            body = http_get_json(url)
        except urllib.error.HTTPError as error:
            raise PrometheusError(f"{url}: {error.code} {error.read().decode(errors='replace')}") from error
        if body.get("status") != "success":
            raise PrometheusError(f"{url}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        """Instant query: a list of {metric: labels, value: [t, "v"]}."""
        return self.api("query", query=expr)["result"]

    def series(self, selector: str) -> list[dict[str, str]]:
        return self.api("series", **{"match[]": selector, "start": "0"})

    def active_targets(self) -> list[dict]:
        return self.api("targets", state="active")["activeTargets"]

    def rules(self) -> list[dict]:
        return [rule for group in self.api("rules")["groups"] for rule in group["rules"]]

    def wait_for(self, expr: str, timeout: float = 60, at_least: int = 1) -> list[dict]:
        """Poll an instant query until it returns at least `at_least` series."""
        deadline, result = time.monotonic() + timeout, []
        while time.monotonic() < deadline:
            self._check_running()
            result = self.query(expr)
            if len(result) >= at_least:
                return result
            time.sleep(1)
        raise PrometheusError(f"`{expr}` returned {len(result)} series (wanted {at_least}) within {timeout:.0f}s; "
                              f"targets: {json.dumps(self.target_health(), indent=1)}\n{self.log_tail()}")

    def target_health(self) -> list[dict]:
        return [{"job": t["labels"].get("job"), "pod": t["labels"].get("pod"), "health": t["health"],
                 "error": t.get("lastError", "")} for t in self.active_targets()]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def __enter__(self) -> "PrometheusServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# --- the serving twin's processes as the pods the Dynamo operator runs -------------------------------------------

def twin_targets(dgd: dict, processes: list, signals, dynamo_namespace: str) -> list[PodTarget]:
    """A target per twin process that a pod would expose: the frontend's HTTP port, each worker's system port,
    labelled as the Dynamo operator labels the pod (data/telemetry-signals.yaml dynamo.podLabels: graph, component
    type, sub-component type where the DGD gives one, the graph's Dynamo namespace) over the service's
    extraPodMetadata labels."""
    services, pod_labels, ports = dgd["spec"]["services"], signals.pod_labels, signals.ports
    targets = []
    for process in processes:
        service = process.service.rsplit("-", 1)[0] if process.component_type == "worker" else process.service
        spec = services[service]
        labels = {**(spec.get("extraPodMetadata") or {}).get("labels", {}),
                  pod_labels["graph"]: dgd["metadata"]["name"], pod_labels["componentType"]: spec["componentType"],
                  pod_labels["dynamoNamespace"]: dynamo_namespace}
        if spec.get("subComponentType"):
            labels[pod_labels["subComponentType"]] = spec["subComponentType"]
        if process.component_type == "frontend":
            port_name, port = ports["frontend"], process.http_port
        elif process.component_type == "worker":
            port_name, port = ports["worker"], process.system_port
        else:
            continue  # the planner's pod exposes no port the PodMonitor names
        targets.append(PodTarget(namespace=dgd["metadata"]["namespace"], pod=process.env["POD_NAME"], labels=labels,
                                 port_name=port_name, address=f"127.0.0.1:{port}"))
    return targets
