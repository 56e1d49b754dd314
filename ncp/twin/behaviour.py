"""Startup and failure behaviour of a rendered graph, measured on the twin's real processes (#28 item 3): the inputs
ncp/evidence/behaviour.py judges (startup.json, failure.json; the format is documented there).

Start: every time is seconds from the twin's start (t0, when the worker pods would be created), observed by polling
what the cluster itself looks at:
  downloadSeconds        cold: staging the model volume (the synthesised model directory, ncp/twin/model_dir.py, stands
                         in for the download); warm: the volume is already there (cacheHit, 0 s)
  containerReadySeconds  the last worker's readiness endpoint (the operator's probe: GET /health on DYN_SYSTEM_PORT,
                         ready once the rendered DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS endpoints are): the
                         endpoint at full strength, which may come after the first token (one replica serves it)
  modelLoadedSeconds     the frontend lists the model (the worker registered it after loading its engine)
  firstTokenSeconds      the frontend answers a one-token chat request
A cold start has empty process homes (the frontend's model-card cache, HF_HOME) and an empty model volume; the warm
start restarts the same processes over the same homes and volume.

Failure: clients keep sending chat requests through the frontend; one worker is SIGKILLed (no clean deregistration,
as a node loss or an OOM kill) and restarted at once in its pod's place (the kubelet's restart; its back-off is not
modelled). Recovery is the time from the kill until the restarted worker has served a request (its own
`generate` request counter on its system port moved); every client error is counted by kind (HTTP status or
exception), which is what the frontend made of the lost worker."""
import threading
import time
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from ncp.twin.run import Twin, TwinStartError, http_json, http_text

POLL_SECONDS = 0.2
REQUEST_COUNTER = "dynamo_component_requests_total"
SERVING_ENDPOINT = 'dynamo_endpoint="generate"'


def _worker_ready(twin: Twin, port: int) -> bool:
    try:
        return http_json(f"http://127.0.0.1:{port}/health", timeout=2).get("status") == "ready"
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return False


def _model_listed(twin: Twin, model: str) -> bool:
    try:
        return model in [m["id"] for m in http_json(f"{twin.url}/v1/models", timeout=2)["data"]]
    except (urllib.error.URLError, ConnectionError, TimeoutError, KeyError, ValueError):
        return False


def _first_token(twin: Twin, model: str) -> bool:
    try:
        return twin.chat(model, "hello", max_tokens=1)["usage"]["completion_tokens"] >= 1
    except (urllib.error.URLError, ConnectionError, TimeoutError, KeyError, ValueError):
        return False


def timed_start(twin: Twin, model: str, t0: float, stage: Optional[Callable[[], object]], timeout: float = 240) -> dict:
    """Start `twin` (after `stage`, the cold start's model staging) and time each phase from `t0`; one entry of
    startup.json's `starts`."""
    cold = stage is not None
    if stage is not None:
        stage()
    download = time.monotonic() - t0 if cold else 0.0
    twin.start()
    ports = [p.system_port for p in twin.processes if p.component_type == "worker" and p.system_port]
    phases: dict[str, float] = {}
    # The first token is tried only once the model is listed: a chat can answer while one listing call times out on
    # a loaded runner, which would time the model as loaded after its own first token. The last worker replica may
    # still come up after both.
    probes = [("containerReadySeconds", lambda: all(_worker_ready(twin, port) for port in ports)),
              ("modelLoadedSeconds", lambda: _model_listed(twin, model)),
              ("firstTokenSeconds", lambda: "modelLoadedSeconds" in phases and _first_token(twin, model))]
    deadline = time.monotonic() + timeout
    while len(phases) < len(probes):
        if time.monotonic() > deadline:
            raise TwinStartError(f"{'cold' if cold else 'warm'} start: {[n for n, _ in probes if n not in phases]} "
                                 f"not reached within {timeout:.0f}s\n{twin.logs()}")
        twin._check_alive()
        for name, probe in probes:
            if name not in phases and probe():
                phases[name] = round(time.monotonic() - t0, 3)
        time.sleep(POLL_SECONDS)
    return {"start": "cold" if cold else "warm", "downloadSeconds": round(download, 3), "cacheHit": not cold,
            **phases}


