"""The processes of one rendered DynamoGraphDeployment, as the serving twin runs them.

Command, args and environment come from the DGD the program rendered (ncp/readmodel/recorder.py), plus what the Dynamo
operator injects into each pod (data/serving-twin.yaml operatorEnv); the stand-ins for what only a pod or a GPU has
(discovery backend, ports, engine, interpreter, volumes) are listed with their reasons in data/serving-twin.yaml."""
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from ncp.plan.catalog import SERVING_TWIN_FILE, BackendRuntime, DynamoRuntime, integration_points
from ncp.cli_exit import BadInput

TWIN_FILE = SERVING_TWIN_FILE
MOCKER_MODULE = "dynamo.mocker"


class TwinError(BadInput):
    """The rendered graph has something the twin cannot run; the message names the service and what."""


@dataclass
class TwinProcess:
    service: str          # the DGD service name (Frontend, TRTLLMWorker, ...)
    component_type: str   # frontend / worker / planner
    role: str             # frontend, worker, prefill, decode, planner
    argv: list[str]
    env: dict[str, str]
    http_port: Optional[int] = None
    system_port: Optional[int] = None
    dropped_args: list[str] = field(default_factory=list)  # rendered engine flags the mocker has no use for


def twin_settings() -> dict:
    return yaml.safe_load(TWIN_FILE.read_text())


def _flag_value(args: list[str], flag: str, service: str) -> str:
    if flag not in args or args.index(flag) + 1 >= len(args):
        raise TwinError(f"{service}: rendered args {args} have no {flag}")
    return args[args.index(flag) + 1]


def _replace_value(args: list[str], flag: str, value: str, service: str) -> list[str]:
    _flag_value(args, flag, service)
    index = args.index(flag)
    return args[:index + 1] + [value] + args[index + 2:]


def _interpreter(command: list[str], service: str, python: str) -> list[str]:
    if command != ["python3"]:
        raise TwinError(f"{service}: command {command} is not the image's python3; the twin runs Python modules")
    return [python]


def _operator_env(kind: str, values: dict[str, object]) -> dict[str, str]:
    table = twin_settings()["operatorEnv"]
    env = {key: str(value).format(**values) for key, value in table["all"].items()}
    env.update({key: str(value).format(**values) for key, value in table.get(kind, {}).items()})
    return env


def platform_env(release: str, namespace: str, values: dict) -> dict[str, str]:
    """What the operator adds to every pod from the dynamo-platform release's values: NATS_SERVER when the chart
    configures a NATS address (components/operator/templates/operator-config.yaml:67-72: `natsAddr`, else the bundled
    `<release>-nats` Service when global.nats.install; graph.go:1567-1571 sets the variable only then). With it set,
    the runtime opens a NATS connection at start (data/integration-points.yaml dynamo.natsDecision)."""
    dynamo = integration_points().dynamo
    address = (values.get("dynamo-operator") or {}).get("natsAddr") or ""
    if not address and ((values.get("global") or {}).get("nats") or {}).get("install"):
        address = f"nats://{release}{dynamo.nats_service_suffix}.{namespace}.svc.cluster.local:{dynamo.nats_port}"
    return {dynamo.nats_server_env: address} if address else {}


def worker_to_mocker(args: list[str], backend_name: str, backend: BackendRuntime, role: str,
                     model_root: Path, models_mount: str, service: str,
                     speedup_ratio: float) -> tuple[list[str], list[str]]:
    """The mocker's argv for a rendered worker: module swapped, the model path, served name and disaggregation role
    read by the backend's own flags; everything else in the rendered args is the engine's and is dropped."""
    if args[:2] != ["-m", backend.module]:
        raise TwinError(f"{service}: rendered args start {args[:2]}, not -m {backend.module}")
    model_path = _flag_value(args, backend.model_path_flag, service)
    if not model_path.startswith(models_mount + "/"):
        raise TwinError(f"{service}: model path {model_path} is not under the model volume {models_mount}")
    served = _flag_value(args, backend.served_model_name_flag, service)
    local_path = model_root / model_path[len(models_mount) + 1:]
    mocker = ["-m", MOCKER_MODULE, "--model-path", str(local_path), "--model-name", served,
              "--engine-type", backend_name, "--speedup-ratio", f"{speedup_ratio:g}"]
    used = {backend.model_path_flag, backend.served_model_name_flag}
    if role in ("prefill", "decode"):
        if not backend.disaggregation_flag or _flag_value(args, backend.disaggregation_flag, service) != role:
            raise TwinError(f"{service}: a {role} worker whose rendered args do not say {role}")
        mocker += ["--disaggregation-mode", role]
        used.add(backend.disaggregation_flag)
    dropped, rest = [], args[2:]
    while rest:
        item = rest.pop(0)
        value = rest.pop(0) if rest and not rest[0].startswith("--") else None
        if item not in used:
            dropped += [item] + ([value] if value is not None else [])
    return mocker, dropped


