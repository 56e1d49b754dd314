"""What the consumers of our output do with it (issue 15, items 1-5 and 9): each test states the upstream behaviour it
relies on, read in the consumer's source at (or nearest to) the pinned version, and shows the check failing on the
broken input it guards against."""
import ipaddress
import re

import jsonschema
import pytest
import yaml

from components.gpu_enablement import MIG_LAYOUT
from ncp.readmodel.recorder import run_program
from tests.support.synthetic import mutate, secret_keys, site_config
from ncp.plan.catalog import integration_points, load_matrix
from ncp.plan.errors import ConfigError
from ncp.plan.fabric import nv_ipam_node_capacity
from ncp.plan.site_plan import build_plan

MATRIX = load_matrix()


def values(recording, release):
    return recording.releases()[release].inputs["values"]


def config_with(profile, environment="lab", gpu_nodes=4, **settings):
    config = site_config(profile, environment, gpu_nodes=gpu_nodes)
    for path, value in settings.items():
        config = mutate(config, path.replace("__", "."), value)
    return config


def plan_of(config):
    return build_plan(config, secret_keys(config), "Pulumi.test.yaml")


def compose(config):
    return run_program(config, secret_keys(config), stack="t")


def refused(config, key: str) -> str:
    """The ConfigError message for `config`, asserting it names `key` (camelCase, as the user writes it)."""
    with pytest.raises(ConfigError) as error:
        plan_of(config)
    assert any(p.path == f"ncp-inference:{key}" and p.fix for p in error.value.problems), str(error.value)
    return str(error.value)


# --- 1. MIG: the layout must reach the nodes, and the scheduler must see what GFD advertises --------------------------

SINGLE_MIG = {"strategy": "single", "layout": {"3g.71gb": 2}}


def _clusterpolicy_schema(upstream, *path):
    crd = yaml.safe_load((upstream / "gpu-operator" / "nvidia.com_clusterpolicies.yaml").read_text())
    node = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    for key in path:
        node = node["properties"][key]
    return node


def _clusterpolicy_mig_manager(chart_values: dict) -> dict:
    """spec.migManager.config as the chart renders it from values (deployments/gpu-operator/templates/
    clusterpolicy.yaml:644-650@v26.7.0: name when set, and `default` always, quoted)."""
    config = chart_values["migManager"]["config"]
    return {**({"name": config["name"]} if config.get("name") else {}), "default": config["default"]}


def test_mig_manager_config_is_admitted_by_the_clusterpolicy_crd(upstream):
    """NVIDIA/gpu-operator deployments/gpu-operator/crds/nvidia.com_clusterpolicies.yaml:1780-1787@v26.7.0 (the
    shared/upstream copy is byte-identical) allows only "all-disabled" or "" for spec.migManager.config.default;
    anything else and the API server rejects the ClusterPolicy, so no GPU software deploys."""
    schema = _clusterpolicy_schema(upstream, "migManager", "config")
    recording = compose(config_with("hgx-h200", components__gpuOperator__mig=SINGLE_MIG))
    rendered = _clusterpolicy_mig_manager(values(recording, "gpu-operator"))
    jsonschema.validate(rendered, schema)
    with pytest.raises(jsonschema.ValidationError):  # what the program rendered before: the layout name
        jsonschema.validate({**rendered, "default": MIG_LAYOUT}, schema)


def _nfd_rule_matches(rule: dict, device: dict) -> bool:
    """NFD `In` semantics for one pci.device element (kubernetes-sigs/node-feature-discovery pkg/apis/nfd/
    nodefeaturerule/expression.go:124 MatchIn@v0.19.0, the NFD the GPU Operator's chart pulls): every expression's
    attribute value is in its list."""
    (feature,) = rule["matchFeatures"]
    assert feature["feature"] == "pci.device"
    return all(expr["op"] == "In" and device.get(attr) in expr["value"]
               for attr, expr in feature["matchExpressions"].items())


