"""`ncp evidence readiness-run`: the per-run ssh key the NCCL test's mpirun needs (a usable OpenSSH key, in the
Secret the pods mount, deleted after the run), the readiness Jobs run from their suspended templates in order, their
logs judged into a readiness record; and the NCCL script itself, run by bash with stand-ins for sshd/ssh/mpirun, finds
its peers under a run's Job name."""
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from ncp.acceptance.readiness import NCCL_LOG
from components.readiness import NcclArgs, nccl_script, SSH_MOUNT
from ncp.evidence import readiness_run
from ncp.evidence.readiness import FABRIC_LAYER, STORAGE_LAYER
from ncp.evidence.record import read_index
from ncp.cluster_api import KubeError
from ncp.plan.names import ACCEPTANCE_RUN_LABEL, NCCL_JOB, NCCL_SSH_SECRET
from tests.test_readiness import FIXTURES, PROD_TIERS, _jobs

NAMESPACE = "ncp-readiness"


class FakeKube:
    """The API calls a readiness run makes, answered from the prod stack's recorded Job templates. Every call is
    logged in order; `outcomes` sets how a run Job ends (by template name), `logs` what its pod printed."""

    def __init__(self, templates: dict, outcomes: dict = None, logs: dict = None):
        self.templates = {name: {**job, "metadata": {**job["metadata"], "namespace": NAMESPACE}}
                          for name, job in templates.items()}
        self.outcomes, self.logs = outcomes or {}, logs or {}
        self.calls: list[tuple] = []
        self.secrets: dict = {}
        self.created: dict = {}

    def jobs(self, selector):
        self.calls.append(("jobs", selector))
        return list(self.templates.values()) + list(self.created.values())  # run Jobs are left out by their label

    def replace_secret(self, namespace, secret):
        owners = secret["metadata"]["ownerReferences"]
        owner = self.created[owners[0]["name"]]["metadata"]["uid"]
        assert [(o["kind"], o["uid"]) for o in owners] == [("Job", owner)], "owned by the run's Job (deleted with it)"
        self.calls.append(("secret", secret["metadata"]["name"]))
        self.secrets[secret["metadata"]["name"]] = secret
        return secret

    def delete_secret(self, namespace, name):
        self.calls.append(("delete", name))
        self.secrets.pop(name, None)

    def create_job(self, namespace, job):
        keyed = [v for v in job["spec"]["template"]["spec"]["volumes"] if "secret" in v
                 and v["secret"]["secretName"] == NCCL_SSH_SECRET]
        assert all(v["secret"]["optional"] is False for v in keyed), "the run's pods wait for the key"
        assert keyed or not job["metadata"]["name"].startswith(NCCL_JOB)
        self.calls.append(("create", job["metadata"]["name"]))
        job = {**job, "metadata": {**job["metadata"], "uid": f"uid-{job['metadata']['name']}"}}
        self.created[job["metadata"]["name"]] = job
        return job

    def job(self, namespace, name):
        outcome = self.outcomes.get(self.created[name]["metadata"]["annotations"]["ncp-inference.io/run-of"],
                                    "Complete")
        conditions = [] if outcome == "Running" else [{"type": outcome, "status": "True"}]
        return {**self.created[name], "status": {"conditions": conditions}}

    def job_updates(self, namespace, name, timeout, heartbeat):
        yield self.job(namespace, name)

    def pods(self, namespace, selector):
        self.calls.append(("pods", selector))
        return [{"metadata": {"name": selector.split("=")[1].split(",")[0] + "-0-x", "creationTimestamp": "t"}}]

    def pod_log(self, namespace, name, container):
        template = next(t for t in self.templates if name.startswith(t + "-"))
        if template not in self.logs:
            raise KubeError(f"GET pods/{name}/log: HTTP 404", 404)
        return self.logs[template]



@pytest.fixture(autouse=True)
def _site_key(evidence_keys):
    """Readiness evidence is signed: every run here has a site key (outside the repository)."""
    return evidence_keys

def _passing_logs() -> dict:
    fio = (FIXTURES / "fio-read.json").read_text()
    return {NCCL_JOB: (FIXTURES / NCCL_LOG).read_text(), **{f"fio-{tier.lower()}": fio for tier in PROD_TIERS}}


