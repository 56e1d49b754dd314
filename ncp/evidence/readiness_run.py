"""Run a deployed site's readiness Jobs, wait for them with progress, then write the readiness evidence.

    ncp evidence readiness-run --stack prod --outputs <dir> [--kubeconfig <file>] [--context <name>]
                                     [--timeout 3600] [--poll 10] [--evidence-dir <dir>] [--index <file>]
                                     [--run-id <id>]

The program deploys the readiness Jobs suspended (namespace ncp-readiness): the NCCL test across the rails and a fio
read per storage tier. A run never edits them; it
1. creates a Job from each suspended one (<job>-<run id>), the NCCL test first (it takes every GPU of its nodes),
   then each tier's fio, one at a time, and waits for each;
2. for the NCCL test, makes the run's ssh key (ed25519) and puts it in Secret nccl-tests-ssh, which its pods mount
   (mpirun starts the ranks over ssh; the run's copy requires the Secret, so its pods wait for it). The key lives
   for the run only: the Secret is owned by the run's Job, so the garbage collector deletes it with the Job even if
   the run is interrupted, and the run deletes it at the end, also on failure;
3. saves each Job's log to --outputs (nccl-all-reduce.log from the pod of index 0, fio-<tier>.json) and judges them
   as `ncp evidence readiness` does, writing the record and its index entry.
A Job that fails or times out is judged on what it printed: the record fails and names the failing layer.
Exit codes: 0 passed; 1 a check failed or is missing; 2 bad input (config, kubeconfig, Jobs the cluster lacks);
3 an internal error.
"""
import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ncp.acceptance.check import ExportError
from ncp.acceptance.readiness import NCCL_LOG, fio_output, parse_fio, parse_nccl
from ncp.evidence import readiness as readiness_evidence
from ncp.evidence.run import PART_OF, judge_arguments, run_job, wait
from ncp.cluster_api import Kube, KubeError, add_arguments, connect_from
from ncp.plan.errors import ConfigError, Problem
from ncp.plan.names import ACCEPTANCE_RUN_LABEL, NCCL_JOB, NCCL_SSH_SECRET, PROJECT, READINESS_LABEL, fio_job
from ncp.plan.readiness import readiness_plan
from ncp.plan.site_plan import SitePlan
from ncp.plan.sources import plan_from_stack_file

JOB_NAME_LABEL = "batch.kubernetes.io/job-name"  # set by the Job controller on its pods (Kubernetes >= 1.27)
INDEX_LABEL = "batch.kubernetes.io/job-completion-index"  # an Indexed Job's pod index (Kubernetes >= 1.28)


def expected_outputs(stack: str, site_plan: SitePlan) -> dict[str, str]:
    """Readiness Job name -> the output file the judge reads, in run order (the NCCL test first)."""
    readiness = readiness_plan(site_plan)
    if readiness is None:
        raise ConfigError(f"Pulumi.{stack}.yaml", [Problem(
            "hardwareProfile", f"{site_plan.profile.name} sets no readiness thresholds: nothing to make ready",
            "give the profile readiness.storageReadGBps (and ncclBusBandwidthGBps with an RDMA fabric)")])
    nccl = {NCCL_JOB: NCCL_LOG} if readiness.nccl_nodes is not None else {}
    return {**nccl, **{fio_job(tier): fio_output(tier) for tier in readiness.tier_names}}


def templates(kube: Kube, outputs: dict[str, str]) -> list[dict]:
    """The suspended readiness Jobs the stack deployed, in run order; every expected one must be there."""
    found = {job["metadata"]["name"]: job for job in kube.jobs(f"{PART_OF},{READINESS_LABEL}")
             if ACCEPTANCE_RUN_LABEL not in (job["metadata"].get("labels") or {})}
    missing = [name for name in outputs if name not in found]
    if missing:
        raise KubeError(f"the cluster lacks the stack's readiness Jobs {', '.join(missing)}\n  fix: `pulumi up` the "
                        "stack (the fio Jobs need components.serving.validation.storageImage, the NCCL test "
                        "readiness.ncclNodes GPU nodes)")
    return [found[name] for name in outputs]


