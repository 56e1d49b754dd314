"""Validation and benchmarking layer: an AIPerf benchmark Job per endpoint with its acceptance thresholds, and the
ISV NCP Validation Suite Job with its expectations set to this stack."""
import json
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components.kube import (
    container_resources,
    TENANT_LABEL, Layer, await_annotations, claim_volume, labels, pod_placement, policy_rules, restricted_job,
    tier_labels,
)
from ncp.plan.names import (
    BENCHMARK_CLAIM, ENDPOINT_LABEL, MODEL_CLAIM, MODELS_MOUNT, RESULTS_MOUNT, SUITE_VERSION_ANNOTATION,
    THRESHOLDS_ANNOTATION,
)
from ncp.plan.catalog import AccessRule
from ncp.plan.serving import StorageTier
from ncp.plan.site_plan import NodePlacement

# app.kubernetes.io/component of the acceptance Jobs (the policy pack finds them by it)
BENCHMARK_COMPONENT, SUITE_COMPONENT = "benchmark", "validation-suite"
# The benchmark container runs the command, then fails unless it wrote its export: AIPerf 0.8.0 exits 0 when its
# services cannot start (e.g. an IPC socket path over 107 characters) and writes nothing, and a Job that completed
# without results would only fail later, as unusable evidence.
EXPORT_CHECK = ('export_file="$1"; shift; "$@" || exit; test -s "$export_file" || '
                '{ echo "$1 exited 0 but wrote no $export_file: see the log in its artifact directory" >&2; exit 1; }')


@dataclass(frozen=True)
class BenchmarkArgs:
    """Arguments of Benchmark: the AIPerf Job measuring one endpoint against its acceptance thresholds.

    Attributes:
        endpoint: the endpoint (or inference service) measured.
        tenant: the tenant that owns it.
        namespace: the tenant's namespace.
        image: the AIPerf image (`components.serving.validation.benchmarkImage`).
        service_account: the tenant workload ServiceAccount the Job runs as.
        command: the AIPerf command line (ncp/plan/aiperf_args.py; the plan builds it), recorded beside the Job as
            the reproducible command.
        export_file: the export the command must write (under ncp/plan/wired.py benchmark_artifacts); the Job fails
            without it.
        thresholds: the acceptance thresholds, recorded beside the Job for `ncp acceptance`.
        graph: the workload measured (DynamoGraphDeployment or Deployment): the Job waits for it.
        placement: the tenant's dedicated nodes, where it has them. Default: None.
    """

    endpoint: str
    tenant: str
    namespace: pulumi.Input[str]
    image: str
    service_account: str
    command: list[str]
    export_file: str
    thresholds: dict
    graph: pulumi.Resource
    placement: Optional[NodePlacement] = None


class Benchmark(Layer):
    """The endpoint's AIPerf run: a Job writing artifacts to the tenant's benchmark-output claim, with the
    acceptance thresholds recorded beside it (annotation and ConfigMap) for `ncp acceptance`."""

    def __init__(self, name: str, args: BenchmarkArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("Benchmark", name, opts)
        thresholds = yaml.safe_dump(args.thresholds, sort_keys=True)
        job_labels = labels(BENCHMARK_COMPONENT, f"{args.endpoint}-aiperf", **{ENDPOINT_LABEL: args.endpoint,
                                                                      TENANT_LABEL: args.tenant})
        k8s.core.v1.ConfigMap(
            f"{name}-thresholds",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{args.endpoint}-acceptance", namespace=args.namespace,
                                                labels=job_labels),
            data={"thresholds.yaml": thresholds, "command.json": json.dumps(args.command)},
            opts=self.child(),
        )
        self.job = restricted_job(
            f"{name}-job", name=f"{args.endpoint}-aiperf", namespace=args.namespace, labels=job_labels,
            annotations={THRESHOLDS_ANNOTATION: thresholds},
            container=k8s.core.v1.ContainerArgs(
                name="aiperf", image=args.image,
                command=["sh", "-c", EXPORT_CHECK, "benchmark", args.export_file, *args.command],
                env=[k8s.core.v1.EnvVarArgs(name="HF_HUB_OFFLINE", value="1")],
                resources=container_resources("benchmark"),
                volume_mounts=[
                    k8s.core.v1.VolumeMountArgs(name="results", mount_path=RESULTS_MOUNT),
                    k8s.core.v1.VolumeMountArgs(name="models", mount_path=MODELS_MOUNT, read_only=True),
                ],
            ),
            volumes=[claim_volume("results", BENCHMARK_CLAIM),
                     claim_volume("models", MODEL_CLAIM, read_only=True)],
            service_account=args.service_account,
            # Run on demand once the endpoint is ready, not at every deploy.
            suspend=True, placement=pod_placement(args.placement),
            opts=self.child(args.graph),
        )
        self.register_outputs({"job": f"{args.endpoint}-aiperf"})