def _run(kube, tmp_path, monkeypatch, run_id="r1") -> tuple[int, list[str]]:
    monkeypatch.setattr(readiness_run, "connect_from", lambda _: kube)
    lines: list[str] = []
    code = readiness_run.main(["--stack", "prod", "--kubeconfig", "unused", "--outputs", str(tmp_path / "out"),
                               "--evidence-dir", str(tmp_path / "evidence"), "--index", str(tmp_path / "index.yaml"),
                               "--poll", "0", "--timeout", "0", "--run-id", run_id], say=lines.append)
    return code, lines


def test_run_makes_the_key_runs_each_job_and_writes_passed_evidence(prod, tmp_path, monkeypatch):
    kube = FakeKube(_jobs(prod), logs=_passing_logs())
    code, lines = _run(kube, tmp_path, monkeypatch)
    assert code == 0, lines
    steps = [call for call in kube.calls if call[0] in ("secret", "create", "delete")]
    assert steps[:3] == [("create", f"{NCCL_JOB}-r1"), ("secret", NCCL_SSH_SECRET), ("delete", NCCL_SSH_SECRET)], \
        "the key exists only while the NCCL test runs, owned by its Job"
    assert [name for kind, name in steps[3:]] == [f"fio-{tier.lower()}-r1" for tier in PROD_TIERS]
    assert not kube.secrets, "no key is left behind"
    assert ("pods", f"batch.kubernetes.io/job-name={NCCL_JOB}-r1,batch.kubernetes.io/job-completion-index=0") \
        in kube.calls, "the NCCL result is read from the pod of index 0, which runs mpirun"
    assert all(job["spec"]["suspend"] is False and job["metadata"]["labels"][ACCEPTANCE_RUN_LABEL] == "r1"
               for job in kube.created.values())
    entry = read_index(tmp_path / "index.yaml")[0]
    assert entry["kind"] == "readiness" and entry["passed"] and entry["runId"] == "r1"
    assert (tmp_path / "out" / NCCL_LOG).read_text() == (FIXTURES / NCCL_LOG).read_text()


def test_a_failed_nccl_test_is_judged_and_its_key_still_deleted(prod, tmp_path, monkeypatch):
    logs = {**_passing_logs(), NCCL_JOB: "Secret nccl-tests-ssh is missing\n"}
    kube = FakeKube(_jobs(prod), outcomes={NCCL_JOB: "Failed", "fio-kvoffload": "Running"}, logs=logs)
    del kube.logs["fio-kvoffload"]
    code, lines = _run(kube, tmp_path, monkeypatch)
    assert code == 1, lines
    assert not kube.secrets and ("delete", NCCL_SSH_SECRET) in kube.calls
    assert f"  {NAMESPACE}/{NCCL_JOB}-r1: Failed; judged on what it printed" in lines
    assert f"  {NAMESPACE}/fio-kvoffload-r1: TimedOut; judged on what it printed" in lines
    assert any("log has no result" in line for line in lines)
    assert (tmp_path / "out" / f"{NCCL_LOG}.no-result").read_text() == logs[NCCL_JOB], "kept for the operator"
    entry = read_index(tmp_path / "index.yaml")[0]
    record = json.loads(Path(entry["record"]).read_text())
    assert not record["passed"] and record["failingLayers"] == [FABRIC_LAYER, STORAGE_LAYER], \
        "the failed NCCL test and the timed-out fio Job each name their layer"
    kube = FakeKube(_jobs(prod), logs={k: v for k, v in _passing_logs().items() if k != "fio-kvoffload"})
    code, lines = _run(kube, tmp_path / "missing", monkeypatch)
    assert code == 1 and any("log not readable" in line for line in lines)
    record = read_index(tmp_path / "missing" / "index.yaml")[0]
    assert not record["passed"], "a tier whose log could not be read is MISSING, and the record fails"


