"""The break-fix loop's plan: the return-to-service gate and the node handover as suspended Job templates in the
readiness namespace (plain manifests: the Readiness component deploys them, the node commands copy them per run),
the baseline a node is judged against, and the facts of data/break-fix.yaml (quarantine taint, the NVSentinel rule
sets, the janitor's reboot request, the owning layer of each check and alert, the runbook of each fault class).

A gate run's containers run one after another (init containers; the last is an ordinary container) and each prints
one result line `NCP-GATE <check> PASS|FAIL key=value ...`; a container never fails the pod, so every check is judged
and a missing line is a MISSING check of that check's layer."""
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

from pydantic import Field

from ncp.plan.catalog import ROOT, CompatibilityMatrix, _load, integration_points
from ncp.plan.gpu_partition import MIG_LAYOUT, gpu_product_label
from ncp.plan.layers import READINESS_NAMESPACE
from ncp.plan.names import PART_OF_LABEL, PROJECT, READINESS_LABEL, TENANT_KEY
from ncp.plan.strict import StrictModel

BREAK_FIX_FILE = ROOT / "data" / "break-fix.yaml"
GATE_JOB, HANDOVER_JOB = "return-to-service", "node-handover"
CHECKS_ANNOTATION = f"{PROJECT}.io/checks"  # the gate Job's checks, in order: what the gate judges
RESULT_PREFIX = "NCP-GATE"
HOST_MOUNT = "/host"
# RA: Break-Fix Architecture: "Classify the failure as service-level, pod-level, node-level, GPU-level"
LAYERS = ("service", "pod", "node", "gpu", "network", "storage")


class Taint(StrictModel):
    key: str
    value: str
    effect: str

    def as_dict(self) -> dict:
        return {"key": self.key, "value": self.value, "effect": self.effect}


class RuleSet(StrictModel):
    name: str
    agent: str = Field(description="the CEL match on the health event, as the chart's default rule set writes it")


class Quarantine(StrictModel):
    source: str
    taint: Taint
    hold_taint: Taint
    rule_sets: list[RuleSet]
    unmanaged_labels: list[str]


class Reboot(StrictModel):
    source: str
    api_version: str
    kind: str
    plural: str


class Dcgm(StrictModel):
    source: str
    image: str
    diag_level: int


class SuiteNodeChecks(StrictModel):
    """The validation suite's node checks: its command and the patterns it judges the output by."""

    source: str
    checks: list[str]
    command: str
    banner: str
    driver_pattern: str
    gpu_pattern: str
    suite_image: str
    local_decision: str


class FaultClass(StrictModel):
    runbook: str
    alerts: list[str]


class BreakFix(StrictModel):
    quarantine: Quarantine
    reboot: Reboot
    dcgm: Dcgm
    validation_suite: SuiteNodeChecks
    gate_checks: dict[str, str]
    handover_steps: dict[str, str]
    alert_layers: dict[str, str]
    fault_classes: dict[str, FaultClass]

    def runbook_of(self, alert: str) -> Optional[str]:
        return next((fault.runbook for fault in self.fault_classes.values() if alert in fault.alerts), None)


# NVSentinel's own processes the program runs, by the chart's `global.<key>.enabled` toggle: the values set them from
# here, and the health rules watch each one that runs. The platform connector has no toggle: it always runs.
NVSENTINEL_ALWAYS_ON = "platformConnector"


def nvsentinel_modules(nic_monitor: bool) -> dict[str, bool]:
    return {"gpuHealthMonitor": True, "syslogHealthMonitor": True,
            # RA: Node Level Health Checks: "Node health checks should run at the level where the signal is visible."
            "nicHealthMonitor": nic_monitor,
            "faultQuarantine": True, "nodeDrainer": True, "faultRemediation": True}


@lru_cache(maxsize=1)
def break_fix() -> BreakFix:
    return _load(BreakFix, BREAK_FIX_FILE)


