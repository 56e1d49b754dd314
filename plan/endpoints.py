"""Cross-checks and plans for serving endpoints: tenant, backend disposition, model provenance, sizing file,
GPU budget and fabric. Every problem names the endpoint's config path and the fix."""
from typing import Optional

from plan.catalog import ROOT, CompatibilityMatrix, load_allowlists, load_disposition
from plan.config import Environment, StackConfig
from plan.endpoint_plan import EndpointPlan
from plan.errors import Problem
from plan.profile import HardwareProfile
from plan.sizing_bridge import SizingMismatch, read_layout

PROJECT = "ncp-inference"
STAGEABLE_SCHEMES = ("hf://",)  # sources the model staging Job knows how to fetch


def _path(index: int, key: str = "") -> str:
    return f"{PROJECT}:endpoints[{index}]" + (f".{key}" if key else "")


def _image(matrix: CompatibilityMatrix, backend: str, digest: Optional[str]) -> str:
    image = matrix.workload("dynamoRuntime").images[backend]
    return f"{image}@{digest}" if digest else image


def plan_endpoints(config: StackConfig, profile: HardwareProfile, matrix: CompatibilityMatrix,
                   tenant_namespace, multi_node_fabric: bool) -> tuple[list[EndpointPlan], list[Problem]]:
    problems: list[Problem] = []
    plans: list[EndpointPlan] = []
    environment = config.site.environment
    serving = config.components.serving
    tenants = {t.name: t for t in config.tenants}
    if config.endpoints and serving.storage is None:
        problems.append(Problem(f"{PROJECT}:components.serving.storage", "is required when endpoints are defined",
                                "name a storage class per tier: modelArtifacts, modelCache, benchmarkOutput"))
    if config.endpoints and serving.validation.benchmark_image is None:
        problems.append(Problem(f"{PROJECT}:components.serving.validation.benchmarkImage",
                                "is required when endpoints are defined (AIPerf publishes no container image)",
                                f"build an image with aiperf=={matrix.workload('aiperf').version} and set it"))
    if environment == Environment.PROD and serving.validation.suite and serving.validation.suite_image is None:
        problems.append(Problem(f"{PROJECT}:components.serving.validation.suiteImage",
                                "is required in prod (the ISV NCP Validation Suite publishes no image)",
                                f"build isv-ncp-validation-suite {matrix.workload('validationSuite').version} into "
                                "an image and set it"))
    if environment == Environment.PROD:
        for key, image in (("suiteImage", serving.validation.suite_image),
                           ("benchmarkImage", serving.validation.benchmark_image)):
            if image is not None and "@sha256:" not in image:
                problems.append(Problem(f"{PROJECT}:components.serving.validation.{key}",
                                        f"{image} is pinned by tag only: prod pins tool images by digest",
                                        f"pulumi config set --path '{PROJECT}:components.serving.validation.{key}' "
                                        f"'{image}@sha256:<digest of the image you built>'"))
    allowed_sources = load_allowlists().model_sources
    disposition = load_disposition()
    budget: dict[str, int] = {}
    for index, endpoint in enumerate(config.endpoints):
        tenant = tenants.get(endpoint.tenant)
        if tenant is None:
            problems.append(Problem(_path(index, "tenant"), f"names unknown tenant {endpoint.tenant!r}",
                                    f"use one of: {', '.join(tenants)}"))
            continue
        model = endpoint.model
        model_class = disposition.model_classes.get(model.model_class)
        if model_class is None:
            problems.append(Problem(_path(index, "model.class"), "is not a model class of the disposition matrix",
                                    f"use one of: {', '.join(disposition.model_classes)} "
                                    "(data/backend-disposition.yaml)"))
        else:
            verdict = model_class.backends.get(endpoint.backend)
            if verdict is None or environment.value not in verdict.environments:
                gaps = "; ".join(verdict.blocking_gaps) if verdict else "no disposition recorded"
                problems.append(Problem(_path(index, "backend"),
                                        f"{endpoint.backend} is not accepted for {model.model_class} in "
                                        f"{environment.value} ({gaps})",
                                        (verdict.rollback if verdict else "") + " Or use a backend the disposition "
                                        "matrix accepts for this environment."))
        if not any(model.source.startswith(prefix) for prefix in allowed_sources):
            problems.append(Problem(_path(index, "model.source"), f"{model.source!r} is not an allowlisted source",
                                    f"use one of: {', '.join(allowed_sources)} (data/allowlists.yaml)"))
        elif not model.source.startswith(STAGEABLE_SCHEMES):
            problems.append(Problem(_path(index, "model.source"), "has no staging recipe for this scheme",
                                    f"stage from one of: {', '.join(STAGEABLE_SCHEMES)}"))
        if environment == Environment.PROD and endpoint.backend not in serving.image_digests:
            problems.append(Problem(f"{PROJECT}:components.serving.imageDigests.{endpoint.backend}",
                                    "is required in prod: serving images are pinned by digest",
                                    f"pulumi config set --path '{PROJECT}:components.serving.imageDigests."
                                    f"{endpoint.backend}' sha256:<digest of "
                                    f"{matrix.workload('dynamoRuntime').images[endpoint.backend]}>"))
        sizing_file = ROOT / endpoint.sizing
        try:
            layout = read_layout(sizing_file, endpoint, profile)
        except SizingMismatch as mismatch:
            problems.append(Problem(_path(index, "sizing"), mismatch.message, mismatch.fix))
            continue
        gpus = sum(group.gpus for group in layout.workers)
        budget[tenant.name] = budget.get(tenant.name, 0) + gpus
        widest = max(group.gpus_per_worker for group in layout.workers)
        if widest > profile.gpu.per_node and not multi_node_fabric:
            problems.append(Problem(_path(index, "sizing"),
                                    f"needs {widest} GPUs per worker across nodes; profile {profile.name} has "
                                    f"{profile.gpu.per_node} GPUs per node and no east-west RDMA fabric or "
                                    "multi-node NVLink for multi-node workers",
                                    f"re-size with at most {profile.gpu.per_node} GPUs per worker, or use an RDMA "
                                    "profile"))
        plans.append(EndpointPlan(
            endpoint=endpoint, tenant=tenant, namespace=tenant_namespace(tenant), queue=tenant_namespace(tenant),
            mode=layout.mode, workers=tuple(layout.workers),
            image=_image(matrix, endpoint.backend, serving.image_digests.get(endpoint.backend)),
            sizing_file=endpoint.sizing, estimate=layout.estimate))
    for index, endpoint in enumerate(config.endpoints):
        tenant = tenants.get(endpoint.tenant)
        # Serving runs on guaranteed GPUs: capacity above gpuQuota is over-quota and can be reclaimed by KAI.
        if tenant and budget.get(tenant.name, 0) > tenant.gpu_quota:
            problems.append(Problem(_path(index, "sizing"),
                                    f"tenant {tenant.name}'s endpoints need {budget.pop(tenant.name)} GPUs; its "
                                    f"gpuQuota is {tenant.gpu_quota}",
                                    "raise the tenant's gpuQuota or size the endpoints with a smaller GPU budget"))
    return plans, problems
