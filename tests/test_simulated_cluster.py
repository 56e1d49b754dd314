"""The e2e's simulated-cluster helpers without a cluster: nodes follow the hardware profile, stand-in pods follow the
DynamoGraphDeployment, and the placement check catches a pod on a node it must not be on."""
from ncp.readmodel.recorder import run_stack_file
from ncp.plan.names import TENANT_KEY
from ncp.plan.sources import plan_from_stack_file
from tests.e2e import simulated


class FakeApi:
    def __init__(self, nodes):
        self.nodes = nodes

    def get(self, path):
        assert path == "/api/v1/nodes"
        return {"items": self.nodes}


def _placed(pod: dict, node: str) -> dict:
    return {**pod, "spec": {**pod["spec"], "nodeName": node}, "status": {"phase": "Running"}}


def test_nodes_follow_the_profile():
    plan = plan_from_stack_file("prod")
    nodes = simulated.nodes_for(plan, rdma_devices=63)
    gpu = [n for n in nodes if n["metadata"]["labels"][simulated.POOL_LABEL] == "gpu"]
    pooled = [t.name for t in plan.tenants if t.node_pool]  # each pooled tenant also gets its own CPU node
    assert len(gpu) == plan.site.gpu_nodes and len(nodes) == plan.site.gpu_nodes + simulated.CPU_NODES + len(pooled)
    assert gpu[0]["status"]["capacity"]["nvidia.com/gpu"] == "8"
    assert gpu[0]["status"]["capacity"]["rdma/rdma_shared_device_a"] == "63"
    assert gpu[0]["metadata"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-H200"
    assert gpu[0]["metadata"]["labels"]["topology.kubernetes.io/rack"] == "rack-0"
    assert gpu[0]["spec"]["taints"][0]["key"] == "nvidia.com/gpu"


# RA: Visual Architecture Views: "Place control services away from hot-path GPU workers"
def test_standins_follow_the_graph_and_placement_catches_misplaced_pods():
    prod = run_stack_file("prod")
    graph = next(r.inputs for r in prod.custom_resources("DynamoGraphDeployment")
                 if r.inputs["metadata"]["name"] == "reasoning-large")
    pods = simulated.graph_standin_pods(graph)
    by_type = {}
    for pod in pods:
        by_type.setdefault(pod["metadata"]["labels"][simulated.COMPONENT_TYPE_LABEL], []).append(pod)
    workers = by_type["worker"]
    assert all(simulated.gpu_request(pod) == 8 for pod in workers)
    assert all(pod["spec"]["containers"][0]["resources"]["limits"]["rdma/rdma_shared_device_a"] == "1"
               for pod in workers)
    assert all("k8s.v1.cni.cncf.io/networks" in pod["metadata"]["annotations"] for pod in workers)
    frontend = by_type["frontend"][0]
    assert simulated.gpu_request(frontend) == 0

    nodes = simulated.nodes_for(plan_from_stack_file("prod"), rdma_devices=63)
    api = FakeApi(nodes)
    good = simulated.Placement()
    # prod's first pool (nodePool: 9 nodes) is acme-chat's: globex-research owns gpu-9.. and cpu-globex-research.
    own_gpu = next(n["metadata"]["name"] for n in nodes
                   if n["metadata"]["labels"].get(TENANT_KEY) == "globex-research" and "gpu" in n["metadata"]["name"])
    simulated.check_placement(api, [_placed(workers[0], own_gpu), _placed(frontend, "cpu-globex-research")], good)
    assert not good.problems and good.scheduled["tenant-globex-research"] == 2
    bad = simulated.Placement()
    simulated.check_placement(api, [_placed(frontend, "gpu-0"), _placed(workers[0], "cpu-0")], bad)
    assert any("without GPUs landed on GPU node gpu-0" in p and "untolerated" not in p for p in bad.problems)
    assert any("untolerated" in p for p in bad.problems), "the frontend does not tolerate the GPU taint"
    assert any("nvidia.com/gpu.product!=NVIDIA-H200" in p for p in bad.problems)
    assert any("a GPU pod on CPU node cpu-0" in p for p in bad.problems)