NON_ROOT_ID = 10001  # above 10000, as components/kube.py restricted_pod (CIS 5.7, kube-score, checkov CKV_K8S_40)
SCRATCH = "/tmp"  # every step writes its tool output here: an emptyDir, the root filesystem stays read-only
SCRATCH_ENV = "NCP_SCRATCH"  # the scripts name the scratch directory by this variable (the drill runs them locally)
# Root capabilities a step needs (every other step runs as NON_ROOT_ID with every capability dropped):
ROOT_CAPABILITIES = {
    # RDMA memory registration (ibv_reg_mr) pins memory: IPC_LOCK as root, as the readiness NCCL Job and the RDMA
    # workers (data/dynamo-backends.yaml rdmaCapabilities).
    "nccl-rails": ("IPC_LOCK",),
    # nvidia-smi -r is an administrator RM control: the driver checks capable(CAP_SYS_ADMIN) (NVIDIA
    # open-gpu-kernel-modules kernel-open/nvidia/os-interface.c os_is_administrator -> kernel-open/common/inc/
    # nv-linux.h NV_IS_SUSER), so SYS_ADMIN as root, nothing else.
    "gpu-reset": ("SYS_ADMIN",),
}


@dataclass(frozen=True)
class Step:
    """One container of a gate or handover run: its check name, image and shell script, and what it needs."""

    name: str
    image: str
    script: str
    gpus: bool = True
    privileged: bool = False
    cpu: str = "1"
    memory: str = "2Gi"


def result(check: str, condition: str, values: str) -> str:
    """Shell that prints the check's result line: PASS when `condition` (a shell test) holds."""
    return (f'if {condition}; then r=PASS; else r=FAIL; fi; echo "{RESULT_PREFIX} {check} $r {values}"')


def dcgm_step(dcgm_endpoint: str, image: str) -> Step:
    """DCGM diagnostics through the GPU Operator's standalone host engine (the Service NVSentinel reads too)."""
    level = break_fix().dcgm.diag_level
    out = f"${SCRATCH_ENV}/diag.txt"
    script = (f"dcgmi diag --host {dcgm_endpoint} -r {level} > {out} 2>&1; s=$?; cat {out}; "
              + result("dcgm-diag", f'[ "$s" = 0 ] && ! grep -q -i "fail" {out}',
                       f"level={level} exit=$s"))
    return Step("dcgm-diag", image, script)


def node_step(image: str) -> Step:
    """The validation suite's node checks (data/break-fix.yaml validationSuite): its command, the whole output in the
    log; the gate judges the banner here, and the driver and GPU count in the output against the baseline record
    (ncp/evidence/node_gate.py suite_node_facts, with the suite's patterns)."""
    suite, out = break_fix().validation_suite, f"${SCRATCH_ENV}/node.txt"
    script = (f"{suite.command} > {out} 2>&1; s=$?; cat {out}; "
              + result("node-checks", f'[ "$s" = 0 ] && grep -q "{suite.banner}" {out}', "exit=$s"))
    return Step("node-checks", image, script)


def nccl_step(image: str, binary: str, gpus: int) -> Step:
    """NCCL over the node's own rails: every GPU of the node in one all-reduce with peer-to-peer and shared memory
    off, so the traffic leaves through the NICs (NCCL_P2P_DISABLE, NCCL_SHM_DISABLE: NCCL env docs)."""
    script = (f"NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1 {binary.replace('_mpi', '')} -b 1G -e 8G -f 2 -g {gpus} "
              f"> ${SCRATCH_ENV}/nccl.txt 2>&1; s=$?; cat ${SCRATCH_ENV}/nccl.txt; "
              f"bw=$(sed -n 's/^# *Avg bus bandwidth *: *//p' ${SCRATCH_ENV}/nccl.txt); "
              + result("nccl-rails", '[ "$s" = 0 ] && [ -n "$bw" ]', "busbw=$bw"))
    return Step("nccl-rails", image, script, cpu="8", memory="64Gi")  # as the readiness NCCL Job