def test_mig_layout_reaches_the_nodes_through_an_nfd_label():
    """mig-manager applies the mig-parted config named by the node label nvidia.com/mig.config (NVIDIA/gpu-operator
    controllers/state_manager.go:49@v26.7.0); with config.default "" the operator sets no label
    (controllers/nodelabeling_controller.go:306-316@v26.7.0), so a NodeFeatureRule labels every NVIDIA GPU node with
    our layout. NFD may write nvidia.com labels: the GPU Operator's NFD master lists it in extraLabelNs
    (deployments/gpu-operator/values.yaml@v26.7.0) and node-feature-discovery pkg/apis/nfd/validate/validate.go:95-115
    @v0.19.0 denies only kubernetes.io namespaces."""
    recording = compose(config_with("hgx-h200", components__gpuOperator__mig=SINGLE_MIG))
    (rule_resource,) = recording.custom_resources("NodeFeatureRule")
    (rule,) = rule_resource.inputs["spec"]["rules"]
    gpu = integration_points().gpu
    layout = rule["labels"][gpu.mig_config_label]
    parted = yaml.safe_load(values(recording, "gpu-operator")["migManager"]["config"]["data"]["config.yaml"])
    assert layout in parted["mig-configs"], "the label must name a config mig-manager has"
    assert _nfd_rule_matches(rule, {"vendor": "10de", "class": "0302"})  # H200 SXM: 3D controller
    assert not _nfd_rule_matches(rule, {"vendor": "15b3", "class": "0200"})  # ConnectX NIC
    assert not _nfd_rule_matches(rule, {"vendor": "10de", "class": "0604"})  # NVSwitch/PCI bridge functions
    # The rule's CRD comes with the GPU Operator's NFD subchart.
    assert recording.releases()["gpu-operator"].urn in rule_resource.dependencies
    assert not compose(config_with("hgx-h200")).custom_resources("NodeFeatureRule"), "no MIG, no label"


def test_single_strategy_capacity_and_product_label_follow_gfd():
    """Under mig.strategy single GFD labels nvidia.com/gpu.product <product>-MIG-<profile> and the device plugin
    advertises every MIG device as one nvidia.com/gpu (NVIDIA/k8s-device-plugin internal/lm/mig-strategy.go:216-241 and
    internal/lm/resource.go:103,160-170@v0.20.0, the device plugin of gpu-operator v26.7.0): the site's queue capacity
    and the serving node selector must use those, not the whole-GPU values."""
    config = config_with("hgx-h200", components__gpuOperator__mig=SINGLE_MIG)
    plan = plan_of(config)
    assert plan.gpu_capacity == 4 * 8 * 2
    assert plan.gpu_product_for("t0") == "NVIDIA-H200-MIG-3g.71gb"
    queues = {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in compose(config).custom_resources("Queue")}
    assert queues["ncp-root"]["resources"]["gpu"]["quota"] == 64
    # A tenant limit above the whole-GPU count is real capacity under MIG, and refused without it.
    assert plan_of(mutate(config, "tenants[0].gpuLimit", 48)).tenants[0].gpu_limit == 48
    assert "the site has 32 GPUs" in refused(mutate(config_with("hgx-h200"), "tenants[0].gpuLimit", 48),
                                             "tenants[0].gpuLimit")
    whole = plan_of(config_with("hgx-h200"))
    assert (whole.gpu_capacity, whole.gpu_product_for("t0")) == (32, "NVIDIA-H200")


def test_mixed_strategy_capacity_counts_kai_gpu_portions():
    """Under mixed, pods request nvidia.com/mig-<N>g.<M>gb and KAI charges N GPUs of quota per device
    (kai-scheduler/KAI-Scheduler pkg/scheduler/api/resource_info/gpu_resource_requirment.go GetGpusQuota and
    pkg/scheduler/api/common_info/resources/mig.go:13-15@v0.16.7); GFD keeps the whole-GPU product label."""
    plan = plan_of(config_with("hgx-h200", components__gpuOperator__mig={
        "strategy": "mixed", "layout": {"3g.71gb": 1, "2g.35gb": 1}}))
    assert plan.gpu_capacity == 4 * 8 * 5
    assert plan.gpu_product_for("t0") == "NVIDIA-H200"


