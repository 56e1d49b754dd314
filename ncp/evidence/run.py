"""Run a deployed stack's acceptance Jobs, wait for them with progress, then write the evidence.

    ncp evidence run --stack prod --outputs <dir> --cache-state warm [--kubeconfig <file>] [--context <name>]
                           [--timeout 3600] [--evidence-dir <dir>] [--index <file>] [--poll 10]

The program deploys the validation suite Job and one AIPerf Job per endpoint suspended. A run takes them by namespace
and name from the stack as rendered and refuses any whose pod template was changed after deploy
(ncp/evidence/acceptance_jobs.py). It never edits them (that
would drift from the Pulumi state and a finished Job cannot run again): it creates a fresh Job from each one's spec,
named <job>-<run id> and not suspended, runs the validation suite first and then the benchmarks one endpoint at a
time (they share the GPUs), and waits for each to finish. The Jobs write JUnit XML and AIPerf exports to the
benchmark claim; --outputs is that claim as mounted or synced on this machine (layout: ncp evidence --help).
Exit codes: 0 every endpoint passed; 1 a Job failed, timed out or was changed after deploy, or an endpoint missed
its thresholds;
2 bad input (config, kubeconfig, missing Jobs or outputs); 3 an internal error.
"""
import argparse
import sys
from datetime import datetime, timezone

from ncp.evidence import cli as write_evidence
from ncp.evidence.acceptance_jobs import ChangedJob, NotRendered, deployed_jobs, expected_jobs
from ncp.cluster_api import Kube, KubeError, add_arguments, connect_from
from ncp.plan.errors import ConfigError
from ncp.plan.names import ACCEPTANCE_RUN_LABEL, PROJECT, RUN_OF_ANNOTATION
from ncp.plan.sources import plan_from_stack_file

PART_OF = f"app.kubernetes.io/part-of={PROJECT}"
# Fields of a Job the API server sets; a run Job copies the rest of the suspended template.
GENERATED_LABELS = {"controller-uid", "batch.kubernetes.io/controller-uid", "job-name", "batch.kubernetes.io/job-name"}


def run_job(template: dict, run_id: str) -> dict:
    meta = template["metadata"]
    spec = {k: v for k, v in template["spec"].items() if k not in ("selector", "suspend")}
    pod = spec["template"]
    pod_labels = {k: v for k, v in (pod.get("metadata", {}).get("labels") or {}).items() if k not in GENERATED_LABELS}
    spec["template"] = {**pod, "metadata": {**pod.get("metadata", {}), "labels": pod_labels}}
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in GENERATED_LABELS}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": f"{meta['name']}-{run_id}"[:63].rstrip("-"), "namespace": meta["namespace"],
                         "labels": {**labels, ACCEPTANCE_RUN_LABEL: run_id},
                         # the template's own (e.g. KAI's batch-min-member gang size) and which template it runs
                         "annotations": {**(meta.get("annotations") or {}), RUN_OF_ANNOTATION: meta["name"]}},
            "spec": {**spec, "suspend": False}}


def finished(job: dict):
    """'Complete', 'Failed' or None from the Job's conditions."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition["type"] in ("Complete", "Failed") and condition["status"] == "True":
            return condition["type"]
    return None


def templates(kube: Kube, stack: str, site_plan) -> list[dict]:
    """The validation suite Job, then each endpoint's AIPerf Job in the plan's endpoint order: by namespace and name
    as the stack renders them, each unchanged since deploy."""
    expected = expected_jobs(stack, [e.endpoint.name for e in site_plan.endpoints])
    if len(expected) != 1 + len(site_plan.endpoints):
        raise NotRendered(f"stack {stack} renders no validation suite or AIPerf Job for every endpoint\n"
                          "  fix: enable components.serving.validation in the stack file")
    return deployed_jobs(kube.job, expected)


def wait(kube: Kube, job: dict, timeout: float, poll: float, say) -> str:
    """Watches the Job until it finishes or `timeout` seconds pass, with a progress line at each change and at least
    every `poll` seconds."""
    namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
    for current in kube.job_updates(namespace, name, timeout, heartbeat=poll):
        status = current.get("status") or {}
        outcome = finished(current)
        say(f"  {namespace}/{name}: active {status.get('active', 0)}, succeeded {status.get('succeeded', 0)}, "
            f"failed {status.get('failed', 0)}" + (f" -> {outcome}" if outcome else ""))
        if outcome:
            return outcome
    return "TimedOut"


# RA: Validation Methodology: "Platform validation requires lab execution."
def main(argv=None, say=print) -> int:
    parser = argparse.ArgumentParser(prog="ncp evidence run", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    add_arguments(parser)
    parser.add_argument("--outputs", required=True)
    parser.add_argument("--cache-state", required=True, choices=["cold", "warm"])
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per Job (default 3600)")
    parser.add_argument("--poll", type=float, default=10, help="seconds between progress lines (default 10)")
    parser.add_argument("--evidence-dir")
    parser.add_argument("--index")
    parser.add_argument("--run-id")
    args = parser.parse_args(argv)
    run_id = args.run_id or datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    try:
        site_plan = plan_from_stack_file(args.stack)
        kube = connect_from(args)
        jobs = templates(kube, args.stack, site_plan)
        for template in jobs:
            job = kube.create_job(template["metadata"]["namespace"], run_job(template, run_id))
            say(f"started {job['metadata']['namespace']}/{job['metadata']['name']}")
            outcome = wait(kube, job, args.timeout, args.poll, say)
            if outcome != "Complete":
                say(f"run {run_id}: {job['metadata']['name']} {outcome}; see its pod logs. No evidence written.")
                return 1
    except ChangedJob as error:
        print(f"refused: {error}", file=sys.stderr)
        return 1
    except (ConfigError, KubeError, NotRendered) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return write_evidence.main(["--cache-state", args.cache_state, *judge_arguments(args, run_id)])


def judge_arguments(args: argparse.Namespace, run_id: str) -> list[str]:
    """The arguments a run hands to the command that judges its outputs and writes the evidence."""
    forwarded = ["--stack", args.stack, "--outputs", str(args.outputs), "--run-id", run_id]
    for flag, value in (("--evidence-dir", args.evidence_dir), ("--index", args.index)):
        if value:
            forwarded += [flag, value]
    return forwarded