def smoke_step(image: str) -> Step:
    """A serving smoke test: the serving runtime image starts on the node and its framework runs a CUDA matmul."""
    script = ("python3 -c \"import torch; x = torch.ones(1024, 1024, device='cuda'); "
              f"print('matmul', float((x @ x)[0, 0]))\" > ${SCRATCH_ENV}/smoke.txt 2>&1; s=$?; "
              f"cat ${SCRATCH_ENV}/smoke.txt; "
              + result("serving-smoke", f'[ "$s" = 0 ] && grep -q "^matmul 1024.0$" ${SCRATCH_ENV}/smoke.txt',
                       "exit=$s"))
    return Step("serving-smoke", image, script, cpu="4", memory="16Gi")  # the framework and a CUDA context


def security_context(step: Step) -> dict:
    """Non-root, no capabilities, read-only root filesystem; root only with the capabilities ROOT_CAPABILITIES
    names; privileged only for the sanitize step (it formats the host's NVMe devices)."""
    # The API refuses privileged with allowPrivilegeEscalation false. Root steps keep a non-root group: what they
    # need is the user's capabilities, not root's group.
    context: dict = {"allowPrivilegeEscalation": step.privileged, "readOnlyRootFilesystem": True,
                     "runAsGroup": NON_ROOT_ID}
    if step.privileged:
        return {**context, "privileged": True, "runAsUser": 0, "runAsNonRoot": False}
    added = ROOT_CAPABILITIES.get(step.name)
    user = {"runAsUser": 0, "runAsNonRoot": False} if added else {"runAsUser": NON_ROOT_ID, "runAsNonRoot": True}
    return {**context, **user, "capabilities": {"drop": ["ALL"], **({"add": list(added)} if added else {})}}


def _container(step: Step, gpus: int) -> dict:
    requests = {"cpu": step.cpu, "memory": step.memory, "ephemeral-storage": "1Gi"}
    container: dict = {
        "name": step.name, "image": step.image, "command": ["sh", "-c", step.script],
        "env": [{"name": "HOME", "value": SCRATCH}, {"name": SCRATCH_ENV, "value": SCRATCH}],
        "securityContext": security_context(step),
        "resources": {"requests": requests, "limits": {
            **requests, "ephemeral-storage": "2Gi",
            **({integration_points().gpu.resource: str(gpus)} if step.gpus else {})}},
        "volumeMounts": [{"name": "scratch", "mountPath": SCRATCH}]}
    if step.privileged:
        container["volumeMounts"].append({"name": "host", "mountPath": HOST_MOUNT})
    return container


def job_template(name: str, kind: str, steps: list[Step], gpus: int, annotations: dict) -> dict:
    """A suspended Job whose steps run in order on one node (fixed per run by the node commands)."""
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/component": "readiness",
              PART_OF_LABEL: PROJECT, READINESS_LABEL: kind}
    containers = [_container(step, gpus) for step in steps]
    kai = integration_points().kai
    pod: dict = {"restartPolicy": "Never", "automountServiceAccountToken": False, "schedulerName": kai.scheduler_name,
                 "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                 "initContainers": containers[:-1], "containers": containers[-1:],
                 # Runs on a cordoned, quarantined node: the run's copy selects the node and tolerates its taints.
                 "tolerations": [{"operator": "Exists"}],
                 "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "2Gi"}}]}
    if any(step.privileged for step in steps):
        pod["volumes"].append({"name": "host", "hostPath": {"path": "/", "type": "Directory"}})
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": READINESS_NAMESPACE, "labels": labels,
                         "annotations": annotations},
            "spec": {"suspend": True, "backoffLimit": 0, "activeDeadlineSeconds": 3600,
                     # The platform's readiness queue, as the NCCL readiness test (KAI places every GPU pod).
                     "template": {"metadata": {"labels": {**labels, kai.queue_label: READINESS_NAMESPACE}},
                                  "spec": pod}}}