CHAT_ENDPOINT = {  # an endpoint sized for HGX H200 by its own sizing file
    "name": "chat", "tenant": "t0", "backend": "trtllm", "sizing": "sites/prod/sizing/chat-dense.yaml", "router": "kv",
    "model": {"name": "Qwen/Qwen3-32B", "source": "hf://Qwen/Qwen3-32B",
              "revision": "9216db5781bf21249d130ec9da846c4624c16137", "class": "dense-llm"},
    "slo": {"isl": 4000, "osl": 500, "ttftMs": 1000, "tpotMs": 30, "concurrency": 128, "requestCount": 2000,
            "thresholds": {"timeToFirstTokenP95Ms": 1200}},
}


def test_serving_node_selector_uses_the_mig_product_label():
    """The serving workers select nodes by nvidia.com/gpu.product, which GFD rewrites under strategy single
    (k8s-device-plugin internal/lm/resource.go:103@v0.20.0): the composition hands the plan's label to the graph."""
    config = config_with("hgx-h200", gpu_nodes=4, components__gpuOperator__mig={"layout": {"7g.141gb": 1}})
    config["tenants"][0].update(gpuQuota=16, gpuLimit=16)
    config["endpoints"] = [CHAT_ENDPOINT]
    config["components"]["serving"] = {"storage": {
        "modelArtifacts": {"storageClass": "models", "size": "1Ti", "accessMode": "ReadWriteMany"},
        "modelCache": {"storageClass": "nvme", "size": "1Ti"},
        "benchmarkOutput": {"storageClass": "results", "size": "100Gi"}},
        "validation": {"benchmarkImage": "nvcr.io/test-org/tools/aiperf:0.8.0"}}
    graph = compose(config).custom_resources("DynamoGraphDeployment")[0].inputs
    selectors = [service["extraPodSpec"]["nodeSelector"] for service in graph["spec"]["services"].values()
                 if "nodeSelector" in service.get("extraPodSpec", {})]
    assert selectors and all(s[integration_points().gpu.product_label] == "NVIDIA-H200-MIG-7g.141gb"
                             for s in selectors)


# --- 2. Network Operator on a fresh cluster ---------------------------------------------------------------------------

def test_network_operator_renders_no_node_feature_rule_without_its_nfd(upstream):
    """Mellanox/network-operator deployment/network-operator/templates/nodefeaturerules.yaml:1@v26.4.1 renders a
    NodeFeatureRule whenever nfd.deployNodeFeatureRules is true (the chart default, values.yaml:23), even with its NFD
    off; on a fresh cluster no NFD CRD exists yet (the GPU Operator, which brings NFD, installs after this layer) and
    the release fails. The label that rule sets, feature.node.kubernetes.io/pci-15b3.present (pkg/nodeinfo/
    attributes.go:32@v26.4.1), comes from the GPU Operator's NFD worker: PCI class 02 devices labelled by vendor."""
    network_defaults = yaml.safe_load((upstream / "network-operator" / "values.yaml").read_text())
    gpu_defaults = yaml.safe_load((upstream / "gpu-operator" / "values.yaml").read_text())

    def renders_rule(chart_values):
        return {**network_defaults["nfd"], **chart_values["nfd"]}["deployNodeFeatureRules"]

    ours = values(compose(config_with("hgx-h200")), "network-operator")
    assert ours["nfd"]["enabled"] is False
    assert not renders_rule(ours)
    assert renders_rule({"nfd": {"enabled": False}}), "NFD off alone still renders the rule"
    pci = gpu_defaults["node-feature-discovery"]["worker"]["config"]["sources"]["pci"]
    assert "02" in pci["deviceClassWhitelist"] and pci["deviceLabelFields"] == ["vendor"]


