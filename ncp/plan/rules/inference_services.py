"""Rules over inference services (Triton + TensorRT): site settings, tenant, pinned artifact, the GPU the engine is
built for, MIG slice, thresholds and the tenant's GPU budget. Every problem names the service's config path and the
fix."""
from typing import Iterator, Optional

from ncp.plan.catalog import CompatibilityMatrix, load_allowlists
from ncp.plan.config import Environment, MigSettings, StackConfig, Tenant
from ncp.plan.endpoint_plan import EndpointPlan
from ncp.plan.errors import Problem, rm_command, set_command
from ncp.plan.gpu_partition import tenant_mig
from ncp.plan.inference_service_config import InferenceService
from ncp.plan.inference_services import BUILDER, KEY, MEASURED, SERVER, InferenceServicePlan
from ncp.plan.names import PROJECT
from ncp.plan.profile import HardwareProfile
from ncp.plan.rules.endpoints import STAGEABLE_SCHEMES, STORAGE_FIX, benchmark_image_fix, unknown_tenants
from ncp.plan.rules.registry import RuleInputs


def _path(index: int, key: str = "") -> str:
    return f"{PROJECT}:{KEY}[{index}]" + (f".{key}" if key else "")


def _with_tenant(config: StackConfig) -> Iterator[tuple[int, InferenceService, Tenant]]:
    tenants = {t.name: t for t in config.tenants}
    for index, service in enumerate(config.inference_services):
        if service.tenant in tenants:
            yield index, service, tenants[service.tenant]



def _gpu_problems(index: int, service: InferenceService, profile: HardwareProfile, config: StackConfig,
                  mig: Optional[MigSettings]) -> list[Problem]:
    """mig: the layout under the service's tenant (plan.gpu_partition.tenant_mig)."""
    problems = []
    if service.engine.gpu_product != profile.gpu.product_label:
        problems.append(Problem(
            _path(index, "engine.gpuProduct"),
            f"is {service.engine.gpu_product!r}; the site's GPUs are {profile.gpu.product_label} (profile "
            f"{profile.name}). A TensorRT engine only runs on the GPU model it was built for, so Triton would refuse "
            "to load it",
            "set it (the engine-build Job then builds a new engine on that GPU): "
            + set_command(_path(index, "engine.gpuProduct"), profile.gpu.product_label)))
    wanted = service.gpus.mig_profile
    site_mig = config.components.gpu_operator.mig
    if mig is None and wanted is not None and site_mig is not None:
        problems.append(Problem(_path(index, "gpus.migProfile"),
                                f"tenant {service.tenant}'s nodes have whole GPUs; the MIG layout partitions tenant "
                                f"{site_mig.node_pool}'s nodes (components.gpuOperator.mig.nodePool)",
                                "remove migProfile to use whole GPUs: " + rm_command(_path(index, "gpus.migProfile"))
                                + f", or serve it from tenant {site_mig.node_pool}: "
                                + set_command(_path(index, "tenant"), f"{site_mig.node_pool}")))
    elif mig is None and wanted is not None:
        problems.append(Problem(_path(index, "gpus.migProfile"), "the site has no MIG layout "
                                "(components.gpuOperator.mig), so no node offers a MIG slice",
                                "remove migProfile to use whole GPUs: " + rm_command(_path(index, "gpus.migProfile"))
                                + ", or partition the site's GPUs: "
                                + set_command(f"{PROJECT}:components.gpuOperator.mig.layout",
                                              "'{<profile>: <count>}'")))
    elif mig is not None and mig.strategy != "single":
        problems.append(Problem(_path(index, "gpus.migProfile"),
                                "inference services run on MIG strategy single only (the device plugin then offers "
                                "each slice as nvidia.com/gpu on nodes labelled <product>-MIG-<profile>)",
                                set_command(f"{PROJECT}:components.gpuOperator.mig.strategy", "single")))
    elif mig is not None and wanted not in mig.layout:
        problems.append(Problem(_path(index, "gpus.migProfile"),
                                f"is {wanted!r}; the tenant's GPUs are partitioned as {', '.join(mig.layout)} "
                                "(components.gpuOperator.mig.layout), so the server gets one of those slices",
                                set_command(_path(index, "gpus.migProfile"), next(iter(mig.layout)))))
    return problems


def _example_problems(index: int, service: InferenceService, environment: Environment) -> list[Problem]:
    """Prod deploys only artifacts the site pinned: an example's marked placeholders stop it."""
    if environment != Environment.PROD:
        return []
    artifact = service.artifact
    return [Problem(_path(index, f"artifact.{key}"), f"is the example placeholder {getattr(artifact, key)!r}",
                    f"pin the {'commit of ' + artifact.source if key == 'revision' else 'sha256 of ' + artifact.file} "
                    f"you serve: pulumi config set --path '{_path(index, 'artifact.' + key)}' <value>")
            for key in artifact.example_fields()]


def _artifact_problems(index: int, service: InferenceService) -> list[Problem]:
    allowed = load_allowlists().model_sources
    source = service.artifact.source
    if not any(source.startswith(prefix) for prefix in allowed):
        return [Problem(_path(index, "artifact.source"), f"{source!r} is not an allowlisted source",
                        set_command(_path(index, "artifact.source"), f"<one of: {', '.join(allowed)}...>")
                        + " (data/allowlists.yaml)")]
    if not source.startswith(STAGEABLE_SCHEMES):
        return [Problem(_path(index, "artifact.source"), "has no engine-build recipe for this scheme",
                        set_command(_path(index, "artifact.source"), f"<one of: {', '.join(STAGEABLE_SCHEMES)}...>"))]
    return []


