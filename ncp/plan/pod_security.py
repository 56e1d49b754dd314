"""Pod Security Admission levels: one type for the level a namespace enforces and why, whether the matrix gives it
for a chart's namespace or the plan derives it for a tenant's.

Decision (issue 22), privileged tenant namespaces: confined, not removed. RDMA workers pin memory with IPC_LOCK as
root (Dynamo disagg-communication guide, data/dynamo-backends.yaml rdmaCapabilities): Kubernetes has no ambient
capabilities, so an added capability is effective only for UID 0, and Pod Security baseline and restricted refuse
IPC_LOCK at any UID; running the workers as non-root would rest on the container runtime's memlock limit, a node
setting the program neither sets nor can check. KVBM's disk tier reads the node's udev database through a read-only
hostPath (kvbm-guide.md:460-506, ai-dynamo/dynamo#6032), which both levels refuse. So these tenants keep Pod
Security `privileged`, and (1) the Tenancy layer's admission policies (components/tenancy/admission.py) admit in
their namespace only these exceptions: no privileged container, host namespace, hostPort or unconfined profile, no
capability but IPC_LOCK, no hostPath but /run/udev read-only; (2) the plan runs such a tenant on its own nodes in
every environment with other tenants (plan.site_plan _excepted_tenant_problems)."""
from typing import Literal

from pydantic import Field

from ncp.plan.strict import StrictModel

PodSecurityLevel = Literal["privileged", "baseline", "restricted"]
PSA_LEVELS: tuple[PodSecurityLevel, ...] = ("privileged", "baseline", "restricted")


class PodSecurity(StrictModel):
    """The Pod Security Standard a namespace enforces (it always warns and audits at restricted), and why."""

    level: PodSecurityLevel
    reason: str = Field(min_length=20)


RESTRICTED = PodSecurity(level="restricted", reason="only the program's own restricted pods run in it")

RDMA_REASON = ("RDMA workers register memory (ibv_reg_mr) and need IPC_LOCK as root, which Pod Security restricted "
               "and baseline refuse (Dynamo disagg-communication guide; data/dynamo-backends.yaml rdmaCapabilities)")
KVBM_REASON = ("KV offload to disk: cuFile reads the node's udev database to register the KV block manager's disk "
               "files, a read-only hostPath Pod Security restricted and baseline refuse (Dynamo kvbm-guide; "
               "data/dynamo-backends.yaml kvbm.udevHostPath)")


def privileged_for(reasons: list[str]) -> PodSecurity:
    """`privileged` for a tenant whose workers need what restricted and baseline refuse, with every reason."""
    return PodSecurity(level="privileged", reason="; ".join(reasons))
