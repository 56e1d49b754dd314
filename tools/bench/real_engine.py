"""Benchmark: the real Pulumi CLI previews (and `up`s) synthetic sites of 1, 10 and 100 tenants against the local
control plane, next to a plain pulumi-kubernetes program that registers the same Kubernetes resources (generated in
a temp dir from the program's offline recording). One run of each, on the same machine, one after the other.

    .venv/bin/python tools/bench/real_engine.py [--tenants 1 10 100] [--skip-up] [--trace DIR]
                                                [--mitigations parallel client-qps ...]

Needs the engine (tools/e2e/bootstrap.sh) and the upstream CRDs in ../shared/upstream. The control plane runs on the
NCP_E2E_* ports and state dir of the environment (control-plane.sh). Peak memory is the largest summed RSS of the
CLI's process tree (CLI, language host, Python program, providers), polled every POLL_SECONDS.

Targets (issue #13): at the largest tenant count, each measured phase of the program takes at most TARGET_RATIO times
the plain program's; cost is linear in tenants (the marginal ms per resource of the last step is at most
LINEARITY times the first step's). Exit 0 when met, 1 when missed, 2 on bad arguments, 3 on an internal error."""
import argparse
import os
import json
import resource as rusage
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence
from unittest import mock

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from ncp.cli_exit import BAD_INPUT, FAILED_GATE, INTERNAL_ERROR, OK, run_command  # noqa: E402
from tools.project_copy import copy_project  # noqa: E402

TARGET_RATIO = 1.2
LINEARITY = 1.5
POLL_SECONDS = 0.1
PASSPHRASE = "ncp-bench"
PHASES = ("preview", "up")
PLAIN_MAIN = '''"""Plain pulumi-kubernetes program of the real-engine benchmark (made by tools/bench/real_engine.py)."""
import json
import sys

sys.path.insert(0, {bench!r})
from plain import register_plain

register_plain(json.load(open("resources.json")))
'''




@dataclass(frozen=True)
class Mitigation:
    """An engine-side option a user can choose, as it exists in the pinned pulumi v3.274.0 / pulumi-kubernetes
    v4.25.0 (read in their sources: `source`). Applied to both programs alike, so the ratio stays a fair one."""
    args: tuple[str, ...]  # added to the measured `pulumi preview` / `pulumi up`
    env: dict
    phases: tuple[str, ...]  # the phases it changes
    source: str
    trade_off: str


MITIGATIONS = {
    "parallel": Mitigation(
        ("--parallel", "32"), {}, PHASES,
        "pulumi/pulumi pkg/cmd/pulumi/operations/up.go defaultParallel (line 70 @ v3.274.0): 4 x GOMAXPROCS",
        "more provider calls in flight at once: the API server sees more concurrent requests"),
    "client-qps": Mitigation(
        (), {"PULUMI_K8S_CLIENT_QPS": "500", "PULUMI_K8S_CLIENT_BURST": "1000"}, PHASES,
        "pulumi-kubernetes provider/pkg/provider/provider.go lines 803-823 @ v4.25.0: client-go rate limit, "
        "default QPS 50, burst 120 (also the provider's kubeClientSettings.qps/burst)",
        "the provider no longer throttles itself: API Priority and Fairness on the server is the only limit"),
    "parallel-diff": Mitigation(
        (), {"PULUMI_PARALLEL_DIFF": "true"}, PHASES,
        "pulumi/pulumi sdk/go/common/env/env.go line 166 @ v3.274.0 (PULUMI_PARALLEL_DIFF)",
        "none for correctness; diffs of independent resources run at once"),
    "no-plugin-acquisition": Mitigation(
        (), {"PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true"}, PHASES,
        "pulumi/pulumi sdk/go/common/env/env.go line 75 @ v3.274.0",
        "a missing provider plugin is an error instead of a download (offline sites want that anyway)"),
    "skip-checkpoints": Mitigation(
        (), {"PULUMI_SKIP_CHECKPOINTS": "true"}, ("up",),
        "pulumi/pulumi sdk/go/common/env/env.go line 50 @ v3.274.0 (pulumi/pulumi#10668)",
        "only the final state is saved: a run that dies mid-way leaves no record of its finished steps"),
    "no-dry-run": Mitigation(
        (), {"PULUMI_K8S_ENABLE_SERVER_SIDE_APPLY": "false"}, ("preview",),
        "pulumi-kubernetes provider/pkg/provider/provider.go line 570 (enableServerSideApply) and line 1582 "
        "(skipPreview) @ v4.25.0",
        "measurement only, not a recommendation: preview stops asking the API server (no admission, schema or "
        "CRD check) and the provider switches to client-side apply"),
}
RECOMMENDED = ("parallel", "client-qps", "parallel-diff", "no-plugin-acquisition", "skip-checkpoints")


