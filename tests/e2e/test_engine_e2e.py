"""The real Pulumi engine against a local kube-apiserver: preview, up, a no-change preview, checks through the API
server, every pod the stack creates admitted and placed on simulated GPU nodes (KWOK, the real kube-scheduler), the
tenant guardrails refusing what they must, the policy pack blocking a violating config, and a destroy that leaves
nothing behind.

Needs the engine (tools/e2e/bootstrap.sh; scripts/test.sh runs it) and the upstream CRDs in ../shared/upstream."""
import pytest
import yaml

from ncp.plan.sources import plan_from_stack_file
from tests.e2e import simulated
from tests.e2e.engine import pulumi, stack_env

STACK = "e2e"
TENANT = "tenant-dev"


@pytest.fixture(scope="module")
def deployed(cluster, project, tmp_path_factory):
    api, env = cluster
    env = stack_env(env, tmp_path_factory.mktemp("backend"))
    pulumi(project, env, "stack", "init", STACK)
    preview = pulumi(project, env, "preview")
    assert "kubernetes:helm.sh/v3:Release" in preview.stdout and "to create" in preview.stdout
    pulumi(project, env, "up", "--yes", "--skip-preview")
    pulumi(project, env, "preview", "--expect-no-changes")
    return api, env, project


@pytest.fixture(scope="module")
def placement(deployed, tmp_path_factory):
    api, _, _ = deployed
    return simulated.prove_workloads(api, plan_from_stack_file(STACK), tmp_path_factory.mktemp("readiness"))