def sanitize_script() -> str:
    """Crypto-erase (nvme format --ses=2) every NVMe namespace of the node that holds no mounted root, else a full
    discard; the KV-offload and model-cache tiers live there. Lists what it erased."""
    return (f"done=''; failed=''; for dev in {HOST_MOUNT}/dev/nvme*n1; do [ -b \"$dev\" ] || continue; "
            f"grep -q \"^/dev/${{dev##*/}}\" {HOST_MOUNT}/proc/1/mounts && continue; "
            "if nvme format \"$dev\" --ses=2 --force; then done=\"$done ${dev##*/}:crypto-erase\"; "
            "elif blkdiscard -f \"$dev\"; then done=\"$done ${dev##*/}:discard\"; else failed=\"$failed ${dev##*/}\"; "
            "fi; done; "
            + result("sanitize-kv", '[ -z "$failed" ]', "erased=${done# } failed=${failed# }") + "; "
            + result("sanitize-cache", '[ -z "$failed" ]', "erased=${done# } failed=${failed# }"))


def gpu_reset_step(image: str) -> Step:
    script = f"nvidia-smi -r > ${SCRATCH_ENV}/reset.txt 2>&1; s=$?; cat ${SCRATCH_ENV}/reset.txt; " + result(
        "gpu-reset", '[ "$s" = 0 ]', "exit=$s")
    return Step("gpu-reset", image, script)


SHARED_POOL = "shared"  # the nodeBaseline pool of nodes without a tenant label


@dataclass(frozen=True)
class NodeBaseline:
    """What a node must show to return to service: the baseline record's nodeBaseline entry of its pool, which the
    gate reads from the cluster (ConfigMap ncp-baseline-record), never from the plan."""

    gpu_product: str
    gpus: int
    driver: Optional[str]  # None where the node image ships the driver (the site's, not the program's)
    mig_layout: Optional[str]  # the nvidia.com/mig.config value, where the node is partitioned
    nccl_bus_bandwidth_gbps: Optional[float]  # the profile's readiness threshold, on RDMA profiles
    tenant: Optional[str]  # the tenant whose pool the node belongs to (its label), None on shared nodes
    labels: dict[str, str]  # the labels the node must carry (product, present, MIG layout, tenant pool)

    def as_record(self) -> dict:
        return {"gpuProduct": self.gpu_product, "gpus": self.gpus, "driver": self.driver,
                "migLayout": self.mig_layout, "ncclBusBandwidthGBps": self.nccl_bus_bandwidth_gbps,
                "tenant": self.tenant, "labels": dict(self.labels)}

    @classmethod
    def from_record(cls, entry: dict) -> "NodeBaseline":
        """The entry as the record holds it; a KeyError names a fact it lacks."""
        return cls(gpu_product=entry["gpuProduct"], gpus=int(entry["gpus"]), driver=entry["driver"],
                   mig_layout=entry["migLayout"], nccl_bus_bandwidth_gbps=entry["ncclBusBandwidthGBps"],
                   tenant=entry["tenant"], labels=dict(entry["labels"]))


def _expected_labels(gpu_product: str, mig_layout: Optional[str], tenant: Optional[str]) -> dict[str, str]:
    names = integration_points().gpu
    expected = {names.product_label: gpu_product, names.present_label: "true"}
    if mig_layout:
        expected[names.mig_config_label] = mig_layout
    if tenant:
        expected[TENANT_KEY] = tenant
    return expected


def node_baseline(plan, tenant: Optional[str]) -> NodeBaseline:
    """The baseline of a node of `tenant`'s pool (None: a shared node), as the program writes it into the record."""
    mig = plan.mig if plan.mig is not None and plan.mig.node_pool in (None, tenant) else None
    readiness = plan.profile.readiness
    product, layout = gpu_product_label(plan.profile, mig), MIG_LAYOUT if mig else None
    return NodeBaseline(
        gpu_product=product, gpus=plan.profile.gpu.per_node,
        driver=plan.matrix.pin("gpuOperator").images.get("driver") if plan.managed_driver else None,
        mig_layout=layout,
        nccl_bus_bandwidth_gbps=readiness.nccl_bus_bandwidth_gbps if readiness and plan.network_enabled else None,
        tenant=tenant, labels=_expected_labels(product, layout, tenant))


