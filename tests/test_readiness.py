"""Readiness gates on RDMA profiles (#16 item 6): the NCCL and fio outputs parsed and judged by the profile's
thresholds into an evidence record, the Jobs the program defines, and the prod promotion gate that refuses an
endpoint on the rails without passed readiness evidence."""
import json
import shutil
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from ncp.acceptance.check import ExportError
from ncp.acceptance.readiness import NCCL_LOG, fio_output, parse_fio, parse_nccl
from ncp.evidence import readiness as readiness_cli
from ncp.evidence.readiness import FABRIC_LAYER as FABRIC_OWNER
from ncp.evidence.record import read_index
from ncp.offline.policy_check import PACK_DIR, read_pack_config
from ncp.plan.break_fix import GATE_JOB, HANDOVER_JOB, break_fix
from ncp.plan.catalog import ROOT
from ncp.plan.profile import HardwareProfile
from ncp.plan.site_plan import build_plan
from ncp.plan.sources import read_stack_file
from tests.evidence_keys import gate_config
from tests.policy_helpers import violations

FIXTURES = ROOT / "tests" / "fixtures" / "readiness"
PROMOTION = read_pack_config(PACK_DIR / "config" / "prod-promotion.json")
PROD_TIERS = ["modelArtifacts", "modelCache", "benchmarkOutput", "kvOffload"]  # Pulumi.prod.yaml's, in tier order


def test_nccl_footer_is_parsed():
    result = parse_nccl((FIXTURES / NCCL_LOG).read_text())
    assert (result.avg_bus_bandwidth_gbps, result.out_of_bounds) == (336.583, 0)
    tagged = "\n".join(f"[1,0]<stdout>:{line}" for line in (FIXTURES / NCCL_LOG).read_text().splitlines())
    assert parse_nccl(tagged).avg_bus_bandwidth_gbps == 336.583, "mpirun --tag-output prefixes are ignored"
    with pytest.raises(ExportError, match="no nccl-tests result footer"):
        parse_nccl((FIXTURES / NCCL_LOG).read_text().split("# Out of bounds")[0])


def test_fio_json_is_parsed():
    assert parse_fio((FIXTURES / "fio-read.json").read_text()) == pytest.approx(12.297829382)
    broken = json.loads((FIXTURES / "fio-read.json").read_text())
    broken["jobs"][0]["error"] = 5
    with pytest.raises(ExportError, match="ended with an error"):
        parse_fio(json.dumps(broken))
    with pytest.raises(ExportError, match="not fio JSON"):
        parse_fio("fio: unrecognized option")


def _prod(**readiness):
    raw, secrets = read_stack_file("prod")
    site_plan = build_plan(raw, secrets, "Pulumi.prod.yaml")
    if readiness:
        profile = site_plan.profile.model_copy(update={"readiness": site_plan.profile.readiness.model_copy(
            update=readiness)})
        site_plan = site_plan.__class__(**{**site_plan.__dict__, "profile": profile})
    return site_plan


def _outputs(root: Path, nccl: str = None, skip: tuple = ()) -> Path:
    root.mkdir(parents=True)
    (root / NCCL_LOG).write_text(nccl or (FIXTURES / NCCL_LOG).read_text())
    for tier in PROD_TIERS:
        if tier not in skip:
            shutil.copy(FIXTURES / "fio-read.json", root / fio_output(tier))
    return root


def test_record_passes_at_the_profiles_thresholds(tmp_path):
    site_plan = _prod()
    record = readiness_cli.build_record("prod", site_plan, _outputs(tmp_path / "out"), run_id="r1")
    assert record.passed and not record.failing_layers
    assert [r.metric for r in record.checks] == ["ncclAllReduceBusBandwidth", "ncclOutOfBoundsValues",
                                                  *[f"ncclRailBusBandwidth.{r.interface}" for r in site_plan.rails],
                                                  *[f"storageRead.{t}" for t in PROD_TIERS]]
    rails = [r for r in record.checks if r.metric.startswith("ncclRail")]
    assert rails[0].measured == 46.18 and rails[0].threshold == ">= 40", "each rail: the all-rails bar per NIC"
    assert record.thresholds["ncclBusBandwidthGBps"] == 320 and record.nccl_nodes == 2
    assert record.rails == [rail.interface for rail in site_plan.rails] and record.rails
    assert record.images["ncclTests"] == "nvcr.io/nvidia/pytorch:25.06-py3"