@dataclass(frozen=True)
class ValidationSuiteArgs:
    """Arguments of ValidationSuite: the ISV NCP Validation Suite's read-only checks, run as a Job.

    Attributes:
        namespace: the validation namespace.
        image: the site-built suite image, pinned by digest in prod.
        suite_file: the suite configuration file inside the image (compatibility matrix `validationSuite`).
        gpu_operator_namespace: the GPU Operator's namespace, which the suite checks.
        overrides: the suite configuration paths the Job sets (GPU Operator namespace, MIG expectations).
        mig_strategy: the MIG strategy the suite expects on the nodes; None expects no MIG.
        version: the suite version, recorded on the Job.
        results: the benchmark-output tier, which keeps the evidence; None writes to an emptyDir.
        checks: the suite's read-only checks this Job runs (pytest -k); at least one.
        reads: everything those checks read: the Job's ClusterRole, and nothing more; at least one rule.
        pull_secret: the platform's registry credential in this namespace, if any. Default: None.
        skip_await: whether Pulumi skips waiting for the Job to complete. Default: False.
    """

    namespace: k8s.core.v1.Namespace
    image: str
    suite_file: str
    gpu_operator_namespace: str
    overrides: dict
    mig_strategy: Optional[str]
    version: str
    results: Optional[StorageTier]
    checks: list[str]
    reads: list[AccessRule]
    pull_secret: Optional[str] = None
    skip_await: bool = False


def suite_command(args: ValidationSuiteArgs) -> list[str]:
    """isvctl run with the GPU Operator namespace and MIG expectations of this stack (all phases: its setup step
    only reads the existing cluster and detects node and GPU counts)."""
    sets = {path: args.gpu_operator_namespace for path in args.overrides["gpuOperatorNamespace"]}
    sets[args.overrides["requireMig"]] = "true" if args.mig_strategy else "false"
    expected = {"nvidia.com/mig.capable": "true"}
    if args.mig_strategy:
        expected["nvidia.com/mig.strategy"] = args.mig_strategy
    sets[args.overrides["migExpectedLabels"]] = json.dumps(expected, sort_keys=True)
    command = ["isvctl", "test", "run", "-f", f"/opt/isv-ncp-validation-suite/{args.suite_file}",
               "--junitxml", f"{RESULTS_MOUNT}/junit-validation.xml", "--no-upload"]
    for path, value in sets.items():
        command += ["--set", f"{path}={value}"]
    # Only the read-only checks: the rest of the suite creates objects, which this Job's identity may not.
    return command + ["--", "-k", " or ".join(args.checks)]


class ValidationSuite(Layer):
    NAME = "isv-ncp-validation"

    def __init__(self, name: str, args: ValidationSuiteArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("ValidationSuite", name, opts)
        child = self.child(args.namespace)
        ns = args.namespace.metadata.name
        suite_labels = labels(SUITE_COMPONENT, self.NAME)
        if not args.checks or not args.reads:
            self.refuse(["needs the checks it runs and the rules they read "
                         "(validationSuite.readOnlyChecks/reads in the compatibility matrix)"])
        # The token is mounted only into the Job's pod (automount_token below), never by default.
        account = k8s.core.v1.ServiceAccount(
            f"{name}-sa", metadata=k8s.meta.v1.ObjectMetaArgs(name=self.NAME, namespace=ns, labels=suite_labels),
            automount_service_account_token=False, opts=child)
        # Read-only: exactly what the suite's read-only checks and setup step read (compatibility matrix).
        role = k8s.rbac.v1.ClusterRole(
            f"{name}-reader", metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{self.NAME}-reader", labels=suite_labels),
            rules=policy_rules(args.reads), opts=child)
        binding = k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-binding",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=self.NAME, labels=suite_labels),
            role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="ClusterRole",
                                             name=role.metadata.name),
            subjects=[k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=self.NAME, namespace=ns)],
            opts=child)
        results = k8s.core.v1.VolumeArgs(name="results", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs())
        after: list[pulumi.Resource] = [account, binding]
        if args.results is not None:
            after.append(k8s.core.v1.PersistentVolumeClaim(
                f"{name}-results",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{self.NAME}-results", namespace=ns,
                                                    labels=tier_labels("benchmark-output"),
                                                    annotations=await_annotations(args.skip_await)),
                spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                    storage_class_name=args.results.storage_class, access_modes=[args.results.access_mode],
                    resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": "10Gi"})),
                opts=child))
            results = claim_volume("results", f"{self.NAME}-results")
        self.job = restricted_job(
            f"{name}-job", name=self.NAME, namespace=ns, labels=suite_labels,
            annotations={SUITE_VERSION_ANNOTATION: args.version},
            container=k8s.core.v1.ContainerArgs(
                name="isvctl", image=args.image, command=suite_command(args),
                working_dir=RESULTS_MOUNT,  # isvctl writes _output/ under the working directory
                resources=k8s.core.v1.ResourceRequirementsArgs(
                    requests={"cpu": "500m", "memory": "1Gi"}, limits={"cpu": "2", "memory": "4Gi"}),
                volume_mounts=[k8s.core.v1.VolumeMountArgs(name="results", mount_path=RESULTS_MOUNT)],
            ),
            volumes=[results], service_account=self.NAME, automount_token=True, suspend=True,
            pull_secret=args.pull_secret,
            opts=self.child(*after),
        )
        self.register_outputs({"job": self.NAME})
