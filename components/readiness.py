"""Readiness gates: on RDMA profiles an NCCL tests Job across the east-west rails (all rails, then each alone); on
every profile with readiness thresholds a fio read Job per storage tier; all suspended (run on demand before tenants
serve), with the profile's thresholds recorded beside them; `ncp evidence readiness-run` runs them and judges
their logs."""
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components.kube import (
    ON_DEMAND, PRIORITY_BATCH, Layer, labels, network_attachment, restricted_job, scratch,
)
from ncp.plan.names import NCCL_JOB, NCCL_SSH_SECRET, READINESS_LABEL, STORAGE_TIER_LABEL, fio_job
from ncp.plan.serving import StorageTier
from ncp.plan.catalog import WorkloadPin, integration_points
from ncp.plan.readiness import ReadinessPlan
from ncp.plan.site_plan import TENANT_KEY, RailAttachment, gpu_toleration

TARGET_MOUNT = "/target"
SSH_MOUNT = "/etc/ncp-ssh"
# A run that cannot finish (a rank that never starts, a hung collective) fails instead of holding its GPU nodes:
# the 8 B..8 GB sweep takes minutes on a healthy fabric.
NCCL_DEADLINE_SECONDS = 1800
# fio reads FIO_JOBS files of FIO_FILE each from a fresh FIO_VOLUME of the tier's class: 16 GiB in all, beyond what
# the pod's 4 GiB memory limit could cache (reads are O_DIRECT anyway).
FIO_JOBS, FIO_FILE, FIO_VOLUME = 4, "4G", "32Gi"


@dataclass(frozen=True)
class NcclArgs:
    """The NCCL all-reduce test across the rails, as ReadinessArgs.nccl resolves it.

    Attributes:
        image: the nccl-tests image (compatibility matrix workloads.ncclTests).
        binary: the test binary, all_reduce_perf_mpi (nccl-tests built with MPI=1).
        ssh_port: the port the ranks' sshd listens on for mpirun. Unit: TCP port number.
        nodes: the GPU nodes the test spans. Unit: nodes.
        gpus_per_node: the GPUs each rank pod takes. Unit: GPUs.
        gpu_resource: the GPU extended resource (nvidia.com/gpu).
        rdma_resource: the profile's RDMA extended resource.
        networks: the rails' NetworkAttachmentDefinitions in the readiness namespace, by name.
        capabilities: what RDMA memory registration needs (IPC_LOCK), as the RDMA workers get.
        rails: the rails' interfaces in the pods; after the all-rails run the test runs once over each rail alone.
            Default: ().
    """

    image: str
    binary: str
    ssh_port: int
    nodes: int
    gpus_per_node: int
    gpu_resource: str
    rdma_resource: str
    networks: list[str]
    capabilities: list[str]
    rails: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReadinessArgs:
    """Arguments of Readiness: the NCCL test across the rails and a storage throughput Job per tier, suspended until
    the operator runs them before tenants serve.

    Attributes:
        plan: the readiness plan (ncp/plan/readiness.py): nodes, tiers and thresholds.
        namespace: the readiness layer's namespace (privileged: RDMA needs IPC_LOCK as root).
        nccl_pin: the nccl-tests workload (compatibility matrix workloads.ncclTests).
        nccl_image: the site's nccl-tests image (validation.ncclImage, by digest in prod); None runs the matrix's.
        fio_image: the site's fio image (validation.storageImage); None makes no storage Jobs.
        rail_attachments: the rails: the readiness namespace gets its own copy of each (its pods name them there).
        rdma_resource: the profile's RDMA extended resource.
        capabilities: what RDMA memory registration needs (IPC_LOCK), as the RDMA workers get.
        gpu_product: the nvidia.com/gpu.product value of the GPU nodes the tests run on.
        queue: the KAI queue the NCCL test's GPU pods run in (the platform's readiness queue).
    """

    plan: ReadinessPlan
    namespace: k8s.core.v1.Namespace
    nccl_pin: WorkloadPin
    nccl_image: Optional[str]
    fio_image: Optional[str]
    rail_attachments: tuple[RailAttachment, ...]
    rdma_resource: str
    capabilities: list[str]
    gpu_product: str
    queue: str

    def nccl(self) -> Optional[NcclArgs]:
        if self.plan.nccl_nodes is None:
            return None
        names = integration_points().gpu
        return NcclArgs(image=self.nccl_image or self.nccl_pin.images["ncclTests"],
                        binary=str(self.nccl_pin.overrides["binary"]),
                        ssh_port=int(str(self.nccl_pin.overrides["sshPort"])), nodes=self.plan.nccl_nodes,
                        gpus_per_node=self.plan.gpus_per_node, gpu_resource=names.resource,
                        rdma_resource=self.rdma_resource, networks=[rail.name for rail in self.rail_attachments],
                        capabilities=self.capabilities, rails=self.plan.rails)