def _threshold_problems(index: int, service: InferenceService) -> list[Problem]:
    """Token metrics exist only for token streams: a threshold on them could never be judged."""
    thresholds = service.slo.thresholds
    fields = type(thresholds).model_fields
    problems = [Problem(_path(index, f"slo.thresholds.{fields[check.field].alias or check.field}"),
                        f"AIPerf reports {check.tag} only for token streams; a KServe v2 inference run has none",
                        "judge requests instead (requestLatency*Ms, requestThroughputMin or requestCountMin): "
                        + rm_command(_path(index, f"slo.thresholds.{fields[check.field].alias or check.field}"))
                        + " && " + set_command(_path(index, "slo.thresholds.requestLatencyP95Ms"), "<ms>"))
                for check in thresholds.checks() if check.tag not in MEASURED]
    if thresholds.preprocessing_time_avg_ms is not None and service.preprocessing is None:
        problems.append(Problem(_path(index, "slo.thresholds.preprocessingTimeAvgMs"),
                                "the service has no preprocessing stage to time",
                                "remove the threshold: "
                                + rm_command(_path(index, "slo.thresholds.preprocessingTimeAvgMs"))
                                + ", or add preprocessing (DALI): "
                                + set_command(_path(index, "preprocessing.resize"), "'[<height>, <width>]'")))
    return problems


def _site_problems(config: StackConfig, matrix: CompatibilityMatrix) -> list[Problem]:
    serving = config.components.serving
    problems = []
    if serving.storage is None:
        problems.append(Problem(f"{PROJECT}:components.serving.storage",
                                f"is required when {KEY} are defined (engines live on the modelArtifacts tier)",
                                STORAGE_FIX))
    if serving.validation.benchmark_image is None:
        problems.append(Problem(f"{PROJECT}:components.serving.validation.benchmarkImage",
                                f"is required when {KEY} are defined (AIPerf publishes no container image)",
                                benchmark_image_fix(matrix)))
    if config.site.environment == Environment.PROD:
        for key, workload in ((SERVER, "triton"), (BUILDER, "tensorrt")):
            if key not in serving.image_digests:
                problems.append(Problem(f"{PROJECT}:components.serving.imageDigests.{key}",
                                        "is required in prod: serving and engine-build images are pinned by digest",
                                        f"pulumi config set --path '{PROJECT}:components.serving.imageDigests.{key}' "
                                        f"sha256:<digest of {matrix.workload(workload).images[key]}>"))
    return problems


def _budget_problems(config: StackConfig, plans: list[InferenceServicePlan],
                     endpoints: list[EndpointPlan]) -> list[Problem]:
    """Serving runs on guaranteed GPUs: a tenant's endpoints and services together stay within its gpuQuota."""
    problems = []
    for index, service in enumerate(config.inference_services):
        tenant = next((p.tenant for p in plans if p.service is service), None)
        if tenant is None:
            continue
        llm = sum(e.gpus for e in endpoints if e.tenant.name == tenant.name)
        mine = sum(p.gpu_units for p in plans if p.tenant.name == tenant.name)
        if llm + mine > tenant.gpu_quota and service is next(p.service for p in plans if p.tenant.name == tenant.name):
            problems.append(Problem(_path(index, "replicas"),
                                    f"tenant {tenant.name}'s services need {mine} GPUs"
                                    f"{f' beside its endpoints {llm}' if llm else ''}; its gpuQuota is "
                                    f"{tenant.gpu_quota}",
                                    "raise the tenant's gpuQuota: "
                                    + set_command(f"{PROJECT}:tenants[{config.tenants.index(tenant)}].gpuQuota",
                                                  str(llm + mine))
                                    + ", or lower replicas or gpus.count: "
                                    + set_command(_path(index, "replicas"), "<replicas>")))
    return problems


def site_settings(i: RuleInputs) -> list[Problem]:
    return _site_problems(i.config, i.matrix) if i.config.inference_services else []


def known_tenant(i: RuleInputs) -> list[Problem]:
    return unknown_tenants(i, i.config.inference_services, _path)


def name_clash(i: RuleInputs) -> list[Problem]:
    endpoint_names = {e.name for e in i.config.endpoints}
    return [Problem(_path(index, "name"), f"{service.name!r} is also an endpoint's name; both "
                    "create objects of that name in the tenant namespace",
                    "rename one of them: " + set_command(_path(index, "name"), "<another name>"))
            for index, service, _ in _with_tenant(i.config) if service.name in endpoint_names]


def artifact_source(i: RuleInputs) -> list[Problem]:
    return [p for index, service, _ in _with_tenant(i.config) for p in _artifact_problems(index, service)]


def example_placeholders(i: RuleInputs) -> list[Problem]:
    return [p for index, service, _ in _with_tenant(i.config)
            for p in _example_problems(index, service, i.config.site.environment)]


def engine_gpu(i: RuleInputs) -> list[Problem]:
    assert i.profile is not None
    return [p for index, service, tenant in _with_tenant(i.config)
            for p in _gpu_problems(index, service, i.profile, i.config,
                                   tenant_mig(i.config.components.gpu_operator.mig, tenant.name))]


def token_thresholds(i: RuleInputs) -> list[Problem]:
    return [p for index, service, _ in _with_tenant(i.config) for p in _threshold_problems(index, service)]


def within_quota(i: RuleInputs) -> list[Problem]:
    return _budget_problems(i.config, i.services, i.endpoints)
