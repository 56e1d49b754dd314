"""The plans of inference services (Triton + TensorRT): tenant namespace and queue, the GPU product and units, the
pinned images. The rules over them are ncp/plan/rules/inference_services.py."""
from dataclasses import dataclass
from typing import Optional

from ncp.plan.catalog import CompatibilityMatrix
from ncp.plan.config import StackConfig, Tenant
from ncp.plan.gpu_partition import gpu_product_label, tenant_mig
from ncp.plan.inference_service_config import InferenceService
from ncp.plan.names import tenant_namespace
from ncp.plan.profile import HardwareProfile

KEY = "inferenceServices"
# What AIPerf measures on a KServe v2 run (no token stream): ncp.plan.aiperf_args.kserve_command.
MEASURED = ("request_latency", "request_throughput", "request_count")  # sources the engine-build Job knows how to fetch
SERVER, BUILDER = "tritonserver", "tensorrt"  # image keys of the matrix workloads, and of serving.imageDigests
ENGINES_DIR = "/models/engines"
ENGINE_FILE = "model.plan"  # the file name Triton's TensorRT backend loads (default_model_filename)
PROVENANCE_FILE = "provenance.json"


@dataclass(frozen=True)
class InferenceServicePlan:
    service: InferenceService
    tenant: Tenant
    namespace: str
    queue: str
    gpu_product: str        # nvidia.com/gpu.product of the nodes the server and the build run on
    gpu_units: int          # GPUs (MIG devices under strategy single) the service holds against the tenant's quota
    server_image: str
    builder_image: str
    versions: dict          # tool versions recorded in the engine's provenance

    @property
    def name(self) -> str:
        return self.service.name

    @property
    def engine_dir(self) -> str:
        """One directory per source digest, GPU product and precision: an engine built for another target never
        sits where this service looks."""
        engine = self.service.engine
        return (f"{ENGINES_DIR}/{self.name}/{self.service.artifact.sha256[:16]}-{engine.gpu_product}-"
                f"{engine.precision}")

    @property
    def engine_model(self) -> str:
        """The Triton model that runs the TensorRT engine."""
        return self.service.model if self.service.preprocessing is None else f"{self.service.model}_trt"

    @property
    def preprocess_model(self) -> Optional[str]:
        return None if self.service.preprocessing is None else f"{self.service.model}_dali"

    def acceptance_thresholds(self) -> dict:
        """The thresholds the benchmark Job records, with the Triton model whose time is preprocessing."""
        thresholds = self.service.slo.thresholds.model_dump(by_alias=True, exclude_none=True)
        if self.preprocess_model and self.service.slo.thresholds.preprocessing_time_avg_ms is not None:
            thresholds["preprocessingModel"] = self.preprocess_model
        return thresholds

    @property
    def entry_model(self) -> str:
        """The model clients call: the ensemble with DALI, else the engine's model."""
        return self.service.model


def _image(matrix: CompatibilityMatrix, workload: str, key: str, digests: dict[str, str]) -> str:
    image = matrix.workload(workload).images[key]
    return f"{image}@{digests[key]}" if key in digests else image



def plan_inference_services(config: StackConfig, profile: HardwareProfile,
                            matrix: CompatibilityMatrix) -> list[InferenceServicePlan]:
    """Each service's plan (a service of an unknown tenant has none: the rules refuse it)."""
    tenants = {t.name: t for t in config.tenants}
    digests = config.components.serving.image_digests
    versions = {"tritonserver": matrix.workload("triton").version, "tensorrt": matrix.workload("tensorrt").version}
    plans = []
    for service in config.inference_services:
        tenant = tenants.get(service.tenant)
        if tenant is None:
            continue
        mig = tenant_mig(config.components.gpu_operator.mig, tenant.name)
        plans.append(InferenceServicePlan(
            service=service, tenant=tenant, namespace=tenant_namespace(tenant.name),
            queue=tenant_namespace(tenant.name),
            gpu_product=gpu_product_label(profile, mig), gpu_units=service.gpus.count * service.replicas,
            server_image=_image(matrix, "triton", SERVER, digests),
            builder_image=_image(matrix, "tensorrt", BUILDER, digests), versions=versions))
    return plans
