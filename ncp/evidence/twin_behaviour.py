"""Write an endpoint's startup and failure evidence from the serving twin (#28 item 3).

    ncp evidence twin-behaviour --stack prod --endpoint chat-dense --outputs <dir> [--worker TRTLLMWorker-0]
                                [--run-id <id>] [--port-base 21000]

Renders the stack, runs the endpoint's DynamoGraphDeployment as the serving twin (twin/: the real Dynamo frontend
and mocker workers with the rendered command, args and environment), times a cold and a warm start and kills one
worker under client load (ncp/twin/behaviour.py says what is measured and how), and writes <outputs>/<endpoint>/
startup.json and failure.json in the form ncp/evidence/behaviour.py reads; `ncp evidence` then judges them against the
endpoint's slo.startup / slo.failure into the signed record.
Exit codes: 0 written; 2 bad input (unknown stack or endpoint, no twin environment, unwritable outputs); 3 internal.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

from ncp.cli_exit import BAD_INPUT, OK, prepare_output
from ncp.evidence.behaviour import FailureInput, StartupInput
from ncp.plan.catalog import load_dynamo_runtime
from ncp.plan.names import MODELS_MOUNT
from ncp.twin.behaviour import as_files, measure, write_json
from ncp.twin.graph import PortPool, TwinError, graph_processes
from ncp.twin.run import Twin, TwinStartError, synthesise_models, twin_python


def _model(graph: dict, worker: str) -> tuple[str, str]:
    """The served name and model path of the worker service `worker` (`<service>-<replica>`)."""
    service = graph["spec"]["services"][worker.rsplit("-", 1)[0]]
    args = service["extraPodSpec"]["mainContainer"]["args"]
    return args[args.index("--served-model-name") + 1], args[args.index("--model-path") + 1]


def first_worker(graph: dict) -> str:
    name = next(n for n, s in graph["spec"]["services"].items() if s["componentType"] == "worker")
    return f"{name}-0"


def record_twin_behaviour(graph: dict, outputs: Path, worker: Optional[str] = None, run_id: Optional[str] = None,
                          ports: Optional[PortPool] = None) -> list[Path]:
    """Measure `graph` on the twin and write startup.json and failure.json into <outputs>/<graph name>/ (checked
    against ncp/evidence/behaviour.py's input models before they are written)."""
    worker = worker or first_worker(graph)
    served, model_path = _model(graph, worker)
    with tempfile.TemporaryDirectory(prefix="ncp-twin-behaviour-") as tmp:
        root = Path(tmp)
        processes = graph_processes(graph, load_dynamo_runtime(), root / "models", MODELS_MOUNT,
                                    ports or PortPool(21000), python=twin_python())
        if worker not in {p.service for p in processes}:
            raise TwinError(f"{worker}: not a worker process of {graph['metadata']['name']} "
                            f"({sorted(p.service for p in processes if p.component_type == 'worker')})")
        starts, failure = measure(lambda: Twin(processes, root / "twin"), served,
                                  lambda: synthesise_models(root / "models", [model_path], MODELS_MOUNT), worker)
    documents = as_files(graph, run_id or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()), starts, failure)
    StartupInput.model_validate(documents["startup.json"])
    FailureInput.model_validate(documents["failure.json"])
    return write_json(Path(outputs) / graph["metadata"]["name"], documents)


def parse(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ncp evidence twin-behaviour", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--outputs", type=Path, required=True)
    parser.add_argument("--worker", help="the worker process to kill, <service>-<replica> (default: the first)")
    parser.add_argument("--run-id")
    parser.add_argument("--port-base", type=int, default=21000)
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    import pulumi

    from ncp.readmodel.recorder import run_stack_file
    from ncp.plan.errors import ConfigError

    args = parse(argv)
    prepare_output(args.outputs, "--outputs", directory=True)
    try:
        recording = run_stack_file(args.stack)
    except (ConfigError, pulumi.RunError) as error:
        print(f"error: {error}", file=sys.stderr)
        return BAD_INPUT
    graphs = {r.inputs["metadata"]["name"]: r.inputs for r in recording.custom_resources("DynamoGraphDeployment")}
    if args.endpoint not in graphs:
        print(f"error: Pulumi.{args.stack}.yaml endpoints: no endpoint {args.endpoint!r} with a "
              f"DynamoGraphDeployment (have: {', '.join(sorted(graphs)) or 'none'})\n  fix: name one of them",
              file=sys.stderr)
        return BAD_INPUT
    try:
        paths = record_twin_behaviour(graphs[args.endpoint], args.outputs, args.worker, args.run_id,
                                       PortPool(args.port_base))
    except (TwinError, TwinStartError) as error:
        print(f"error: {error}", file=sys.stderr)
        return BAD_INPUT
    for path in paths:
        print(f"wrote {path}")
    return OK