@pytest.mark.parametrize("readiness, layer, metric", [
    ({"nccl_bus_bandwidth_gbps": 340}, "Networking", "ncclAllReduceBusBandwidth"),
    ({"storage_read_gbps": {"modelArtifacts": 5, "modelCache": 13, "kvOffload": 10, "benchmarkOutput": 1}},
     "Model Data", "storageRead.modelCache"),
])
def test_each_threshold_fails_below_it(tmp_path, readiness, layer, metric):
    record = readiness_cli.build_record("prod", _prod(**readiness), _outputs(tmp_path / "out"))
    assert not record.passed and any(layer in failing for failing in record.failing_layers)
    assert [r.metric for r in record.checks if r.status == "FAIL"] == [metric]


def test_data_errors_and_missing_outputs_fail(tmp_path):
    corrupt = (FIXTURES / NCCL_LOG).read_text().replace("Out of bounds values : 0 OK",
                                                         "Out of bounds values : 3 FAILED")
    record = readiness_cli.build_record("prod", _prod(), _outputs(tmp_path / "a", nccl=corrupt))
    assert [r.metric for r in record.checks if r.status == "FAIL"] == ["ncclOutOfBoundsValues"]
    record = readiness_cli.build_record("prod", _prod(), _outputs(tmp_path / "b", skip=("kvOffload",)))
    assert not record.passed and [r.metric for r in record.checks if r.status == "MISSING"] == ["storageRead.kvOffload"]


def test_profile_thresholds_are_checked():
    raw = yaml.safe_load((ROOT / "profiles" / "hgx-h200.yaml").read_text())
    HardwareProfile.model_validate(raw)
    with pytest.raises(ValidationError, match="needs readiness thresholds"):
        HardwareProfile.model_validate({k: v for k, v in raw.items() if k != "readiness"})
    with pytest.raises(ValidationError, match="exceeds the east-west peak 400 GB/s"):
        HardwareProfile.model_validate({**raw, "readiness": {**raw["readiness"], "ncclBusBandwidthGBps": 450}})
    with pytest.raises(ValidationError, match="unknown tiers"):
        HardwareProfile.model_validate({**raw, "readiness": {**raw["readiness"], "storageReadGBps": {"scratch": 1}}})


def _jobs(recording) -> dict:
    """The readiness Jobs (the break-fix gate and handover templates beside them: tests/test_break_fix.py)."""
    return {r.inputs["metadata"]["name"]: r.inputs for r in recording.resources
            if r.type == "kubernetes:batch/v1:Job" and r.inputs["metadata"].get("namespace") == "ncp-readiness"
            and r.inputs["metadata"]["name"] not in (GATE_JOB, HANDOVER_JOB)}


def _tolerates(toleration: dict, taint: dict) -> bool:
    """Kubernetes' toleration matching (k8s.io/api core/v1 Toleration.ToleratesTaint): an empty key with Exists
    tolerates every taint; an empty effect every effect."""
    if toleration.get("effect") and toleration["effect"] != taint["effect"]:
        return False
    if not toleration.get("key"):
        return toleration.get("operator") == "Exists"
    return toleration["key"] == taint["key"] and (
        toleration.get("operator") == "Exists" or toleration.get("value", "") == taint.get("value", ""))