# --- 3. nv-ipam rail capacity -----------------------------------------------------------------------------------------

def _allocate_blocks(subnet: ipaddress.IPv4Network, block: int) -> int:
    """A transcription of nv-ipam's controller allocator loop (Mellanox/nvidia-k8s-ipam pkg/ipam-controller/
    allocator/allocator.go:65-73, 88-127, 188-193@network-operator-v26.4.1): the first block starts at network+1 (no
    /31 or /32 here), each next one block addresses later, and a block is valid while its end is inside the subnet and
    is not the broadcast address."""
    nodes, start = 0, int(subnet.network_address) + 1
    while True:
        end = start + block - 1
        if end > int(subnet.broadcast_address) or end == int(subnet.broadcast_address):
            return nodes
        nodes, start = nodes + 1, end + 1


@pytest.mark.parametrize("prefix,block", [(24, 16), (23, 16), (24, 8), (24, 2), (22, 32), (26, 7)])
def test_node_capacity_matches_the_allocator(prefix, block):
    subnet = ipaddress.IPv4Network(f"10.200.0.0/{prefix}")
    assert nv_ipam_node_capacity(subnet, block) == _allocate_blocks(subnet, block)


def test_rail_subnets_must_give_every_gpu_node_a_block():
    """A /24 rail with 16-address blocks holds 15 nodes (see the allocator above): the 16th GPU node gets no rail
    address. Validation checks site.gpuNodes against each rail subnet."""
    rails = {"components__networkOperator__railPrefixLength": 24, "components__networkOperator__perNodeBlockSize": 16}
    assert plan_of(config_with("hgx-h200", gpu_nodes=15, **rails)).rails[0].subnet == "192.168.0.0/24"
    message = refused(config_with("hgx-h200", gpu_nodes=16, **rails), "components.networkOperator.railPrefixLength")
    assert "to 15 nodes" in message and "site.gpuNodes is 16" in message
    assert "components.networkOperator.railPrefixLength' 23" in message, "the fix sets the prefix that fits"
    wider = plan_of(config_with("hgx-h200", gpu_nodes=16,
                                **{**rails, "components__networkOperator__railPrefixLength": 23}))
    assert [r.subnet for r in wider.rails[:2]] == ["192.168.0.0/23", "192.168.2.0/23"]
    refused(config_with("hgx-h200", gpu_nodes=4, components__networkOperator__railSubnet="10.0.0.0/22",
                        components__networkOperator__railPrefixLength=24), "components.networkOperator.railSubnet")


def test_prod_example_rails_hold_its_gpu_nodes():
    """The prod example (its GPU nodes, 8 rails) validates as an example stack."""
    from ncp.plan.sources import plan_from_stack_file
    plan = plan_from_stack_file("prod")
    block = plan.config.components.network_operator.per_node_block_size
    assert all(nv_ipam_node_capacity(ipaddress.IPv4Network(r.subnet), block) >= plan.site.gpu_nodes
               for r in plan.rails)


# --- 4. NVSentinel: enforced remediation acts, the drain timeout is the one in effect, the monitor is scraped ---------

