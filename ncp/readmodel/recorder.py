"""Run the Pulumi program under mocks and record every registration the way the engine receives it."""
import json
import runpy
from dataclasses import dataclass, field
from typing import AbstractSet, Any, Callable, Mapping, Optional

import pulumi
from google.protobuf import json_format
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc, settings

from ncp.plan.catalog import ROOT
from ncp.plan.names import PROJECT

PROGRAM = ROOT / "__main__.py"


@dataclass
class Registration:
    urn: str
    type: str
    name: str
    custom: bool
    parent: str
    inputs: dict
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    options: dict
    wire_inputs: dict  # protobuf-JSON with the engine's secret markers, as an analyzer would receive them


@dataclass
class Recording:
    stack: str
    resources: list[Registration] = field(default_factory=list)
    outputs: dict = field(default_factory=dict)

    def of_type(self, type_token: str) -> list[Registration]:
        return [r for r in self.resources if r.type == type_token]

    def custom_resources(self, kind: str) -> list[Registration]:
        return [r for r in self.resources if r.custom and r.inputs.get("kind") == kind]

    def releases(self) -> dict[str, Registration]:
        return {r.name: r for r in self.of_type("kubernetes:helm.sh/v3:Release")}


class _Mocks(pulumi.runtime.Mocks):
    """Resources echo their inputs; generated values are deterministic so runs compare equal."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        state = dict(args.inputs)
        if args.typ.startswith("random:index/randomPassword"):
            state["result"] = f"mock-{args.name}"
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    def __init__(self, mocks, recording: Recording):
        super().__init__(mocks)
        self.recording = recording

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.recording.resources.append(Registration(
                urn=response.urn,
                type=request.type,
                name=request.name,
                custom=bool(request.custom),
                parent=request.parent,
                inputs=rpc.deserialize_properties_unwrap_secrets(request.object)[0],
                dependencies=list(request.dependencies),
                property_dependencies={k: list(v.urns) for k, v in request.propertyDependencies.items()},
                options={
                    "protect": request.protect,
                    "provider": request.provider,
                    "deleteBeforeReplace": request.deleteBeforeReplace,
                    "ignoreChanges": list(request.ignoreChanges),
                    "additionalSecretOutputs": list(request.additionalSecretOutputs),
                },
                wire_inputs=json_format.MessageToDict(request.object),
            ))
        return response


def install_order(recording: Recording) -> list[Registration]:
    """Resources in the order the engine can install them: after everything they depend on, ties by type and name.
    Registration order is not it: resources registered in `apply` callbacks arrive in a different order per run."""
    by_urn = {r.urn: r for r in recording.resources}
    depth: dict[str, int] = {}

    def level(urn: str, seen: frozenset = frozenset()) -> int:
        if urn not in depth:
            registration = by_urn[urn]
            after = [u for u in registration.dependencies if u in by_urn and u not in seen]
            depth[urn] = 1 + max((level(u, seen | {urn}) for u in after), default=-1)
        return depth[urn]

    return sorted(recording.resources, key=lambda r: (level(r.urn), r.type, r.name))


def config_for_runtime(raw: Mapping[str, Any]) -> dict[str, str]:
    """Stack config values as the engine hands them to a program: strings, objects JSON-encoded."""
    return {f"{PROJECT}:{key}": value if isinstance(value, str) else json.dumps(value) for key, value in raw.items()}


def run_program(raw: Mapping[str, Any], secret_keys: AbstractSet[str] = frozenset(), stack: str = "test",
                program: Optional[Callable[[], object]] = None) -> Recording:
    """Run __main__.py (or `program`) under mocks with the given config; raises what the program raises."""
    recording = Recording(stack=stack)
    monitor = _RecordingMonitor(_Mocks(), recording)
    settings.ROOT.set(None)  # a fresh root Stack per run, so runs in one process do not share parents
    pulumi.runtime.set_mocks(_Mocks(), project=PROJECT, stack=stack, preview=True, monitor=monitor)
    pulumi.runtime.set_all_config(config_for_runtime(raw), [f"{PROJECT}:{key}" for key in secret_keys])

    def run() -> pulumi.Output:
        if program is not None:
            program()
        else:
            runpy.run_path(str(PROGRAM), run_name="__main__")
        # Under mocks the root Stack is finished before the program runs, so exports never reach the monitor:
        # read them from the root resource instead.
        root = settings.get_root_resource()
        assert isinstance(root, pulumi.runtime.stack.Stack), "pulumi.runtime.test runs the program in a Stack"
        exports = dict(root.outputs)
        return pulumi.Output.from_input(exports).apply(recording.outputs.update)

    pulumi.runtime.test(run)()
    return recording


def run_stack_file(stack: str) -> Recording:
    """Run the program with the config of Pulumi.<stack>.yaml; secret values become placeholders."""
    from ncp.plan.sources import read_stack_file

    raw, secrets = read_stack_file(stack)
    return run_stack_config(raw, secrets, stack)


def run_stack_config(raw: Mapping[str, Any], secrets: set[str], stack: str) -> Recording:
    """Run the program with a stack file's config; its encrypted secret values become placeholders."""
    raw = {key: (f"placeholder-{key}" if key in secrets else value) for key, value in raw.items()}
    return run_program(raw, secrets, stack=stack)