def _replicas(name: str, role: str, replicas: int, argv: list[str], dropped: list[str], values: dict,
              rendered_env: dict[str, str], ports: "PortPool", platform: dict[str, str]) -> list[TwinProcess]:
    pods = []
    for replica in range(replicas):
        pod = TwinProcess(service=f"{name}-{replica}", component_type="worker", role=role, argv=argv, env={},
                          system_port=ports.take(), dropped_args=dropped)
        pod_values = {**values, "system_port": pod.system_port, "pod": f"{values['graph']}-{name.lower()}-{replica}",
                      "pod_uid": f"twin-{values['graph']}-{name}-{replica}"}
        pod.env = {**platform, **_operator_env("worker", pod_values), **rendered_env}
        pods.append(pod)
    return pods


def graph_processes(dgd: dict, runtime: DynamoRuntime, model_root: Path, models_mount: str, ports: "PortPool",
                    speedup_ratio: float = 1.0, python: str = sys.executable, services: Optional[set[str]] = None,
                    platform: Optional[dict[str, str]] = None) -> list[TwinProcess]:
    """One process per DGD service and per worker replica; `platform`: what the operator adds (platform_env)."""
    spec, graph, namespace = dgd["spec"], dgd["metadata"]["name"], dgd["metadata"]["namespace"]
    dynamo_namespace = integration_points().dynamo.dynamo_namespace(namespace, graph)
    backend_name, processes = spec["backendFramework"], []
    backend = runtime.backends[backend_name]
    for name, service in spec["services"].items():
        if services is not None and name not in services:
            continue
        kind = service["componentType"]
        role = service.get("subComponentType", kind)
        container = service["extraPodSpec"]["mainContainer"]
        argv = _interpreter(container.get("command", []), name, python)
        rendered_env = {item["name"]: item["value"] for item in service.get("envs", [])}
        values = {"dynamo_namespace": dynamo_namespace, "component_type": kind, "graph": graph,
                  "namespace": namespace, "pod": f"{graph}-{name.lower()}-0", "pod_uid": f"twin-{graph}-{name}"}
        process = TwinProcess(service=name, component_type=kind, role=role, argv=[], env={})
        if kind == "frontend":
            process.http_port = ports.take()
            values["http_port"] = process.http_port
            args = _replace_value(list(container["args"]), runtime.frontend.http_port_flag, str(process.http_port),
                                  name)
        elif kind == "worker":  # one process per replica, each with its own system port, as pods have
            mocker, dropped = worker_to_mocker(list(container["args"]), backend_name, backend, role, model_root,
                                               models_mount, name, speedup_ratio)
            processes += _replicas(name, role, int(service["replicas"]), argv + mocker, dropped, values,
                                   rendered_env, ports, platform or {})
            continue
        elif kind == "planner":
            process.system_port = ports.take()
            values["system_port"] = process.system_port
            args = list(container["args"])
        else:
            raise TwinError(f"{name}: componentType {kind} has no twin process")
        process.argv = argv + args
        process.env = {**(platform or {}), **_operator_env(kind, values), **rendered_env}
        processes.append(process)
    return processes


def dump(processes: list[TwinProcess]) -> str:
    return json.dumps([process.__dict__ for process in processes], indent=1, default=str)


class PortPool:
    """Free local TCP ports below 32768 (the runtime reads DYN_SYSTEM_PORT as an i16), from a base that callers
    choose per session (NCP_TWIN_PORT_BASE) so parallel twins do not collide."""

    def __init__(self, base: int):
        if not 1024 <= base < 32000:
            raise ValueError(f"twin port base {base} must be in 1024..32000")
        self.next = base

    def take(self) -> int:
        import socket
        while self.next < 32768:
            port, self.next = self.next, self.next + 1
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
        raise RuntimeError("no free port below 32768 for the twin")