def mitigation_options(names: Sequence[str], phase: str) -> tuple[list[str], dict]:
    """The CLI arguments and environment of the chosen mitigations for one phase."""
    args: list[str] = []
    env: dict = {}
    for name in names:
        chosen = MITIGATIONS[name]
        if phase in chosen.phases:
            args += chosen.args
            env.update(chosen.env)
    return args, env


class BenchError(RuntimeError):
    """A CLI run failed: the benchmark has no figure to report."""


@dataclass
class Measurement:
    seconds: float
    peak_mib: float
    cpu_s: float = 0.0  # CPU of the CLI's process tree (CLI, language host, program, providers): apart from load
    load: float = 0.0  # the machine's 1-minute load average when the run started


@dataclass
class Row:
    tenants: int
    mode: str  # "program" or "plain"
    resources: int  # Kubernetes resources (the same for both modes)
    registrations: int  # everything the engine registers: resources plus components and the stack
    phases: dict[str, Measurement]


def site(tenants: int) -> dict:
    """The mock benchmark's synthetic site. The local control plane's stand-in charts and no-wait switches come from
    its overlay (ncp/plan/local_overlay.py), which start_control_plane's environment names, not from the stack."""
    from tools.bench.compose_scaling import site as mock_site

    return mock_site(tenants)


def recorded_resources(config: dict) -> tuple[list[dict], int]:
    """The program's Kubernetes resources as the plain program registers them (charts by absolute path), and the
    number of all registrations (components included) under mocks."""
    from ncp.readmodel.recorder import run_program
    from tests.support.synthetic import secret_keys
    from ncp.plan.local_overlay import CONTROL_PLANE_OVERLAY, OVERLAY_ENV

    with mock.patch.dict(os.environ, {OVERLAY_ENV: CONTROL_PLANE_OVERLAY}):  # as the engine runs it
        recording = run_program(config, secret_keys(config), stack="bench")
    resources = []
    for registration in recording.resources:
        if registration.custom:
            inputs = dict(registration.inputs)
            if registration.type == "kubernetes:helm.sh/v3:Release" and inputs["chart"].startswith("./"):
                inputs["chart"] = str(ROOT / inputs["chart"])
            resources.append({"type": registration.type, "name": registration.name, "inputs": inputs})
    return resources, len(recording.resources) + 1


def write_plain_project(directory: Path, resources: list[dict]) -> Path:
    """A pulumi-kubernetes project registering `resources` with nothing else, on the project's virtualenv."""
    directory.mkdir(parents=True)
    (directory / "Pulumi.yaml").write_text(yaml.safe_dump({
        "name": "plain-bench", "runtime": {"name": "python", "options": {
            "toolchain": "pip", "virtualenv": str(ROOT / ".venv")}}}))
    (directory / "resources.json").write_text(json.dumps(resources))
    (directory / "__main__.py").write_text(PLAIN_MAIN.format(bench=str(ROOT / "tools" / "bench")))
    return directory


def copy_program(directory: Path) -> Path:
    """A copy of the project (stack init writes the encryption salt into the stack file), sharing .venv."""
    return copy_project(directory)


