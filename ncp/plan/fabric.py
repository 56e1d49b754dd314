"""Facts of the site's fabric and topology both the rules and the plan derive from: topology-aware placement, the
rail subnets nv-ipam hands out, and what each tenant's workers need beyond Pod Security `restricted`."""
import ipaddress
import itertools

from ncp.plan.config import StackConfig
from ncp.plan.endpoints import rdma_workers
from ncp.plan.profile import HardwareProfile


# RA: Physical Architecture: "Do not inherit HGX or NVL72 assumptions by default."
def topology_aware(config: StackConfig, profile: HardwareProfile) -> bool:
    configured = config.components.scheduling.topology_aware
    return profile.nvlink.multi_node if configured is None else configured


def tenant_needs(endpoints, network_enabled: bool) -> dict[str, tuple[bool, bool]]:
    """tenant -> (RDMA workers, KV offload to disk) over its endpoints: what its workers need beyond Pod Security
    `restricted`."""
    needs: dict[str, tuple[bool, bool]] = {}
    for endpoint in endpoints:
        rdma, kvbm = needs.get(endpoint.tenant.name, (False, False))
        needs[endpoint.tenant.name] = (rdma or rdma_workers(endpoint, network_enabled),
                                       kvbm or endpoint.kv_offload_gb is not None)
    return needs


def rail_subnets(config: StackConfig) -> list[ipaddress.IPv4Network]:
    net = config.components.network_operator
    subnet = ipaddress.IPv4Network(net.rail_subnet)
    if net.rail_prefix_length < subnet.prefixlen:
        return []
    return list(itertools.islice(subnet.subnets(new_prefix=net.rail_prefix_length), len(net.rail_interfaces)))



def nv_ipam_node_capacity(subnet: ipaddress.IPv4Network, block_size: int) -> int:
    """Nodes an nv-ipam IPPool can give a block to. The allocator starts the first block at network+1 and accepts a
    block only if it ends inside the subnet and before the broadcast address (Mellanox/nvidia-k8s-ipam
    pkg/ipam-controller/allocator/allocator.go:65-73 getFirstStartIP, :188-193 allocationValid
    at the networkOperator pin). The gateway only costs a block when blocks are one address (:113); ours are >= 2, so
    it takes one address of the first node's block."""
    return (subnet.num_addresses - 2) // block_size


def rail_prefix_for(nodes: int, block_size: int) -> int:
    """Longest prefix whose subnet gives `nodes` blocks of `block_size`."""
    return 32 - (nodes * block_size + 2 - 1).bit_length()
