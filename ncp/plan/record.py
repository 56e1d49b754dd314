"""The baseline record: what the site runs and why, kept in the cluster (ConfigMap ncp-baseline-record, one YAML
document per key) for operators and auditors. Its schema is BaselineRecord."""
from typing import Any, Optional

import yaml
from pydantic import Field

from ncp.plan.break_fix import node_baselines
from ncp.plan.layers import BASELINE_NAMESPACE
from ncp.plan.names import TRUSTED_KEYS
from ncp.plan.site_plan import RDMA_RAIL_ISOLATION, SitePlan
from ncp.plan.strict import StrictModel

RECORD_NAME = "ncp-baseline-record"  # the ConfigMap in BASELINE_NAMESPACE (the policy pack and the gate read it)
RECORD_NAMESPACE = BASELINE_NAMESPACE


class BaselineRecord(StrictModel):
    site: dict = Field(description="name, environment, gpuNodes, kubernetesVersion")
    hardware_profile: dict = Field(description="the hardware profile as validated")
    versions: dict[str, dict] = Field(description="deployed chart -> chart, version, raMatrix, deviation, decisions")
    local_decisions: list[dict] = Field(description="the stack's localDecisions and the deployed charts' own")
    chart_mirror: Optional[str] = Field(description="the site's chart mirror, when charts come from one")
    prerequisites: dict[str, list[str]] = Field(description="deployed chart -> what the site must provide for it")
    validation_evidence: Optional[dict] = Field(description="where the site's acceptance evidence is kept")
    gpu_sharing: dict = Field(description="mode exclusive, mig (strategy, layout) or time-slicing (replicas)")
    tenant_image_pulls: str = Field(description="how tenant pods authenticate to nvcr.io")
    tenant_node_pools: dict[str, dict] = Field(description="site step: label and taint each tenant's nodes")
    tenant_rdma_rails: Optional[str] = Field(description="what isolates tenants on the RDMA rails (a fabric step)")
    topology_levels: list[dict] = Field(
        description="KAI ignores a node without every level's label: each GPU node must carry these keys")
    serving: dict[str, dict] = Field(description="endpoint -> tenant, backend, mode, GPUs, model, sizing, image")
    inference_services: dict[str, dict] = Field(description="Triton service -> tenant, GPUs, images, artifact")
    storage_tiers: dict[str, dict] = Field(description="storage tier -> class, access mode, size")
    node_baseline: dict[str, dict] = Field(
        description="node pool (tenant or shared) -> what a node must show to return to service: driver, GPU "
                    "product and count, MIG layout, labels, NCCL bus bandwidth threshold (ncp node "
                    "return-to-service reads it from the cluster)")

    def documents(self) -> dict[str, Any]:
        """Key -> value, camelCase, one YAML document each in the record ConfigMap."""
        return self.model_dump(by_alias=True)


def config_map_data(documents: dict[str, Any]) -> dict[str, str]:
    """The record ConfigMap's data: one YAML document per key (strings as they are)."""
    return {key: value if isinstance(value, str) else yaml.safe_dump(value, sort_keys=True)
            for key, value in documents.items()}


def local_decisions(plan: SitePlan) -> list[dict]:
    decisions = [d.model_dump(by_alias=True, exclude_none=True) for d in plan.config.local_decisions]
    for component in plan.layers.charts:
        pin = plan.matrix.pin(component)
        if pin.local_decision:
            decision = plan.config.components.telemetry.prometheus_stack.local_decision or pin.local_decision
            decisions.append({"component": component, **decision.model_dump(by_alias=True, exclude_none=True)})
    return decisions


def gpu_sharing(plan: SitePlan) -> dict:
    if plan.mig:
        return {"mode": "mig", "strategy": plan.mig.strategy, "layout": dict(plan.mig.layout),
                "nodePool": plan.mig.node_pool}
    if plan.time_slicing:
        return {"mode": "time-slicing", "replicas": plan.time_slicing.replicas,
                "validationEvidence": plan.time_slicing.validation_evidence}
    return {"mode": "exclusive"}


def _versions(plan: SitePlan) -> dict[str, dict]:
    pins = {c: plan.matrix.pin(c) for c in plan.layers.charts}
    return {c: {"chart": pin.chart, "version": pin.version, "raMatrix": pin.ra_matrix, "deviation": pin.deviation,
                "decisions": pin.decisions} for c, pin in pins.items()}


def _serving(plan: SitePlan) -> dict[str, dict]:
    return {e.name: {"tenant": e.tenant.name, "backend": e.endpoint.backend, "mode": e.mode, "gpus": e.gpus,
                     "model": e.endpoint.model.model_dump(by_alias=True), "sizing": e.sizing_file,
                     "estimate": e.estimate, "image": e.image} for e in plan.endpoints}


def _inference_services(plan: SitePlan) -> dict[str, dict]:
    return {s.name: {"tenant": s.tenant.name, "gpus": s.gpu_units, "server": s.server_image,
                     "builder": s.builder_image, "engineDir": s.engine_dir,
                     "artifact": s.service.artifact.model_dump(by_alias=True)} for s in plan.inference_services}


def baseline_record(plan: SitePlan) -> BaselineRecord:
    evidence = plan.site.validation_evidence
    storage = plan.config.components.serving.storage
    return BaselineRecord(
        site={"name": plan.site.name, "environment": plan.environment.value, "gpuNodes": plan.site.gpu_nodes,
              "kubernetesVersion": plan.kubernetes_version},
        hardware_profile=plan.profile.model_dump(by_alias=True, mode="json"),
        versions=_versions(plan),
        local_decisions=local_decisions(plan),
        chart_mirror=plan.config.components.chart_mirror,
        prerequisites={c: plan.matrix.pin(c).prerequisites for c in plan.layers.charts
                       if plan.matrix.pin(c).prerequisites},
        # trustedKeys unset is the site folder's file (the stack's name fills {stack})
        validation_evidence={**evidence.model_dump(by_alias=True),
                             "trustedKeys": evidence.trusted_keys or TRUSTED_KEYS} if evidence else None,
        gpu_sharing=gpu_sharing(plan),
        tenant_image_pulls=plan.config.components.tenancy.pull_credentials.value,
        tenant_node_pools=plan.tenant_node_pools,
        tenant_rdma_rails=RDMA_RAIL_ISOLATION if plan.network_enabled and plan.tenant_node_pools else None,
        topology_levels=[vars(level) for level in plan.topology_levels] if plan.topology_aware else [],
        serving=_serving(plan),
        inference_services=_inference_services(plan),
        storage_tiers={tier: value.model_dump(by_alias=True) for tier, value in (storage.named() if storage else [])},
        node_baseline=node_baselines(plan),
    )