def _on_gpu_nodes(args: ReadinessArgs) -> dict:
    """GPU nodes of the site's product; readiness tests every GPU node's fabric and storage, so it tolerates the GPU
    taint and the tenant pools' taint (run by the operator before tenants serve)."""
    names = integration_points().gpu
    return {"node_selector": {names.product_label: args.gpu_product},
            "tolerations": [k8s.core.v1.TolerationArgs(**gpu_toleration()),  # type: ignore[arg-type]
                            k8s.core.v1.TolerationArgs(key=TENANT_KEY, operator="Exists", effect="NoSchedule")]}


# Each rail alone: every rank limits NCCL to the RDMA device whose GID 0 belongs to the rail (NCCL_IB_HCA "=<dev>":
# an exact match). The kernel names that net device in /sys/class/infiniband/<dev>/ports/1/gid_attrs/ndevs/0
# (Documentation/ABI/testing/sysfs-class-infiniband): the host NIC under a shared RDMA device (macvlan rails) or
# the pod's own interface under SR-IOV, which Multus names net<n> in the order of the networks annotation.
RAIL_HCA = ('hca=""; for d in /sys/class/infiniband/*; do n=$(cat $d/ports/1/gid_attrs/ndevs/0 2>/dev/null); '
            '[ "$n" = "${RAIL%%:*}" ] || [ "$n" = "${RAIL#*:}" ] && hca=${d##*/}; done; '
            '[ -n "$hca" ] || { echo "no RDMA device behind rail ${RAIL%%:*}" >&2; exit 1; }; '
            'export NCCL_IB_HCA="=$hca"')


def _rail_loop(nccl: NcclArgs, mpirun: str) -> str:
    rails = " ".join(f"{rail}:net{index}" for index, rail in enumerate(nccl.rails, start=1))
    return (f"for rail in {rails}; do echo \"# ncp-rail ${{rail%%:*}}\"; {mpirun} -x RAIL=$rail sh -c "
            f"'{RAIL_HCA}; exec {nccl.binary} -b 1G -e 8G -f 2 -g 1 -c 1' || status=$?; done")


def nccl_script(nccl: NcclArgs, service: str) -> str:
    """Every pod runs sshd with the run's key (Secret NCCL_SSH_SECRET); index 0 waits for its peers, then mpirun
    starts gpus_per_node ranks on each pod over ssh (Open MPI's default launcher, as the MPI Operator's launcher does)
    and tells the peers to stop when the test has printed its result. An Indexed Job's pod is named host
    <job>-<index>, so the peers' names come from the pod's own: a run's copy of the Job (<job>-<run id>) works as
    the template would."""
    ranks = nccl.nodes * nccl.gpus_per_node
    ssh = f"ssh -p {nccl.ssh_port} -o StrictHostKeyChecking=no"
    # Remote ranks start from sshd's login environment, not the image's: -x passes the image's search paths.
    mpirun = (f"mpirun --allow-run-as-root -np {ranks} -H \"$(for host in $hosts; do printf "
              f"'%s:{nccl.gpus_per_node},' \"$host\"; done | sed 's/,$//')\" --bind-to none --mca plm_rsh_args "
              f"'-p {nccl.ssh_port} -o StrictHostKeyChecking=no' -x NCCL_DEBUG=WARN -x PATH -x LD_LIBRARY_PATH")
    return "\n".join([
        "set -eu",
        # The image must carry an ssh server for mpirun's launcher; the stock NGC PyTorch image has none.
        "[ -x /usr/sbin/sshd ] || { echo 'the nccl-tests image has no /usr/sbin/sshd (mpirun starts the remote ranks "
        "over ssh): use an image with openssh-server and the nccl-tests MPI binaries' >&2; exit 2; }",
        f"[ -f {SSH_MOUNT}/ssh-privatekey ] || {{ echo 'Secret {NCCL_SSH_SECRET} is missing: run the test with "
        "ncp evidence readiness-run, which makes the key for the run' >&2; exit 2; }",
        f"mkdir -p /run/sshd /root/.ssh && install -m 600 {SSH_MOUNT}/ssh-privatekey /root/.ssh/id_ed25519",
        f"install -m 600 {SSH_MOUNT}/ssh-publickey /root/.ssh/authorized_keys && ssh-keygen -A",
        f"/usr/sbin/sshd -p {nccl.ssh_port}",
        'if [ "$JOB_COMPLETION_INDEX" != 0 ]; then until [ -f /tmp/done ]; do sleep 2; done; exit 0; fi',
        'job="${HOSTNAME%-*}"',
        f'hosts=""; for index in $(seq 0 {nccl.nodes - 1}); do hosts="$hosts $job-$index.{service}"; done',
        f"for host in $hosts; do until {ssh} $host true; do sleep 2; done; done",
        f"{mpirun} {nccl.binary} -b 8 -e 8G -f 2 -g 1 -c 1 || status=$?",
        *([_rail_loop(nccl, mpirun)] if nccl.rails else []),
        f"for host in $hosts; do [ \"$host\" = \"$job-0.{service}\" ] || {ssh} $host touch /tmp/done; done",
        "exit ${status:-0}",
    ])


