"""Start a rendered graph's processes (ncp/twin/graph.py), wait until its frontend serves the model, stop them.

The twin's Python is the pinned Dynamo release installed by scripts/setup.sh into .venv-twin (tools/venvs/twin.txt);
the discovery store, each process's HOME and logs live in one directory per twin."""
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ncp.plan.catalog import ROOT
from ncp.twin.graph import TwinProcess

TWIN_VENV = ROOT / ".venv-twin"
TWIN_PYTHON = TWIN_VENV / "bin" / "python"


class TwinStartError(Exception):
    """A twin process exited or the frontend never served the model; the message carries the log tails."""


def twin_python() -> str:
    if not TWIN_PYTHON.exists():
        raise TwinStartError(f"{TWIN_PYTHON} is missing\n  fix: run `bash scripts/setup.sh` (it creates .venv-twin "
                             "with the pinned Dynamo release, tools/venvs/twin.txt)")
    return str(TWIN_PYTHON)


def http_json(url: str, body: Optional[dict] = None, timeout: float = 10,
              headers: Optional[dict[str, str]] = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json", **(headers or {})})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def http_text(url: str, timeout: float = 10) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


@dataclass
class Twin:
    processes: list[TwinProcess]
    directory: Path
    wrap: dict[str, list[str]] = field(default_factory=dict)  # service -> argv prefix (e.g. a mount namespace)
    # service -> discovery environment (ncp/twin/kube_discovery.py); a service without one uses the file store
    discovery: dict[str, dict[str, str]] = field(default_factory=dict)
    running: dict[str, subprocess.Popen] = field(default_factory=dict)
    started_at: float = 0.0
    ready_seconds: Optional[float] = None

    @property
    def frontend(self) -> TwinProcess:
        return next(p for p in self.processes if p.component_type == "frontend")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.frontend.http_port}"

    def start(self) -> "Twin":
        (self.directory / "discovery").mkdir(parents=True, exist_ok=True)
        self.started_at = time.monotonic()
        # workers first, as the operator's pods come up in any order and the frontend watches for them
        for process in sorted(self.processes, key=lambda p: p.component_type == "frontend"):
            self.launch(process)
        return self

    def launch(self, process: TwinProcess) -> None:
        """Start one process (again, after a kill: as the kubelet restarts a pod's container, with the same HOME,
        log appended)."""
        home = self.directory / "home" / process.service
        home.mkdir(parents=True, exist_ok=True)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "HF_HOME": str(home / "hf"),
               "TMPDIR": str(home), **process.env,
               **self.discovery.get(process.service, {"DYN_DISCOVERY_BACKEND": "file",
                                                      "DYN_FILE_KV": str(self.directory / "discovery")})}
        log = open(self.directory / f"{process.service}.log", "ab")
        self.running[process.service] = subprocess.Popen(
            [*self.wrap.get(process.service, []), *process.argv], env=env, stdout=log,
            stderr=subprocess.STDOUT, cwd=home, start_new_session=True)

    def kill(self, service: str) -> None:
        """SIGKILL a process and its children, as a node loss or an OOM kill ends a pod: no clean deregistration."""
        popen = self.running[service]
        os.killpg(popen.pid, signal.SIGKILL)
        popen.wait()

    def logs(self, lines: int = 25) -> str:
        tails = []
        for process in self.processes:
            path = self.directory / f"{process.service}.log"
            text = path.read_text(errors="replace").splitlines() if path.exists() else []
            tails.append(f"--- {process.service} ({path}):\n" + "\n".join(line[:300] for line in text[-lines:]))
        return "\n".join(tails)

    def _check_alive(self) -> None:
        for name, popen in self.running.items():
            if popen.poll() is not None:
                raise TwinStartError(f"{name} exited with {popen.returncode}\n{self.logs()}")

    def wait_for_model(self, model: str, timeout: float = 240) -> float:
        """Seconds from start until the frontend lists `model` and answers a one-token chat request."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                listed = [m["id"] for m in http_json(f"{self.url}/v1/models", timeout=5)["data"]]
                if model in listed:
                    self.chat(model, "hello", max_tokens=1)
                    self.ready_seconds = time.monotonic() - self.started_at
                    return self.ready_seconds
            except (urllib.error.URLError, ConnectionError, TimeoutError, KeyError, ValueError):
                pass
            time.sleep(1)
        raise TwinStartError(f"the frontend at {self.url} did not serve {model} within {timeout:.0f}s\n{self.logs()}")

    def chat(self, model: str, content: str, max_tokens: int = 8, headers: Optional[dict[str, str]] = None) -> dict:
        """One chat completion; `headers` as a gateway would add them (e.g. W3C traceparent, x-request-id)."""
        return http_json(f"{self.url}/v1/chat/completions", {
            "model": model, "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens},
            timeout=60, headers=headers)

    def stop(self) -> None:
        for popen in self.running.values():
            if popen.poll() is None:
                os.killpg(popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for popen in self.running.values():
            try:
                popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(popen.pid, signal.SIGKILL)
                popen.wait()

    def __enter__(self) -> "Twin":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def synthesise_models(root: Path, model_paths: list[str], models_mount: str) -> Path:
    """The model volume: a synthesised model directory (ncp/twin/model_dir.py) at each rendered model path, written by
    the twin's Python (it has the tokenizers library)."""
    script = "import sys; from pathlib import Path; from ncp.twin.model_dir import synthesise\n" \
             "for d in sys.argv[1:]: synthesise(Path(d))"
    dirs = [str(root / path[len(models_mount) + 1:]) for path in model_paths]
    subprocess.run([twin_python(), "-c", script, *dirs], cwd=ROOT, check=True, timeout=300)
    return root