def test_a_stack_without_its_jobs_or_without_rdma_is_bad_input(prod, tmp_path, monkeypatch, capsys):
    templates = {k: v for k, v in _jobs(prod).items() if k != NCCL_JOB}
    code, _ = _run(FakeKube(templates), tmp_path, monkeypatch)
    assert code == 2 and f"lacks the stack's readiness Jobs {NCCL_JOB}" in capsys.readouterr().err
    monkeypatch.setattr(readiness_run, "connect_from", lambda _: FakeKube({}))
    code = readiness_run.main(["--stack", "lab", "--kubeconfig", "unused", "--outputs", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "Pulumi.lab.yaml" in err and "sets no readiness thresholds" in err


def test_the_run_key_is_a_usable_openssh_key_pair():
    job = {"metadata": {"name": f"{NCCL_JOB}-r1", "uid": "u1"}}
    secret = readiness_run.ssh_key_secret(NAMESPACE, "r1", job)
    assert secret["type"] == "kubernetes.io/ssh-auth" and secret["metadata"]["name"] == NCCL_SSH_SECRET
    private, public = secret["stringData"]["ssh-privatekey"], secret["stringData"]["ssh-publickey"]
    key = serialization.load_ssh_private_key(private.encode(), password=None)
    derived = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    assert public.split()[:2] == derived.decode().split()
    assert readiness_run.ssh_key_secret(NAMESPACE, "r2", job)["stringData"]["ssh-privatekey"] != private, "one per run"
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen is absent: OpenSSH's own reading of the key is not checked here")


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen (OpenSSH) is absent")
def test_openssh_reads_the_run_key(tmp_path):
    job = {"metadata": {"name": f"{NCCL_JOB}-r1", "uid": "u1"}}
    secret = readiness_run.ssh_key_secret(NAMESPACE, "r1", job)
    key = tmp_path / "id_ed25519"
    key.write_text(secret["stringData"]["ssh-privatekey"])
    key.chmod(0o600)
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(key)], capture_output=True, text=True, check=True).stdout
    assert derived.split()[:2] == secret["stringData"]["ssh-publickey"].split()[:2]


# --- the NCCL script, run by bash ------------------------------------------------------------------------------------

NCCL = NcclArgs(image="unused", binary="all_reduce_perf_mpi", ssh_port=2222, nodes=3, gpus_per_node=8,
                gpu_resource="nvidia.com/gpu", rdma_resource="rdma/x", networks=[], capabilities=["IPC_LOCK"])


def _sandboxed(tmp_path: Path, with_key: bool = True) -> tuple[str, dict, Path]:
    """The script with its absolute paths moved under tmp_path, and stand-ins for what the image provides (sshd,
    ssh, mpirun, ssh-keygen) that log their arguments."""
    root, calls = tmp_path / "root", tmp_path / "calls.log"
    script = nccl_script(NCCL, NCCL_JOB)
    for path in (SSH_MOUNT, "/run/sshd", "/root/.ssh", "/usr/sbin/sshd", "/tmp/done"):
        script = script.replace(path, f"{root}{path}")
    (root / SSH_MOUNT.lstrip("/")).mkdir(parents=True)
    if with_key:
        for name in ("ssh-privatekey", "ssh-publickey"):
            (root / SSH_MOUNT.lstrip("/") / name).write_text("key\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool, where in (("ssh", bin_dir), ("mpirun", bin_dir), ("ssh-keygen", bin_dir),
                        ("sshd", root / "usr" / "sbin")):
        where.mkdir(parents=True, exist_ok=True)
        (where / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >>{calls}\n')
        (where / tool).chmod(stat.S_IRWXU)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "HOSTNAME": f"{NCCL_JOB}-20261127-0",
           "JOB_COMPLETION_INDEX": "0"}
    return script, env, calls


def test_nccl_script_reaches_the_peers_of_a_run_copy(tmp_path):
    script, env, calls = _sandboxed(tmp_path)
    proc = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    log = calls.read_text().splitlines()
    hosts = [f"{NCCL_JOB}-20261127-{index}.{NCCL_JOB}" for index in range(3)]
    assert log[0] == "ssh-keygen -A" and log[1] == "sshd -p 2222"
    mpirun = next(line for line in log if line.startswith("mpirun"))
    assert f"-np 24 -H {','.join(f'{host}:8' for host in hosts)} " in mpirun, mpirun
    assert "all_reduce_perf_mpi -b 8 -e 8G" in mpirun
    touched = [line.split()[-3] for line in log if line.endswith("touch " + str(tmp_path / "root/tmp/done"))]
    assert touched == hosts[1:], "index 0 tells every peer but itself to stop"


def test_nccl_script_without_the_run_key_says_how_to_run_it(tmp_path):
    script, env, _ = _sandboxed(tmp_path, with_key=False)
    proc = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "ncp evidence readiness-run" in proc.stderr