# RA: Break-Fix Architecture: "GPU reset, firmware remediation, repeated XID errors"
def test_enforced_remediation_has_an_executor():
    """fault-remediation only files maintenance requests (RebootNode, GPUReset, ... CRs, janitor chart crds/); the
    janitor executes them. janitor-provider's clients are cloud APIs only (NVIDIA/NVSentinel janitor-provider/pkg/csp/
    client.go NewWithProvider: kind/aws/gcp/azure/oci), so the recorded decision runs the janitor in manual mode
    (charts/janitor/values.yaml config.manualMode): it marks each RebootNode ManualMode/OutsideActorRequired and
    completes it when the node is Ready again (janitor/pkg/controller/rebootnode_controller.go@023702b5), with the
    site's out-of-band system executing the reboot."""
    enforced = values(compose(config_with("hgx-h200", "prod")), "nvsentinel")
    assert enforced["global"]["dryRun"] is False
    assert enforced["global"]["janitor"] == {"enabled": True}
    assert enforced["janitor"]["config"]["manualMode"] is True
    assert "janitorProvider" not in enforced["global"]
    pin = MATRIX.pin("nvsentinel")
    assert any("manual mode" in d and "janitor-provider" in d for d in pin.decisions)
    assert any("out-of-band" in p for p in pin.prerequisites)
    dry = values(compose(config_with("hgx-h200", "lab")), "nvsentinel")
    assert dry["global"]["janitor"] == {"enabled": False} and "janitor" not in dry


def test_drain_timeout_is_the_one_node_drainer_applies():
    """Tenant namespaces drain in DeleteAfterTimeout mode, which force-deletes pods deleteAfterTimeoutMinutes after
    the health event; unset means 60 (NVIDIA/NVSentinel node-drainer/pkg/config/config.go validateAndSetDefaults and
    charts/node-drainer/values.yaml). evictionTimeoutInSeconds only bounds Immediate-mode evictions."""
    drainer = values(compose(config_with("hgx-h200", "prod", components__health__drainTimeoutSeconds=900)),
                     "nvsentinel")["node-drainer"]
    assert drainer["deleteAfterTimeoutMinutes"] == 15
    assert {ns["mode"] for ns in drainer["userNamespaces"]} == {"DeleteAfterTimeout"}
    assert "evictionTimeoutInSeconds" not in drainer
    message = refused(config_with("hgx-h200", "prod", components__health__drainTimeoutSeconds=90),
                      "components.health.drainTimeoutSeconds")
    assert "multiple of 60" in message


def test_nvsentinel_pod_monitor_carries_the_site_selector_labels(upstream):
    """The site's Prometheus selects PodMonitors by components.telemetry.prometheusSelectorLabels; NVSentinel's chart
    takes extra PodMonitor labels at podMonitor.labels (NVIDIA/NVSentinel distros/kubernetes/nvsentinel/values.yaml,
    documented commented out, commit 2083bfa9)."""
    assert "# labels: {}  # Additional labels for the PodMonitor resource" in (
        upstream / "nvsentinel" / "values.yaml").read_text()
    monitor = values(compose(config_with("hgx-h200", components__telemetry__prometheusSelectorLabels={"team": "obs"})),
                     "nvsentinel")["podMonitor"]
    assert monitor["labels"] == {"team": "obs"}


# --- 5. Grove / KAI topology ----------------------------------------------------------------------------------------