def test_readiness_jobs_stay_off_quarantined_held_and_cordoned_nodes(prod):
    """#22 item 12: no readiness pod tolerates the break-fix loop's quarantine taint, the return-to-service hold or
    a cordon, so a run never lands on a node out of service (the scheduler skips them); and the NCCL test runs from
    the site's image by digest in prod."""
    quarantine = break_fix().quarantine
    out_of_service = [quarantine.taint.as_dict(), quarantine.hold_taint.as_dict(),
                      {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]
    jobs = _jobs(prod)
    assert "nccl-tests" in jobs
    for name, job in jobs.items():
        tolerations = job["spec"]["template"]["spec"].get("tolerations") or []
        caught = [(t, taint) for t in tolerations for taint in out_of_service if _tolerates(t, taint)]
        assert tolerations and not caught, (name, caught)
    assert "@sha256:" in jobs["nccl-tests"]["spec"]["template"]["spec"]["containers"][0]["image"]
    for caught in ({"operator": "Exists"}, {"key": quarantine.taint.key, "operator": "Exists"}):
        assert any(_tolerates(caught, taint) for taint in out_of_service), "the check can fail"


def test_readiness_jobs_on_rdma_profiles_only(prod, lab):
    jobs = _jobs(prod)
    assert sorted(jobs) == sorted(["nccl-tests", *(f"fio-{tier.lower()}" for tier in PROD_TIERS)])
    nccl = jobs["nccl-tests"]["spec"]
    assert (nccl["completionMode"], nccl["completions"], nccl["parallelism"], nccl["suspend"]) == (
        "Indexed", 2, 2, True)
    pod = nccl["template"]
    limits = pod["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "8" and limits["rdma/rdma_shared_device_a"] == "1"
    # The rails by name: the readiness namespace has its own copy of each attachment (#22 item 4).
    networks = pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"].split(",")
    attachments = {(r.inputs["metadata"]["namespace"], r.inputs["metadata"]["name"]) for r in prod.resources
                   if r.type == "kubernetes:k8s.cni.cncf.io/v1:NetworkAttachmentDefinition"}
    assert networks[0] == "rail-0" and {("ncp-readiness", n) for n in networks} <= attachments
    assert pod["spec"]["schedulerName"] == "kai-scheduler" and pod["metadata"]["labels"]["kai.scheduler/queue"]
    assert "all_reduce_perf_mpi" in pod["spec"]["containers"][0]["command"][-1]
    assert _jobs(lab) == {}, "no readiness thresholds in the profile, no readiness Jobs"


@pytest.fixture(scope="module")
def lab():
    from ncp.readmodel.recorder import run_stack_file
    return run_stack_file("lab")


# --- the promotion gate -----------------------------------------------------------------------------------------------

def _gate(recording, tmp_path, keys, record=None) -> str:
    index = tmp_path / "index.yaml"
    if record is not None:
        code = readiness_cli.main(["--stack", "prod", "--outputs", str(record), "--evidence-dir",
                                   str(tmp_path / "evidence"), "--index", str(index)])
        assert code in (0, 1)
    config = gate_config(PROMOTION, index, keys, "readiness-evidence")
    return "\n".join(v.message for v in violations(recording, config, "readiness-evidence"))


def test_gate_refuses_without_readiness_evidence_and_passes_with_it(prod, tmp_path, evidence_keys):
    refused = _gate(prod, tmp_path / "none", evidence_keys)
    assert "reasoning-large: its workers use the RDMA rails" in refused and "chat-dense" not in refused
    assert _gate(prod, tmp_path / "ok", evidence_keys, _outputs(tmp_path / "ok-out")) == ""
    entry = read_index(tmp_path / "ok" / "index.yaml")[0]
    assert entry["kind"] == "readiness" and entry["passed"] and Path(entry["record"]).with_suffix(".md").is_file()


def test_gate_refuses_a_failed_latest_record(prod, tmp_path, monkeypatch, evidence_keys):
    corrupt = (FIXTURES / NCCL_LOG).read_text().replace("336.583", "120.5")
    text = _gate(prod, tmp_path, evidence_keys, _outputs(tmp_path / "out", nccl=corrupt))
    assert "reasoning-large: the latest readiness record" in text and "failed" in text


def test_gate_is_off_in_plain_prod(prod):
    assert not violations(prod, read_pack_config(PACK_DIR / "config" / "prod.json"), "readiness-evidence")


def test_nccl_job_is_a_gang_with_a_deadline_and_the_images_paths(prod):
    """#24 item 5. KAI gives a plain Job a PodGroup of minMember 1 unless `kai.scheduler/batch-min-member` says
    otherwise (KAI-Scheduler docs/batch/README.md, #1308): ranks could start alone and wait forever. Remote ranks
    start from sshd's environment, so mpirun passes PATH/LD_LIBRARY_PATH (-x); a deadline ends a hung run; an image
    without sshd fails at once with the fix instead of hanging."""
    nccl = _jobs(prod)["nccl-tests"]
    nodes = str(int(nccl["spec"]["completions"]))
    assert nccl["metadata"]["annotations"]["kai.scheduler/batch-min-member"] == nodes
    assert nccl["spec"]["template"]["metadata"]["annotations"]["kai.scheduler/batch-min-member"] == nodes
    assert 0 < nccl["spec"]["activeDeadlineSeconds"] <= 3600
    script = nccl["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    assert "-x PATH -x LD_LIBRARY_PATH" in script
    assert script.index("[ -x /usr/sbin/sshd ]") < script.index("/usr/sbin/sshd -p")


def test_prod_refuses_storage_readiness_without_the_fio_image():
    """Without validation.storageImage the fio Jobs were dropped silently and readiness judged on NCCL alone."""
    from tests.support.synthetic import mutate, record_storage, site_config
    from ncp.plan.errors import ConfigError
    from ncp.plan.site_plan import build_plan

    config = record_storage(mutate(site_config("hgx-h200", "prod"), "components.serving.storage",
                    {"modelArtifacts": {"storageClass": "models", "size": "1Ti", "accessMode": "ReadWriteMany"},
                     "modelCache": {"storageClass": "cache", "size": "1Ti"},
                     "benchmarkOutput": {"storageClass": "bench", "size": "1Ti", "accessMode": "ReadWriteMany"}}))
    assert build_plan(config, {"ngcApiKey"}, "Pulumi.x.yaml").config.components.serving.validation.storage_image
    del config["components"]["serving"]["validation"]["storageImage"]
    with pytest.raises(ConfigError) as error:
        build_plan(config, {"ngcApiKey"}, "Pulumi.x.yaml")
    assert "ncp-inference:components.serving.validation.storageImage: is required in prod on hgx-h200" in str(
        error.value)
    assert "pulumi config set --path 'ncp-inference:components.serving.validation.storageImage'" in str(error.value)
    lab = mutate(config, "site.environment", "lab")
    assert build_plan(lab, {"ngcApiKey"}, "Pulumi.x.yaml")  # outside prod the gap stays a choice


# --- #28: each rail on its own, storage readiness without a fabric ----------------------------------------------------

def test_a_weak_or_silent_rail_fails_on_its_own(tmp_path):
    site_plan = _prod()
    log = (FIXTURES / NCCL_LOG).read_text()
    weak = log.replace("# Avg bus bandwidth    : 46.31", "# Avg bus bandwidth    : 12.4")
    record = readiness_cli.build_record("prod", site_plan, _outputs(tmp_path / "weak", nccl=weak))
    assert [(r.metric, r.status) for r in record.checks if r.status != "PASS"] == [
        ("ncclRailBusBandwidth.ens3f0np0", "FAIL")], "the all-rails figure alone would hide a weak rail"
    assert record.failing_layers == [FABRIC_OWNER]
    silent = log.split("# ncp-rail ens8f0np0")[0]
    record = readiness_cli.build_record("prod", site_plan, _outputs(tmp_path / "silent", nccl=silent))
    assert [(r.metric, r.status) for r in record.checks if r.status != "PASS"] == [
        ("ncclRailBusBandwidth.ens8f0np0", "MISSING")]


def test_the_nccl_job_runs_each_rail_alone(prod):
    command = _jobs(prod)["nccl-tests"]["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    rails = [rail.interface for rail in _prod().rails]
    loop = next(line for line in command.splitlines() if line.startswith("for rail in"))
    assert loop.split(";")[0] == "for rail in " + " ".join(f"{r}:net{i}" for i, r in enumerate(rails, start=1))
    assert 'echo "# ncp-rail ${rail%%:*}"' in loop and 'NCCL_IB_HCA="=$hca"' in loop


def _storage_only_plan():
    """A site without an RDMA fabric whose profile sets storage thresholds (a copy of lab's profile with them)."""
    raw, secrets = read_stack_file("lab")
    raw["components"].setdefault("serving", {}).setdefault("validation", {})["storageImage"] = \
        "docker.io/library/fio:3.38"
    site_plan = build_plan(raw, secrets, "Pulumi.lab.yaml")
    tiers = {tier: 1.0 for tier in ("modelArtifacts", "modelCache")}
    readiness = {"storageReadGBps": tiers, "source": "site design targets (test)"}
    profile = HardwareProfile.model_validate({**_profile_file(site_plan), "readiness": readiness})
    return site_plan.__class__(**{**site_plan.__dict__, "profile": profile})


def _profile_file(site_plan) -> dict:
    return yaml.safe_load((ROOT / "profiles" / f"{site_plan.profile.name}.yaml").read_text())


def test_storage_readiness_on_a_site_without_a_fabric(tmp_path):
    site_plan = _storage_only_plan()
    assert not site_plan.network_enabled
    outputs = tmp_path / "out"
    outputs.mkdir()
    shutil.copy(FIXTURES / "fio-read.json", outputs / fio_output("modelArtifacts"))
    record = readiness_cli.build_record("lab", site_plan, outputs)
    assert [(r.metric, r.status) for r in record.checks] == [("storageRead.modelArtifacts", "PASS"),
                                                            ("storageRead.modelCache", "MISSING")]
    assert record.fabric.startswith("no RDMA") and record.rails == [] and "ncclTests" not in record.images
    assert record.failing_layers == ["Model Data And Memory Layer (storage tiers)"]
    with pytest.raises(ValidationError, match="no RDMA east-west fabric to test"):
        HardwareProfile.model_validate({**_profile_file(site_plan), "readiness": {
            "ncclBusBandwidthGBps": 10, "storageReadGBps": {}, "source": "x"}})


def test_the_program_deploys_storage_readiness_without_a_fabric(monkeypatch):
    """A profile without a fabric but with storage thresholds: fio Jobs per tier, no NCCL test, in a readiness
    namespace at Pod Security privileged (the node handover's sanitize step, not RDMA)."""
    import ncp.plan.site_plan
    from ncp.readmodel.recorder import run_stack_config
    storage_only = _storage_only_plan()
    real = ncp.plan.site_plan.load_profile
    monkeypatch.setattr(ncp.plan.site_plan, "load_profile", lambda name: storage_only.profile
                        if name == storage_only.profile.name else real(name))
    raw, secrets = read_stack_file("lab")
    raw["components"].setdefault("serving", {}).setdefault("validation", {})["storageImage"] = \
        "docker.io/library/fio:3.38"
    recording = run_stack_config(raw, secrets, "lab")
    assert sorted(_jobs(recording)) == ["fio-modelartifacts", "fio-modelcache"]
    namespace = next(r.inputs for r in recording.resources if r.type == "kubernetes:core/v1:Namespace"
                     and r.inputs["metadata"]["name"] == "ncp-readiness")
    # Privileged even without RDMA: the node handover's sanitize step erases the node's NVMe devices.
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
