"""Which acceptance Jobs a run may start, and whether each is still what the stack deployed.

The run takes the validation suite Job and each endpoint's AIPerf Job by namespace and name from the stack as the
program renders it (ncp/readmodel/recorder.py under mocks, the same program `pulumi up` runs), never by labels: a tenant
admin can create Jobs in their namespace with any labels. A tenant admin can also edit the suspended AIPerf Job of
their own namespace (the tenant role manages workloads, data/tenant-access.yaml); so before a run each deployed
Job's pod template is compared with the rendered one, on the fields that decide what runs and where it writes
(containers' image, command, args, env and mounts; volumes' sources; service account; node selector). The
digest is over those fields only, as the API server adds defaults to the rest (imagePullPolicy,
terminationMessagePath, a volume's defaultMode)."""
import hashlib
import json
from typing import Any, Callable

from ncp.cluster_api import KubeError
from ncp.plan.names import ENDPOINT_LABEL

COMPONENT = "app.kubernetes.io/component"
SUITE, BENCHMARK = "validation-suite", "benchmark"


class NotRendered(Exception):
    """The stack renders no validation suite Job or no AIPerf Job for some endpoint: bad input (exit 2)."""


class ChangedJob(Exception):
    """A deployed acceptance Job differs from what the stack renders: the run refuses to start it."""


def _container(container: dict) -> dict:
    return {"name": container.get("name"), "image": container.get("image"),
            "command": container.get("command") or [], "args": container.get("args") or [],
            "env": [[e["name"], e.get("value")] for e in container.get("env") or []],
            "volumeMounts": [[m["name"], m["mountPath"], bool(m.get("readOnly")), m.get("subPath") or ""]
                             for m in container.get("volumeMounts") or []]}


def _volume(volume: dict) -> list:
    sources = {key: value for key, value in volume.items() if key != "name"}
    claim = (sources.get("persistentVolumeClaim") or {}).get("claimName")
    config_map = (sources.get("configMap") or {}).get("name")
    secret = (sources.get("secret") or {}).get("secretName")
    host = (sources.get("hostPath") or {}).get("path")
    return [volume["name"], sorted(sources), claim, config_map, secret, host]


def projection(job: dict) -> dict[str, Any]:
    """The fields of a Job's pod template that decide what it runs, as whom, where and onto what it writes."""
    pod = job["spec"]["template"]["spec"]
    return {"containers": [_container(c) for c in (pod.get("initContainers") or []) + pod["containers"]],
            "volumes": sorted(_volume(v) for v in pod.get("volumes") or []),
            "serviceAccountName": pod.get("serviceAccountName") or "default",
            "nodeSelector": pod.get("nodeSelector") or {}}


def spec_digest(job: dict) -> str:
    return hashlib.sha256(json.dumps(projection(job), sort_keys=True).encode()).hexdigest()


def rendered_jobs(manifests: list[dict], endpoints: list[str]) -> list[dict]:
    """The validation suite Job, then each endpoint's AIPerf Job in the plan's endpoint order, from the rendered
    manifests."""
    jobs = [m for m in manifests if m.get("kind") == "Job"]
    suite = [j for j in jobs if j["metadata"].get("labels", {}).get(COMPONENT) == SUITE]
    benchmarks = {j["metadata"]["labels"].get(ENDPOINT_LABEL): j for j in jobs
                  if j["metadata"].get("labels", {}).get(COMPONENT) == BENCHMARK}
    return suite + [benchmarks[e] for e in endpoints if e in benchmarks]


def expected_jobs(stack: str, endpoints: list[str]) -> list[dict]:
    """The stack's acceptance Jobs as the program renders them (its config, secrets as placeholders)."""
    from ncp.readmodel.manifests import core_manifests
    from ncp.readmodel.recorder import run_stack_file
    return rendered_jobs(core_manifests(run_stack_file(stack)), endpoints)


def deployed_jobs(read: Callable[[str, str], dict], expected: list[dict]) -> list[dict]:
    """Each expected Job as the cluster holds it, read by namespace and name; missing ones are bad input (KubeError),
    changed ones refused (ChangedJob, naming the Job and the fields that differ)."""
    found, missing = [], []
    for want in expected:
        namespace, name = want["metadata"]["namespace"], want["metadata"]["name"]
        try:
            found.append(read(namespace, name))
        except KubeError as error:
            if error.status != 404:
                raise
            missing.append(f"{namespace}/{name}")
    if missing:
        raise KubeError(f"the cluster lacks the stack's acceptance Jobs: {', '.join(missing)}\n"
                        "  fix: `pulumi up` the stack with components.serving.validation enabled and its endpoints")
    for want, have in zip(expected, found, strict=True):
        if spec_digest(have) != spec_digest(want):
            fields = [k for k, v in projection(want).items() if projection(have)[k] != v]
            raise ChangedJob(f"{have['metadata']['namespace']}/{have['metadata']['name']} differs from what the stack "
                             f"renders in {', '.join(fields)} (spec digest {spec_digest(have)[:12]}, rendered "
                             f"{spec_digest(want)[:12]}): it was changed after deploy; run `pulumi up` to restore "
                             "it, and find out who changed it")
    return found