GROVE_KEY = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]/)?([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
GROVE_DOMAIN = re.compile(r"^[a-z][a-z0-9-]*$")


# RA: Tenant Compute View: "the platform must preserve enough topology and resource intent"
def test_topology_reaches_grove_as_a_cluster_topology_binding():
    """ai-dynamo/grove operator/api/core/v1alpha1/clustertopologybinding.go@v0.1.0-alpha.11: levels [{domain, key}],
    broadest first, domain ^[a-z][a-z0-9-]*$, key a label key of at most 63 characters, both unique (webhook
    clustertopology/validation/validation.go:43-60). Grove creates the KAI Topology of the binding's name and refuses
    one it does not own (operator/internal/scheduler/kai/topology.go:56-95), so the program creates none."""
    recording = compose(config_with("gb300-nvl72"))
    (binding,) = recording.custom_resources("ClusterTopologyBinding")
    assert binding.inputs["apiVersion"] == "grove.io/v1alpha1"
    levels = binding.inputs["spec"]["levels"]
    assert levels == [{"domain": "zone", "key": "topology.kubernetes.io/zone"},
                      {"domain": "rack", "key": "topology.kubernetes.io/rack"},
                      {"domain": "nvlink-domain", "key": "nvidia.com/gpu.clique"},
                      {"domain": "host", "key": "kubernetes.io/hostname"}]
    assert all(GROVE_DOMAIN.match(lv["domain"]) and GROVE_KEY.match(lv["key"]) and len(lv["key"]) <= 63
               for lv in levels)
    assert len({lv["domain"] for lv in levels}) == len({lv["key"] for lv in levels}) == len(levels)
    assert not GROVE_DOMAIN.match("nvlink_domain"), "the pattern check can fail"
    assert not recording.custom_resources("Topology")
    assert recording.releases()["grove"].urn in binding.dependencies
    record = next(r.inputs["data"] for r in recording.of_type("kubernetes:core/v1:ConfigMap")
                  if r.inputs["metadata"]["name"] == "ncp-baseline-record")
    assert "nvidia.com/gpu.clique" in record["topologyLevels"], "the site learns which labels nodes must carry"


def test_topology_aware_profiles_declare_every_level_label():
    """KAI leaves a node out of a topology unless it carries every level's label (kai-scheduler/KAI-Scheduler
    pkg/scheduler/plugins/topology/common.go:69-77 isNodePartOfTopology@v0.16.7): a topology-aware stack needs a
    profile that declares the rack level (and the NVLink domain on multi-node NVLink, checked by the profile schema)."""
    message = refused(config_with("cloud-h100", components__scheduling__topologyAware=True),
                      "components.scheduling.topologyAware")
    assert "topologyLabels.rack" in message
    assert plan_of(config_with("hgx-h200", components__scheduling__topologyAware=True)).topology_aware


# --- 9. DOCA driver version, KAI default queues -----------------------------------------------------------------------

@pytest.mark.parametrize("version", ["23.10-0.2.2.0", "24.01-0.3.3.1-0", "doca3.1-24.01-0.3.3.1-0",
                                     "doca3.2.0-25.10-1.2.8.0-2", "25.01-0.6.0.0-0-6.8.0-1019-oracle-ubuntu22.04-arm64",
                                     "sha256:" + "9a" * 32])
def test_doca_driver_versions_the_webhook_accepts_pass(version):
    """Examples from the webhook's own message (Mellanox/network-operator api/v1alpha1/validator/nicpolicy_webhook.go
    :675, pattern :942 isValidOFEDVersion@v26.4.1)."""
    plan = plan_of(config_with("hgx-b200", components__networkOperator__nicDriver="managed",
                               components__networkOperator__docaDriverVersion=version))
    assert plan.config.components.network_operator.doca_driver_version == version


@pytest.mark.parametrize("version", ["latest", "3.2.0", "doca3.2.0", "25.10", "sha256:abc"])
def test_doca_driver_versions_the_webhook_rejects_are_refused(version):
    message = refused(config_with("hgx-b200", components__networkOperator__nicDriver="managed",
                                  components__networkOperator__docaDriverVersion=version),
                      "components.networkOperator.docaDriverVersion")
    assert "the Network Operator accepts" in message


def test_kai_chart_default_queues_are_off(upstream):
    """kai-scheduler/KAI-Scheduler deployments/kai-scheduler/templates/default-queue.yaml@v0.16.7 creates
    default-parent-queue/default-queue (values.yaml:279-309: quota 0, limit -1, overQuotaWeight 1) on install by
    default: a top-level sibling of ncp-root that borrows idle GPUs outside every tenant's limit."""
    defaults = yaml.safe_load((upstream / "kai-scheduler" / "values.yaml").read_text())["defaultQueue"]
    assert defaults["createDefaultQueue"] is True and defaults["parentResources"]["gpu"]["limit"] == -1
    assert values(compose(config_with("lab")), "kai-scheduler")["defaultQueue"] == {"createDefaultQueue": False}
    assert any("createDefaultQueue false" in d for d in MATRIX.pin("kaiScheduler").decisions)