def served_requests(port: int) -> float:
    """The worker's own count of requests to its `generate` endpoint (its system port's /metrics)."""
    try:
        text = http_text(f"http://127.0.0.1:{port}/metrics", timeout=2)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(REQUEST_COUNTER + "{") and SERVING_ENDPOINT in line)


@dataclass
class Clients:
    """`count` clients sending chat requests through the frontend back to back until stopped."""
    twin: Twin
    model: str
    count: int = 4
    max_tokens: int = 8
    sent: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _send(self, client: int) -> None:
        number = 0
        while not self._stop.is_set():
            number += 1
            kind = None
            try:
                self.twin.chat(self.model, f"client {client} request {number} the quick brown fox",
                                max_tokens=self.max_tokens)
            except urllib.error.HTTPError as error:
                kind = str(error.code)
            except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError) as error:
                kind = type(getattr(error, "reason", error)).__name__
            with self._lock:
                self.sent += 1
                if kind is not None:
                    self.errors[kind] = self.errors.get(kind, 0) + 1

    def __enter__(self) -> "Clients":
        self._threads = [threading.Thread(target=self._send, args=(n,), daemon=True) for n in range(self.count)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=90)


def kill_a_worker(twin: Twin, model: str, service: str, before: float = 3.0, after: float = 3.0,
                  timeout: float = 120, clients: int = 4) -> dict:
    """failure.json's content: `service` killed `before` seconds into a client run and restarted; the run goes on
    until the restarted worker has served and `after` seconds more."""
    process = next(p for p in twin.processes if p.service == service)
    if process.component_type != "worker" or not process.system_port:
        raise TwinStartError(f"{service} is not a worker of this twin")
    with Clients(twin, model, count=clients) as load:
        started = time.monotonic()
        time.sleep(before)
        twin.kill(service)
        killed = time.monotonic()
        twin.launch(process)
        recovery = None
        while time.monotonic() - killed < timeout:
            if served_requests(process.system_port) > 0:
                recovery = round(time.monotonic() - killed, 3)
                break
            time.sleep(POLL_SECONDS)
        time.sleep(after)
    return {"killedPod": process.env.get("POD_NAME", service), "killedAtSeconds": round(killed - started, 3),
            "recoverySeconds": recovery, "clientRequests": load.sent, "clientErrors": sum(load.errors.values()),
            "errorKinds": dict(sorted(load.errors.items()))}


def measure(make_twin: Callable[[], Twin], model: str, stage: Callable[[], object], worker: str) -> tuple[list, dict]:
    """A cold start (the model volume staged by `stage`, empty homes), a clean stop, a warm start of the same
    processes over the same homes and volume, and `worker` killed under load on the warm twin: startup.json's
    `starts` and failure.json's measurements."""
    cold = make_twin()
    try:
        starts = [timed_start(cold, model, time.monotonic(), stage)]
    finally:
        cold.stop()
    warm = make_twin()
    try:
        starts.append(timed_start(warm, model, time.monotonic(), None))
        return starts, kill_a_worker(warm, model, worker)
    finally:
        warm.stop()


def source(graph: dict, run: str) -> str:
    meta = graph["metadata"]
    return f"serving twin (#24) of DynamoGraphDeployment {meta['namespace']}/{meta['name']}, run {run}"


def as_files(graph: dict, run: str, starts: list[dict], failure: dict) -> dict[str, dict]:
    """The two documents, in the form ncp/evidence/behaviour.py reads."""
    origin = source(graph, run)
    return {"startup.json": {"source": origin, "starts": starts}, "failure.json": {"source": origin, **failure}}


def write_json(directory: Path, documents: dict[str, dict]) -> list[Path]:
    import json
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, document in documents.items():
        (directory / name).write_text(json.dumps(document, indent=1))
        paths.append(directory / name)
    return paths