class Readiness(Layer):
    """Fabric and storage readiness Jobs in the readiness namespace (Pod Security privileged: RDMA pods need
    IPC_LOCK as root, like the disaggregated workers)."""

    def __init__(self, name: str, args: ReadinessArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("Readiness", name, opts)
        nccl = args.nccl()
        tiers = args.plan.tiers if args.fio_image else []
        self.refuse([] if nccl is not None or tiers else [
            "nothing to check: the site has fewer GPU nodes than the NCCL test spans and no fio image "
            "(validation.storageImage) for the tiers"])
        ns = args.namespace.metadata.name
        child = self.child(args.namespace)
        k8s.core.v1.ConfigMap(
            f"{name}-thresholds",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="readiness-thresholds", namespace=ns,
                                                labels=labels("readiness", "readiness-thresholds")),
            data={"thresholds.yaml": yaml.safe_dump(args.plan.thresholds, sort_keys=True)}, opts=child)
        self.jobs = []
        if nccl is not None:
            attachments = [network_attachment(f"{name}-nad-{attachment.name}", attachment, ns, child)
                           for attachment in args.rail_attachments]
            self.jobs.append(self._nccl(name, nccl, args, ns, self.child(args.namespace, *attachments)))
        for tier, label, storage in tiers:
            self.jobs.append(self._fio(name, args, tier, label, storage, ns, child))
        self.register_outputs({"jobs": self.jobs})

    def _nccl(self, name: str, nccl: NcclArgs, args: ReadinessArgs, ns, child) -> str:
        kai = integration_points().kai
        gang = kai.batch_min_member_annotation
        job_labels = labels("readiness", NCCL_JOB, **{READINESS_LABEL: "nccl"})
        pod_labels = {**job_labels, kai.queue_label: args.queue}  # KAI gang-schedules the pods in the queue
        service = k8s.core.v1.Service(
            f"{name}-nccl-peers",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=NCCL_JOB, namespace=ns, labels=job_labels),
            spec=k8s.core.v1.ServiceSpecArgs(  # headless: gives each indexed pod its DNS name for mpirun's host list
                cluster_ip="None", publish_not_ready_addresses=True, selector={"app.kubernetes.io/name": NCCL_JOB},
                ports=[k8s.core.v1.ServicePortArgs(name="ssh", port=nccl.ssh_port)]), opts=child)
        container, scratch_vol = scratch(k8s.core.v1.ContainerArgs(
            name=NCCL_JOB, image=nccl.image, command=["bash", "-c", nccl_script(nccl, NCCL_JOB)],
            resources=k8s.core.v1.ResourceRequirementsArgs(
                requests={"cpu": "8", "memory": "64Gi"},
                limits={"cpu": "8", "memory": "64Gi", nccl.gpu_resource: str(nccl.gpus_per_node),
                        nccl.rdma_resource: "1"}),
            volume_mounts=[k8s.core.v1.VolumeMountArgs(name="ssh", mount_path=SSH_MOUNT, read_only=True),
                           k8s.core.v1.VolumeMountArgs(name="shm", mount_path="/dev/shm")]))
        # Root with IPC_LOCK for RDMA memory registration (as the RDMA workers), plus what sshd's privilege
        # separation needs (chroot to its empty directory, then setuid/setgid to the sshd user).
        container.security_context = k8s.core.v1.SecurityContextArgs(
            run_as_user=0, run_as_non_root=False, allow_privilege_escalation=False, read_only_root_filesystem=False,
            capabilities=k8s.core.v1.CapabilitiesArgs(
                drop=["ALL"], add=[*nccl.capabilities, "SETUID", "SETGID", "SYS_CHROOT"]))
        k8s.batch.v1.Job(
            f"{name}-nccl",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=NCCL_JOB, namespace=ns, labels=job_labels,
                annotations={**ON_DEMAND, gang: str(nccl.nodes), "ncp-inference.io/run-needs":
                             f"Secret {NCCL_SSH_SECRET} (type kubernetes.io/ssh-auth, plus ssh-publickey), made per "
                             "run by ncp evidence readiness-run, owned by the run's Job"}),
            spec=k8s.batch.v1.JobSpecArgs(
                completion_mode="Indexed", completions=nccl.nodes, parallelism=nccl.nodes, backoff_limit=0,
                suspend=True, active_deadline_seconds=NCCL_DEADLINE_SECONDS,
                template=k8s.core.v1.PodTemplateSpecArgs(
                    # KAI gangs a plain Job only with batch-min-member (on the Job; also on its pods, which a run's
                    # copy of the Job keeps): without it one rank can start alone and wait for its peers forever.
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=pod_labels, annotations={
                        gang: str(nccl.nodes),
                        **({"k8s.v1.cni.cncf.io/networks": ",".join(nccl.networks)} if nccl.networks else {})}),
                    spec=k8s.core.v1.PodSpecArgs(
                        restart_policy="Never", subdomain=NCCL_JOB, automount_service_account_token=False,
                        scheduler_name=kai.scheduler_name,
                        priority_class_name=PRIORITY_BATCH,
                        security_context=k8s.core.v1.PodSecurityContextArgs(
                            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault")),
                        # One pod per node: the test spans nodes, so its traffic crosses the rails.
                        affinity=k8s.core.v1.AffinityArgs(pod_anti_affinity=k8s.core.v1.PodAntiAffinityArgs(
                            required_during_scheduling_ignored_during_execution=[k8s.core.v1.PodAffinityTermArgs(
                                topology_key="kubernetes.io/hostname",
                                label_selector=k8s.meta.v1.LabelSelectorArgs(
                                    match_labels={"app.kubernetes.io/name": NCCL_JOB}))])),
                        containers=[container],
                        # The run's key: made per run by evidence.readiness_run, owned by the run's Job and deleted
                        # with it, never kept in the stack (optional here: made at run time; the run's copy of the
                        # Job makes it required, so its pods wait for it).
                        volumes=[k8s.core.v1.VolumeArgs(name="ssh", secret=k8s.core.v1.SecretVolumeSourceArgs(
                                     secret_name=NCCL_SSH_SECRET, default_mode=0o400, optional=True)),
                                 k8s.core.v1.VolumeArgs(name="shm", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(
                                     medium="Memory", size_limit="16Gi")),
                                 scratch_vol],
                        **_on_gpu_nodes(args)))),
            opts=self.child(args.namespace, service))
        return NCCL_JOB

    def _fio(self, name: str, args: ReadinessArgs, tier: str, label: str, storage: StorageTier, ns, child) -> str:
        job = fio_job(tier)
        job_labels = labels("readiness", job, **{READINESS_LABEL: "storage", STORAGE_TIER_LABEL: label})
        # A fresh volume of the tier's class on a GPU node, where serving reads it (node-local tiers exist only
        # there); sequential 1 MiB direct reads by FIO_JOBS readers, reported as JSON on stdout.
        volume = k8s.core.v1.VolumeArgs(name="target", ephemeral=k8s.core.v1.EphemeralVolumeSourceArgs(
            volume_claim_template=k8s.core.v1.PersistentVolumeClaimTemplateArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(labels={STORAGE_TIER_LABEL: label}),
                spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                    storage_class_name=storage.storage_class, access_modes=[storage.access_mode],
                    resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": FIO_VOLUME})))))
        command = ["fio", "--name=seqread", f"--directory={TARGET_MOUNT}", "--rw=read", "--bs=1M", "--direct=1",
                   "--ioengine=libaio", "--iodepth=32", f"--numjobs={FIO_JOBS}", f"--size={FIO_FILE}",
                   "--group_reporting", "--output-format=json"]
        restricted_job(
            f"{name}-{job}", name=job, namespace=ns, labels=job_labels, annotations={},
            container=k8s.core.v1.ContainerArgs(
                name="fio", image=args.fio_image, command=command,
                resources=k8s.core.v1.ResourceRequirementsArgs(requests={"cpu": "4", "memory": "4Gi"},
                                                               limits={"cpu": "4", "memory": "4Gi"}),
                volume_mounts=[k8s.core.v1.VolumeMountArgs(name="target", mount_path=TARGET_MOUNT)]),
            volumes=[volume], service_account="default", suspend=True, placement=_on_gpu_nodes(args), opts=child)
        return job