def ssh_key_secret(namespace: str, run_id: str, job: dict) -> dict:
    """A fresh ed25519 key for the run, in the form the NCCL test's pods mount (kubernetes.io/ssh-auth), owned by the
    run's Job (deleted with it)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/ssh-auth",
            "metadata": {"name": NCCL_SSH_SECRET, "namespace": namespace,
                         "labels": {"app.kubernetes.io/part-of": PROJECT, ACCEPTANCE_RUN_LABEL: run_id},
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job["metadata"]["name"],
                                              "uid": job["metadata"]["uid"]}]},
            "stringData": {"ssh-privatekey": private, "ssh-publickey": f"{public} {PROJECT}-readiness-{run_id}\n"}}


def nccl_run_job(template: dict, run_id: str) -> dict:
    """The NCCL test's run copy, with the key's Secret volume required: its pods wait for the key the run makes
    after creating the Job (the Secret is owned by the Job), instead of starting without it."""
    job = run_job(template, run_id)
    pod = job["spec"]["template"]
    volumes = [{**volume, "secret": {**volume["secret"], "optional": False}}
               if (volume.get("secret") or {}).get("secretName") == NCCL_SSH_SECRET else volume
               for volume in pod["spec"]["volumes"]]
    job["spec"]["template"] = {**pod, "spec": {**pod["spec"], "volumes": volumes}}  # the template stays as it is
    return job


def save_log(kube: Kube, job: dict, target: Path, say: Callable[[str], None]) -> None:
    """The log of the Job's reporting pod (index 0 of an Indexed Job) to target; a pod or log that cannot be read is
    reported and left out, so the judge marks its checks MISSING."""
    namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
    selector = f"{JOB_NAME_LABEL}={name}"
    if job["spec"].get("completionMode") == "Indexed":
        selector += f",{INDEX_LABEL}=0"
    container = job["spec"]["template"]["spec"]["containers"][0]["name"]
    try:
        pods = sorted(kube.pods(namespace, selector), key=lambda pod: pod["metadata"]["creationTimestamp"])
        if not pods:
            say(f"  {namespace}/{name}: no pod to read the log of")
            return
        target.write_text(kube.pod_log(namespace, pods[-1]["metadata"]["name"], container))
        say(f"  {namespace}/{name}: log saved to {target}")
    except KubeError as error:
        say(f"  {namespace}/{name}: log not readable ({error})")


def set_aside_without_result(target: Path, say: Callable[[str], None]) -> None:
    """A Job that failed or timed out is judged on what it printed: a log with a result stays (e.g. NCCL's data check
    failed); one without (the test never got that far) is renamed, so its checks are MISSING and the record fails
    on them instead of the run stopping at an unreadable output."""
    if not target.is_file():
        return
    parse = parse_nccl if target.name == NCCL_LOG else parse_fio
    try:
        parse(target.read_text(), str(target))
    except ExportError:
        kept = target.with_name(target.name + ".no-result")
        target.rename(kept)
        say(f"  its log has no result (kept as {kept}): the checks it feeds are MISSING")


def run(kube: Kube, stack: str, site_plan: SitePlan, outputs: Path, run_id: str, timeout: float, poll: float,
        say: Callable[[str], None]) -> None:
    """Runs every readiness Job once, saving its log to outputs; the ssh key Secret lives only while the NCCL test
    runs."""
    names = expected_outputs(stack, site_plan)
    outputs.mkdir(parents=True, exist_ok=True)
    for template in templates(kube, names):
        namespace = template["metadata"]["namespace"]
        secret = template["metadata"]["name"] == NCCL_JOB
        job = kube.create_job(namespace, nccl_run_job(template, run_id) if secret else run_job(template, run_id))
        say(f"started {namespace}/{job['metadata']['name']}")
        try:
            if secret:
                kube.replace_secret(namespace, ssh_key_secret(namespace, run_id, job))
                say(f"made the run's ssh key: Secret {namespace}/{NCCL_SSH_SECRET} (owned by the run's Job)")
            outcome = wait(kube, job, timeout, poll, say)
            target = outputs / names[template["metadata"]["name"]]
            save_log(kube, job, target, say)
            if outcome != "Complete":
                say(f"  {namespace}/{job['metadata']['name']}: {outcome}; judged on what it printed")
                set_aside_without_result(target, say)
        finally:
            if secret:
                kube.delete_secret(namespace, NCCL_SSH_SECRET)
                say(f"deleted Secret {namespace}/{NCCL_SSH_SECRET}")


# RA: Network And Storage Readiness View: "need independent evidence before a disaggregated inference profile"
def main(argv=None, say=print) -> int:
    parser = argparse.ArgumentParser(prog="ncp evidence readiness-run", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    add_arguments(parser)
    parser.add_argument("--outputs", required=True, type=Path, help="where the Jobs' logs are saved")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per Job (default 3600)")
    parser.add_argument("--poll", type=float, default=10, help="seconds between progress lines (default 10)")
    parser.add_argument("--evidence-dir", help="local directory or s3://bucket/prefix")
    parser.add_argument("--index", help="evidence index file or s3:// object (default as ncp evidence)")
    parser.add_argument("--run-id")
    args = parser.parse_args(argv)
    run_id = args.run_id or datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    try:
        site_plan = plan_from_stack_file(args.stack)
        run(connect_from(args), args.stack, site_plan, args.outputs, run_id, args.timeout, args.poll, say)
    except (ConfigError, KubeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return readiness_evidence.main(judge_arguments(args, run_id))
