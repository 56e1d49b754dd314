"""Pod Security Admission levels: one type for the level a namespace enforces and why, whether the matrix gives it
for a chart's namespace or the plan derives it for a tenant's."""
from typing import Literal

from pydantic import Field

from plan.strict import StrictModel

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