def node_baselines(plan) -> dict[str, dict]:
    """Pool (a pooled tenant's name, or `shared`) -> its node baseline: the record's nodeBaseline key."""
    pools = [None, *(t.name for t in plan.tenants if t.node_pool)]
    return {tenant or SHARED_POOL: node_baseline(plan, tenant).as_record() for tenant in pools}


def dcgm_endpoint(plan) -> str:
    """host:port of the GPU Operator's standalone DCGM host engine (its Service in the operator's namespace)."""
    dcgm = integration_points().dcgm
    return f"{dcgm.service}.{plan.matrix.pin('gpuOperator').namespace}.svc:{dcgm.port}"


def runs_nccl(profile) -> bool:
    """The gate runs NCCL over the node's rails: RDMA profiles with a bus bandwidth readiness threshold."""
    return bool(profile.has_rdma_fabric and profile.readiness and profile.readiness.nccl_bus_bandwidth_gbps)


def gate_images(matrix: CompatibilityMatrix, profile) -> dict[str, str]:
    """imageDigests key -> the tag-pinned image of a gate or handover step the program takes from data (the serving
    and storage images are the site's, pinned where they are set)."""
    images = {"dcgm": break_fix().dcgm.image}
    if runs_nccl(profile):
        images["ncclTests"] = matrix.workload("ncclTests").images["ncclTests"]
    return images


def pinned(images: dict[str, str], key: str, digests: dict) -> str:
    return f"{images[key]}@{digests[key]}" if key in digests else images[key]


def gate_steps(plan) -> list[Step]:
    """DCGM diagnostics, the node's own checks, NCCL over its rails on RDMA profiles, then the serving smoke test
    (in the first endpoint's serving image; none without an endpoint)."""
    images, digests = gate_images(plan.matrix, plan.profile), plan.config.components.serving.image_digests
    dcgm = pinned(images, "dcgm", digests)
    steps = [dcgm_step(dcgm_endpoint(plan), dcgm), node_step(dcgm)]
    if runs_nccl(plan.profile) and plan.network_enabled:
        nccl = plan.matrix.workload("ncclTests")
        steps.append(nccl_step(pinned(images, "ncclTests", digests), str(nccl.overrides["binary"]),
                               plan.profile.gpu.per_node))
    if plan.endpoints:
        steps.append(smoke_step(plan.endpoints[0].image))
    return steps


def gate_job(plan) -> dict:
    """The suspended return-to-service Job: `ncp node return-to-service` runs a copy on one node."""
    checks = [step.name for step in gate_steps(plan)]
    return job_template(GATE_JOB, GATE_JOB, gate_steps(plan), plan.profile.gpu.per_node, {
        CHECKS_ANNOTATION: ",".join(checks),
        f"{PROJECT}.io/run-by": "ncp node return-to-service --stack <stack> --node <node> (copies this Job onto the "
                                "node, judges each check against the baseline record, uncordons only on a pass)"})


def handover_job(plan, sanitize_image: str) -> dict:
    """The suspended handover Job: crypto-erase of the node-local KV and cache tiers, then a GPU reset."""
    sanitize = Step("sanitize", sanitize_image, sanitize_script(), gpus=False, privileged=True)
    dcgm = pinned(gate_images(plan.matrix, plan.profile), "dcgm", plan.config.components.serving.image_digests)
    return job_template(HANDOVER_JOB, HANDOVER_JOB, [sanitize, gpu_reset_step(dcgm)], plan.profile.gpu.per_node, {
        f"{PROJECT}.io/run-by": "ncp node handover --stack <stack> --node <node> --to <tenant>",
        f"{PROJECT}.io/image-needs": "nvme-cli and util-linux (blkdiscard) in the site's storage image "
                                     "(components.serving.validation.storageImage)"})