def write_stack(project: Path, stack: str, config: dict, secrets: set[str]) -> None:
    from ncp.plan.site_plan import PROJECT

    plain = {f"{PROJECT}:{key}": value for key, value in config.items() if key not in secrets}
    (project / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": plain}, sort_keys=False))


def tree_rss(pid: int) -> int:
    """Summed RSS in bytes of the process and all its descendants (0 once it has exited)."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def run_measured(args: Sequence[str], cwd: Path, env: dict) -> Measurement:
    """Run a CLI command; its wall time and the peak RSS of its process tree. BenchError if it fails."""
    peak = [0]
    load, children = os.getloadavg()[0], rusage.getrusage(rusage.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen(list(args), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    output: list[str] = []
    stdout = process.stdout
    assert stdout is not None  # stdout=PIPE
    reader = threading.Thread(target=lambda: output.append(stdout.read()), daemon=True)
    reader.start()
    while process.poll() is None:
        peak[0] = max(peak[0], tree_rss(process.pid))
        time.sleep(POLL_SECONDS)
    seconds = time.perf_counter() - started
    reader.join()
    if process.returncode != 0:
        raise BenchError(f"{' '.join(args)} exited {process.returncode} in {cwd}:\n{''.join(output)[-4000:]}")
    after = rusage.getrusage(rusage.RUSAGE_CHILDREN)  # every waited-for descendant: the CLI and its plugins
    cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    return Measurement(round(seconds, 2), round(peak[0] / 2 ** 20, 1), round(cpu, 2), round(load, 1))


class Engine:
    """The pulumi CLI with a file backend and a passphrase, against the control plane in env's KUBECONFIG."""

    def __init__(self, env: dict, backend: Path, trace: Optional[Path], mitigations: Sequence[str] = ()):
        backend.mkdir(parents=True, exist_ok=True)
        self.env = {**env, "PULUMI_BACKEND_URL": f"file://{backend}", "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE}
        self.trace = trace
        self.mitigations = tuple(mitigations)

    def run(self, project: Path, *args: str, trace_name: str = "", env: Optional[dict] = None) -> Measurement:
        extra = [f"--tracing=file:{self.trace / trace_name}.trace"] if self.trace and trace_name else []
        return run_measured(["pulumi", *args, "--non-interactive", *extra], project, {**self.env, **(env or {})})

    def measure(self, project: Path, stack: str, phase: str, label: str) -> Measurement:
        """Preview, or up (then an unmeasured destroy: both stacks deploy the same objects)."""
        args, env = mitigation_options(self.mitigations, phase)
        if phase == "preview":
            measured = self.run(project, "preview", "--stack", stack, *args, trace_name=f"{label}-preview", env=env)
        else:
            measured = self.run(project, "up", "--yes", "--skip-preview", "--stack", stack, *args,
                                trace_name=f"{label}-up", env=env)
        print(f"{label} {phase}: {measured.seconds:.1f} s, peak {measured.peak_mib:.0f} MiB", file=sys.stderr)
        if phase == "up":
            # Clean-up only: the file backend's checkpoint after every step makes a destroy of n resources write
            # O(n^2) bytes (minutes of CPU at 100 tenants); the throwaway stack needs only its final state.
            self.run(project, "destroy", "--yes", "--skip-preview", "--stack", stack,
                     env={"PULUMI_SKIP_CHECKPOINTS": "true"})
        return measured


def wait_namespaces_gone(api, resources: list[dict], timeout: float = 300) -> None:
    """Destroy does not wait for namespace finalization (skipAwait): the next stack reuses the names."""
    for resource in resources:
        if resource["inputs"].get("kind") == "Namespace":
            name = resource["inputs"]["metadata"]["name"]
            if not api.wait_gone(f"/api/v1/namespaces/{name}", timeout):
                raise BenchError(f"namespace {name} still exists {timeout:.0f}s after destroy")


def bench_tenants(tenants: int, engine: Engine, api, work: Path, program: Path, skip_up: bool,
                  rows: list[Row]) -> None:
    """Both previews first (they change nothing), then each up followed by its destroy; rows are added to `rows`
    before they are measured, so an interrupted run still reports what it measured."""
    from tests.support.synthetic import secret_keys
    from ncp.plan.site_plan import PROJECT

    config = site(tenants)
    resources, registrations = recorded_resources(config)
    stack = f"bench-t{tenants}"
    write_stack(program, stack, config, secret_keys(config))
    engine.run(program, "stack", "init", stack)
    for key in sorted(secret_keys(config)):
        engine.run(program, "config", "set", "--secret", "--stack", stack, f"{PROJECT}:{key}", config[key])
    plain = write_plain_project(work / f"plain-{tenants}", resources)
    engine.run(plain, "stack", "init", stack)
    measured = [Row(tenants, "program", len(resources), registrations, {}),
                Row(tenants, "plain", len(resources), len(resources) + 1, {})]
    rows += measured
    for phase in PHASES[:1] if skip_up else PHASES:
        for row, project in zip(measured, (program, plain), strict=False):
            row.phases[phase] = engine.measure(project, stack, phase, f"{row.mode}-{tenants}")
            if phase == "up":
                wait_namespaces_gone(api, resources)


def per_resource_ms(row: Row, phase: str) -> float:
    return row.phases[phase].seconds * 1000 / row.resources


def marginal_ms(low: Row, high: Row, phase: str, field: str = "seconds") -> float:
    """ms (of wall, or of CPU with field="cpu_s") per added resource from `low` to `high` (start-up cancels out)."""
    added = getattr(high.phases[phase], field) - getattr(low.phases[phase], field)
    return added * 1000 / max(high.resources - low.resources, 1)


def report(rows: list[Row]) -> str:
    phases = [p for p in PHASES if all(p in r.phases for r in rows)]
    header = "| tenants | mode | resources (registrations) |"
    header += "".join(f" {p} s | {p} peak MiB | {p} ms/resource |" for p in phases)
    header += "".join(f" {p} CPU s | {p} load |" for p in phases)
    lines = [header, "|" + " --- |" * (3 + 5 * len(phases))]
    for row in rows:
        cells = "".join(f" {row.phases[p].seconds:.1f} | {row.phases[p].peak_mib:.0f} | {per_resource_ms(row, p):.1f} |"
                        for p in phases)
        cells += "".join(f" {row.phases[p].cpu_s:.1f} | {row.phases[p].load:.1f} |" for p in phases)
        lines.append(f"| {row.tenants} | {row.mode} | {row.resources} ({row.registrations}) |{cells}")
    by = {(r.mode, r.tenants): r for r in rows}
    counts = sorted({r.tenants for r in rows})
    for tenants in counts:
        ratios = ", ".join(f"{p} {ratio(by, tenants, p, 'seconds'):.2f}x time / "
                           f"{ratio(by, tenants, p, 'peak_mib'):.2f}x memory"
                           + (f" / {ratio(by, tenants, p, 'cpu_s'):.2f}x CPU" if cpu_measured(rows, p) else "")
                           for p in phases)
        lines.append(f"program/plain at {tenants} tenants: {ratios}")
    for mode in ("program", "plain"):
        for phase in phases:
            steps = [f"{marginal_ms(by[(mode, lo)], by[(mode, hi)], phase):.1f} ms ({lo}->{hi})"
                     for lo, hi in zip(counts, counts[1:], strict=False)]
            if steps:
                lines.append(f"{mode} {phase} marginal cost per resource: {', '.join(steps)}")
            if steps and cpu_measured(rows, phase):
                cpu = [f"{marginal_ms(by[(mode, lo)], by[(mode, hi)], phase, 'cpu_s'):.1f} ms ({lo}->{hi})"
                       for lo, hi in zip(counts, counts[1:], strict=False)]
                lines.append(f"{mode} {phase} marginal CPU per resource: {', '.join(cpu)}")
    return "\n".join(lines)


def cpu_measured(rows: list[Row], phase: str) -> bool:
    """CPU figures are there (rows read from an older JSON have none): under load they compare fairer than wall."""
    return all(row.phases[phase].cpu_s > 0 for row in rows)


def ratio(by: dict, tenants: int, phase: str, field: str) -> float:
    return getattr(by[("program", tenants)].phases[phase], field) / getattr(by[("plain", tenants)].phases[phase], field)


def missed_targets(rows: list[Row]) -> list[str]:
    """The targets the figures miss (empty: all met)."""
    by = {(r.mode, r.tenants): r for r in rows}
    counts = sorted({r.tenants for r in rows})
    phases = [p for p in PHASES if all(p in r.phases for r in rows)]
    missed = []
    for phase in phases:
        time_ratio = ratio(by, counts[-1], phase, "seconds")
        if time_ratio > TARGET_RATIO:
            missed.append(f"{phase} at {counts[-1]} tenants: {time_ratio:.2f}x the plain program (target "
                          f"<= {TARGET_RATIO}x)")
        if len(counts) >= 3:
            first = marginal_ms(by[("program", counts[0])], by[("program", counts[1])], phase)
            last = marginal_ms(by[("program", counts[-2])], by[("program", counts[-1])], phase)
            if last > LINEARITY * max(first, 0.0):
                missed.append(f"{phase} is not linear in tenants: {last:.1f} ms per added resource from "
                              f"{counts[-2]} to {counts[-1]} tenants, {first:.1f} ms from {counts[0]} to "
                              f"{counts[1]} (target <= {LINEARITY}x)")
    return missed


def parse(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, nargs="+", default=[1, 10, 100], help="tenant counts, ascending")
    parser.add_argument("--skip-up", action="store_true", help="preview only (no up/destroy)")
    parser.add_argument("--trace", type=Path, help="write `pulumi --tracing` files of each measured run here")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--mitigations", nargs="+", default=[], metavar="NAME",
                        choices=[*MITIGATIONS, "recommended"],
                        help=f"engine-side options applied to both programs: {', '.join(MITIGATIONS)}; "
                             f"`recommended`: {' '.join(RECOMMENDED)}")
    args = parser.parse_args(argv)
    if "recommended" in args.mitigations:
        args.mitigations = sorted(set(args.mitigations) - {"recommended"} | set(RECOMMENDED))
    if any(t < 1 for t in args.tenants) or args.tenants != sorted(set(args.tenants)):
        parser.error("--tenants: distinct positive counts in ascending order")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        args = parse(argv)
    except SystemExit as exit_:
        return OK if exit_.code == 0 else BAD_INPUT
    from tests.e2e.cluster import UPSTREAM, EngineMissing, engine_environment, start_control_plane, stop_control_plane

    if not UPSTREAM.is_dir():
        print(f"{UPSTREAM} is absent: the benchmark installs the upstream CRDs from there", file=sys.stderr)
        return INTERNAL_ERROR
    try:
        env = engine_environment()
    except EngineMissing as missing:
        print(missing, file=sys.stderr)
        return INTERNAL_ERROR
    if args.trace:
        args.trace.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="ncp-real-bench-") as scratch:
        work = Path(scratch)
        env.setdefault("NCP_E2E_STATE", str(work / "control-plane"))
        try:
            api, env = start_control_plane(env)
            engine = Engine(env, work / "backend", args.trace, args.mitigations)
            print(f"mitigations: {' '.join(args.mitigations) or 'none'}; load average "
                  f"{os.getloadavg()[0]:.1f}", file=sys.stderr)
            program = copy_program(work / "program")
            for tenants in args.tenants:
                bench_tenants(tenants, engine, api, work, program, args.skip_up, rows)
        except BenchError as error:
            print(f"benchmark run failed: {error}", file=sys.stderr)
            return INTERNAL_ERROR
        except KeyboardInterrupt:
            done = [t for t in args.tenants if sum(r.tenants == t and "preview" in r.phases for r in rows) == 2]
            complete = [r for r in rows if r.tenants in done]
            print(f"interrupted: the figures measured so far\n{report(complete) if complete else ''}")
            return INTERNAL_ERROR
        finally:
            stop_control_plane(env)
    return verdict(rows, args.json)


def verdict(rows: list[Row], json_path: Optional[Path]) -> int:
    """Print the table (and write it as JSON); FAILED_GATE when a target is missed."""
    print(report(rows))
    if json_path:
        json_path.write_text(json.dumps([{**r.__dict__, "phases": {p: m.__dict__ for p, m in r.phases.items()}}
                                         for r in rows], indent=1))
    missed = missed_targets(rows)
    for line in missed:
        print(f"target missed: {line}")
    return FAILED_GATE if missed else OK


if __name__ == "__main__":
    sys.exit(run_command(main))
