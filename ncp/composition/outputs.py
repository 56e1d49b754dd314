"""The stack outputs every stack exports (`pulumi stack output`), typed: tools and tests read them by these names."""
from dataclasses import dataclass, fields
from typing import Any

from ncp.composition.wiring import Wiring


@dataclass(frozen=True)
class StackOutputs:
    site: str
    environment: str
    hardwareProfile: str
    kubernetesVersion: str
    namespaces: dict[str, str]  # layer -> its namespace
    tenantNamespaces: Any  # tenant -> namespace (resolved by the engine)
    queues: Any  # the KAI queues
    versions: dict[str, str]  # deployed chart -> pinned version
    networks: list  # the rail attachments
    remediation: str
    telemetryRules: Any
    healthRelease: Any
    endpoints: dict[str, dict]  # endpoint -> url, mode, gpus, tenant, sizing
    inferenceServices: dict[str, dict]  # Triton service -> url, gpus, tenant, engineDir

    @classmethod
    def of(cls, w: Wiring) -> "StackOutputs":
        plan = w.plan
        return cls(
            site=plan.site.name, environment=plan.environment.value, hardwareProfile=plan.profile.name,
            kubernetesVersion=plan.kubernetes_version,
            namespaces={ns.layer: ns.name for ns in plan.layers.namespaces},
            tenantNamespaces=w.required("tenancy").namespaces, queues=w.required("scheduling").queues,
            versions=w.wired.versions, networks=w.networks,
            remediation=plan.remediation, telemetryRules=w.required("telemetry").rules_name,
            healthRelease=w.required("health").release.name, endpoints=w.endpoints,
            inferenceServices=w.inference_services)

    def exports(self) -> dict:
        """Name -> value, shallow: the values hold Pulumi Outputs, which cannot be copied."""
        return {field.name: getattr(self, field.name) for field in fields(self)}
