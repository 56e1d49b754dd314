"""Break-fix hand-over: the suspended return-to-service gate and node handover Jobs in the readiness namespace, and
the admission policy that keeps NVSentinel from returning a node to service by itself (ncp/plan/break_fix.py)."""
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components.kube import ON_DEMAND, Layer, labels
from ncp.plan.break_fix import UNCORDON_GUARD, uncordon_guard


@dataclass(frozen=True)
class BreakFixArgs:
    """Arguments of BreakFix.

    Attributes:
        namespace: the readiness namespace the Job templates live in (Pod Security privileged: the sanitize step
            erases the node's NVMe devices).
        gate_job: the return-to-service Job template (plan.break_fix.gate_job).
        handover_job: the node handover Job template (plan.break_fix.handover_job); None without the site's storage
            image, which carries nvme-cli.
        health_namespace: NVSentinel's namespace, whose service accounts may not uncordon a node.
    """

    namespace: k8s.core.v1.Namespace
    gate_job: dict
    handover_job: Optional[dict]
    health_namespace: str


class BreakFix(Layer):
    def __init__(self, name: str, args: BreakFixArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("BreakFix", name, opts)
        child = self.child(args.namespace)
        self.jobs = []
        for job in (args.gate_job, args.handover_job):
            if job is None:
                continue
            # Suspended until a node command runs a copy: Pulumi must not wait for it to complete.
            metadata = {**job["metadata"], "annotations": {**job["metadata"]["annotations"], **ON_DEMAND}}
            k8s.batch.v1.Job(f"{name}-{job['metadata']['name']}", metadata=metadata, spec=job["spec"], opts=child)
            self.jobs.append(job["metadata"]["name"])
        spec, binding = uncordon_guard(args.health_namespace)
        meta = k8s.meta.v1.ObjectMetaArgs(name=UNCORDON_GUARD, labels=labels("break-fix", UNCORDON_GUARD))
        policy = k8s.admissionregistration.v1.ValidatingAdmissionPolicy(f"{name}-uncordon-guard", metadata=meta,
                                                                        spec=spec, opts=self.child())
        k8s.admissionregistration.v1.ValidatingAdmissionPolicyBinding(
            f"{name}-uncordon-guard-binding", metadata=meta, spec=binding, opts=self.child(policy))
        self.register_outputs({"jobs": self.jobs, "uncordonGuard": UNCORDON_GUARD})