def test_api_objects(deployed):
    api, _, _ = deployed
    namespace = api.get("/api/v1/namespaces/tenant-dev")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    quota = api.get("/api/v1/namespaces/tenant-dev/resourcequotas/tenant-quota")
    assert quota["spec"]["hard"]["requests.nvidia.com/gpu"] == "10"
    deny = api.get("/apis/networking.k8s.io/v1/namespaces/tenant-dev/networkpolicies/default-deny")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    queue = api.get("/apis/scheduling.run.ai/v2/queues/tenant-dev")
    assert queue["spec"]["parentQueue"] == "ncp-root"
    assert queue["spec"]["resources"]["gpu"]["quota"] == 10
    graph = api.get("/apis/nvidia.com/v1alpha1/namespaces/tenant-dev/dynamographdeployments/chat-dense")
    worker = graph["spec"]["services"]["TRTLLMWorker"]
    assert (worker["replicas"], worker["resources"]["limits"]["gpu"]) == (2, "4"), "the sizing file's layout"
    assert graph["metadata"]["annotations"]["nvidia.com/kai-scheduler-queue"] == "tenant-dev"
    pool = api.get("/apis/inference.networking.k8s.io/v1/namespaces/tenant-dev/inferencepools/chat-dense")
    assert pool["spec"]["targetPorts"] == [{"number": 8000}]
    assert api.get("/apis/monitoring.coreos.com/v1/namespaces/tenant-dev/podmonitors/chat-dense")
    assert api.get("/apis/batch/v1/namespaces/tenant-dev/jobs/chat-dense-aiperf")["spec"]["suspend"] is True
    # ModelExpress runs in the tenant's namespace (docs/decisions/0005-model-express-per-tenant.md).
    assert api.get("/apis/apps/v1/namespaces/tenant-dev/deployments/modelexpress")
    assert api.get("/apis/apps/v1/namespaces/dynamo-system/deployments/modelexpress") is None
    policy = api.get("/apis/mellanox.com/v1alpha1/nicclusterpolicies/nic-cluster-policy")
    assert "rdmaSharedDevicePlugin" in policy["spec"] and "nvIpam" in policy["spec"]
    pool0 = api.get("/apis/nv-ipam.nvidia.com/v1alpha1/namespaces/nvidia-network-operator/ippools/rail-0")
    assert pool0["spec"]["subnet"] == "10.210.0.0/24"
    # Each namespace on the rails has its own attachments (the readiness namespace here), the operator's none (#22).
    assert api.get("/apis/k8s.cni.cncf.io/v1/namespaces/ncp-readiness/network-attachment-definitions/rail-1")
    assert api.get("/apis/k8s.cni.cncf.io/v1/namespaces/nvidia-network-operator/network-attachment-definitions/"
                   "rail-1") is None
    rendered = api.get("/api/v1/namespaces/nvsentinel/configmaps/nvsentinel-rendered-values")
    values = yaml.safe_load(rendered["data"]["values.yaml"])
    assert values["global"]["dryRun"] is True
    assert values["mongodb-store"]["mongodb"]["auth"]["existingSecret"] == "nvsentinel-datastore-external"
    gpu_values = yaml.safe_load(api.get("/api/v1/namespaces/gpu-operator/configmaps/gpu-operator-rendered-values")[
        "data"]["values.yaml"])
    assert gpu_values["driver"]["rdma"] == {"enabled": True, "useHostMofed": True}
    record = api.get("/api/v1/namespaces/ncp-system/configmaps/ncp-baseline-record")
    assert yaml.safe_load(record["data"]["hardwareProfile"])["name"] == "hgx-h200"

    assert api.get("/apis/apps/v1/namespaces/tenant-dev/deployments/chat-dense-epp"), "the pool's endpoint picker"
    route = api.get("/apis/gateway.networking.k8s.io/v1/namespaces/tenant-dev/httproutes/chat")
    assert route["spec"]["rules"][0]["backendRefs"] == [
        {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": "chat-dense", "weight": 100}]
    assert api.get("/apis/apps/v1/namespaces/tenant-dev/deployments/vision-classify"), "the Triton server"
    assert api.get("/apis/batch/v1/namespaces/tenant-dev/jobs/vision-classify-engine-build")
    assert api.get("/apis/networking.k8s.io/v1/namespaces/tenant-dev/networkpolicies/vision-classify-model-source")


def test_every_pod_is_admitted_and_placed(placement):
    """Staging, benchmark, engine-build and validation Jobs, ModelExpress, the endpoint picker and the Triton server,
    and stand-ins for the graph's frontend and GPU workers (RDMA, rails): admitted under their namespace's Pod
    Security level, on a node their selectors and tolerations allow; no pod without GPUs on a GPU node."""
    print(placement.report("hgx-h200, e2e stack"))
    assert not placement.problems, "\n".join(placement.problems)
    assert {"vision-classify-engine-build", "vision-classify"} <= placement.owners[TENANT], placement.owners[TENANT]
    assert placement.phases[TENANT]["Succeeded"] >= 2, "the staging and benchmark Jobs ran to completion"
    # The readiness Jobs: the NCCL test's two pods on two GPU nodes (rails, RDMA resource, KAI's scheduler name)
    # and one fio pod per storage tier, admitted under the namespace's privileged level and run to completion.
    assert placement.phases["ncp-readiness"]["Succeeded"] >= 2 + 3, placement.report("readiness")


def test_readiness_run_passes_on_the_logs_the_pods_printed(placement):
    """`evidence.readiness_run` ran them: its ssh key, the Job controller's pods on the KWOK GPU nodes, each log
    read back through the API server (KWOK plays the kubelet) and judged by the profile's thresholds."""
    record = placement.readiness
    assert record is not None and record.passed, record
    rails = [rail.interface for rail in plan_from_stack_file(STACK).rails]
    assert rails and {row.metric: row.status for row in record.checks} == {
        "ncclAllReduceBusBandwidth": "PASS", "ncclOutOfBoundsValues": "PASS",
        **{f"ncclRailBusBandwidth.{rail}": "PASS" for rail in rails},
        **{f"storageRead.{tier}": "PASS" for tier in ("modelArtifacts", "modelCache", "benchmarkOutput")}}


def test_tenant_guardrails_refuse(deployed, placement):
    simulated.prove_tenant_guardrails(deployed[0], plan_from_stack_file(STACK), placement, "hgx-h200, e2e stack")


def test_platform_priority_is_refused_in_a_tenant_namespace(deployed, placement):
    simulated.prove_platform_priority_refused(deployed[0], plan_from_stack_file(STACK), placement)


def test_policy_pack_blocks_a_violating_config(deployed):
    api, env, project = deployed
    # The policy pack, through the CLI, blocks the staging stack under the prod pack config: its serving image is
    # pinned by tag (config requires digests only in prod, and refuses the pack's other image rules itself:
    # tests/test_cross_field.py).
    blocked = pulumi(project, env, "preview", "--policy-pack", "policy", "--policy-pack-config",
                     "policy/config/prod.json", expect=1)
    output = blocked.stdout + blocked.stderr
    assert "image-references" in output
    assert "must be pinned by digest" in output, "the e2e serving image is pinned by tag, not digest"
    assert "mandatory" in output


def test_destroy_leaves_nothing(deployed):
    api, env, project = deployed
    simulated.remove_graph_standins(api)
    pulumi(project, env, "destroy", "--yes", "--skip-preview")
    for path in ("/api/v1/namespaces/tenant-dev", "/api/v1/namespaces/ncp-system", "/api/v1/namespaces/nvsentinel",
                 "/api/v1/namespaces/nvidia-network-operator",
                 "/apis/mellanox.com/v1alpha1/nicclusterpolicies/nic-cluster-policy",
                 "/apis/scheduling.run.ai/v2/queues/tenant-dev", "/apis/scheduling.run.ai/v2/queues/ncp-root",
                 "/apis/scheduling.k8s.io/v1/priorityclasses/ncp-serving",
                 "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/isv-ncp-validation"):
        assert api.wait_gone(path), f"{path} is still there after destroy"
    leftovers = api.get("/api/v1/namespaces?labelSelector=app.kubernetes.io%2Fpart-of%3Dncp-inference")
    assert leftovers["items"] == []