UNCORDON_GUARD = "ncp-nvsentinel-never-uncordons"


def uncordon_guard(health_namespace: str) -> tuple[dict, dict]:
    """A ValidatingAdmissionPolicy (spec, binding spec) refusing any service account of NVSentinel's namespace the
    return of a node to service: uncordoning it, or removing the quarantine or hold taint. NVSentinel uncordons by
    itself when a node's health events recover; here only the gate (a person's credentials) does, and NVSentinel's
    manual-uncordon path then clears its own state (docs/cancelling-breakfix.md)."""
    quarantine = break_fix().quarantine
    keys = [quarantine.taint.key, quarantine.hold_taint.key]

    def keeps(key: str) -> dict:
        had = f"has(oldObject.spec.taints) && oldObject.spec.taints.exists(t, t.key == '{key}')"
        has = f"has(object.spec.taints) && object.spec.taints.exists(t, t.key == '{key}')"
        return {"expression": f"!({had}) || ({has})",
                "message": f"NVSentinel may not remove taint {key}: `ncp node return-to-service` does, on a pass"}

    spec = {
        "failurePolicy": "Fail",
        "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"],
                                                "resources": ["nodes"]}]},
        "matchConditions": [{"name": "nvsentinel", "expression":
                             f"request.userInfo.username.startsWith('system:serviceaccount:{health_namespace}:')"}],
        "validations": [
            {"expression": "!(has(oldObject.spec.unschedulable) && oldObject.spec.unschedulable) || "
                           "(has(object.spec.unschedulable) && object.spec.unschedulable)",
             "message": "NVSentinel may not uncordon a node: `ncp node return-to-service` does, on a pass"},
            *[keeps(key) for key in keys]],
    }
    binding = {"policyName": UNCORDON_GUARD, "validationActions": ["Deny"]}
    return spec, binding


def fault_quarantine_rule_sets() -> list[dict]:
    """The chart's default rule sets (the whole list: Helm replaces lists), each cordoning and adding the quarantine
    taint, and each skipping nodes labelled unmanaged, as the defaults do."""
    quarantine = break_fix().quarantine
    unmanaged = " && ".join(f"!('{label}' in node.metadata.labels && node.metadata.labels['{label}'] == \"false\")"
                            for label in quarantine.unmanaged_labels)
    return [{"enabled": True, "version": "1", "name": rule.name,
             "match": {"all": [{"kind": "HealthEvent", "expression": rule.agent},
                               {"kind": "Node", "expression": unmanaged}]},
             "cordon": {"shouldCordon": True}, "taint": quarantine.taint.as_dict()}
            for rule in quarantine.rule_sets]


def checklist_steps(plan) -> list[str]:
    """The site checklist's day-2 node steps (scaffold.checklist)."""
    steps = [f"a node NVSentinel quarantined returns only through `ncp node return-to-service --stack <stack> --node "
             f"<node>` (NVSentinel's own uncordon is refused by admission policy {UNCORDON_GUARD}); the reboot "
             "request and the gate are one procedure: docs/runbooks/README.md"]
    if any(t.node_pool for t in plan.tenants):
        image = plan.config.components.serving.validation.storage_image
        steps.append("moving a GPU node between tenants' pools: `ncp node handover --stack <stack> --node <node> --to "
                     "<tenant>` (drain, crypto-erase of the node-local KV and cache tiers, GPU reset, reboot request, "
                     "relabel, gate; a signed record)" + (
                         f"; the storage image `{image}` must carry nvme-cli and blkdiscard" if image else
                         ": set components.serving.validation.storageImage (with nvme-cli and blkdiscard), without it "
                         "the program deploys no handover Job"))
    steps.append(f"spare policy of profile {plan.profile.name}: {plan.profile.tenancy.spare_policy.action} "
                 "(`ncp node capacity --stack <stack>` names the tenants a quarantine leaves short)")
    return steps
