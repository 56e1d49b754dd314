"""Stack config schema of `ncp-inference:inferenceServices`: the RA's "Traditional ML And Vision Inference" path.

A service is a TensorRT engine served by NVIDIA Triton Inference Server, built by a pinned engine-build Job from a
pinned ONNX artifact, optionally behind a DALI preprocessing stage (a Triton ensemble), benchmarked by AIPerf.
"""
from typing import Literal, Optional

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ncp.plan.thresholds import AcceptanceThresholds
from ncp.plan.serving import revision_problem
from ncp.plan.strict import StrictModel, Text

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# An example stack's stand-in for a value only the site can pin (an artifact's commit and digest): EXAMPLE(<what>).
EXAMPLE_MARKER = "EXAMPLE"
# Triton model names become directories of the model repository and series labels: keep them simple.
MODEL_NAME = r"^[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,63}$"
# Precisions trtexec builds with one flag each (none for fp32); int8 needs calibration data, which the Job has not.
Precision = Literal["fp32", "fp16", "bf16"]


class SourceArtifact(StrictModel):
    """The pinned source the engine is built from: one ONNX file of a repository at an immutable revision."""

    source: str = Field(pattern=r"^[a-z0-9]+://.+", description="repository URI, e.g. hf://onnx-community/resnet50")
    revision: Text = Field(description="the commit (hf://: the full commit hash); never a branch or tag")
    file: str = Field(pattern=r"^[A-Za-z0-9_./-]+\.onnx$", description="path of the ONNX file in the repository")
    sha256: str = Field(pattern=rf"^([0-9a-f]{{64}}|{EXAMPLE_MARKER}\(.+\))$",
                        description="sha256 of that file: the build refuses any other")

    def example_fields(self) -> list[str]:
        """The fields still holding an example stack's marked placeholder (EXAMPLE(<what>)): a lab may compose
        with them (the build fails on them loudly), prod refuses them."""
        return [key for key, value in (("revision", self.revision), ("sha256", self.sha256))
                if value.startswith(EXAMPLE_MARKER)]

    @field_validator("revision")
    @classmethod
    def _pinned(cls, revision: str, info: ValidationInfo) -> str:
        problem = None if revision.startswith(EXAMPLE_MARKER) else revision_problem(info.data.get("source", ""),
                                                                                     revision)
        if problem:
            raise ValueError(problem)
        return revision

    @field_validator("file")
    @classmethod
    def _inside(cls, file: str) -> str:
        if file.startswith("/") or ".." in file.split("/"):
            raise ValueError(f"{file!r} must be a relative path inside the repository")
        return file


class EngineTarget(StrictModel):
    """What the engine-build Job builds for. A TensorRT engine runs only on the GPU model and TensorRT version it
    was built with, so the target is part of the engine's identity and path."""

    gpu_product: Text = Field(description="nvidia.com/gpu.product of the GPUs the engine is built for")
    precision: Precision = Field(default="fp16", description="the precision trtexec builds the engine at")
    max_batch_size: int = Field(default=8, ge=1, le=4096, description="the engine's largest batch (built for 1..this)")
    inputs: dict[str, list[int]] = Field(
        min_length=1, description="input tensor name -> shape without the batch dimension, e.g. {input: [3, 224, 224]}")
    outputs: dict[str, list[int]] = Field(
        min_length=1, description="output tensor name -> shape without the batch dimension, e.g. {logits: [1000]}")

    @field_validator("inputs", "outputs")
    @classmethod
    def _shapes(cls, inputs: dict[str, list[int]]) -> dict[str, list[int]]:
        for name, shape in inputs.items():
            if not shape or any(d < 1 for d in shape):
                raise ValueError(f"tensor {name!r}: give every dimension after the batch as a positive size")
            if not name.replace("_", "").replace(".", "").isalnum():
                raise ValueError(f"tensor {name!r}: use letters, digits, '_' and '.'")
        return inputs


class GpuRequest(StrictModel):
    """The GPUs (or MIG devices) each Triton server pod takes."""

    count: int = Field(default=1, ge=1, le=8, description="GPUs per server pod (MIG devices with migProfile)")
    mig_profile: Optional[Text] = Field(
        default=None, description="a MIG profile of components.gpuOperator.mig.layout (strategy single), e.g. 1g.18gb")


class DynamicBatching(StrictModel):
    """Triton's dynamic batcher: requests are held briefly to form larger batches."""

    preferred_batch_sizes: list[int] = Field(default_factory=list,
                                             description="batch sizes the batcher aims for (1..engine.maxBatchSize)")
    max_queue_delay_microseconds: int = Field(default=100, ge=0, le=1_000_000,
                                              description="longest a request waits for a batch to form (µs)")


class DaliPreprocessing(StrictModel):
    """Image preprocessing on the GPU with DALI: decode, resize and normalise, as the first step of an ensemble."""

    resize: list[int] = Field(min_length=2, max_length=2, description="[height, width] the engine takes")
    mean: list[float] = Field(default_factory=lambda: [0.485 * 255, 0.456 * 255, 0.406 * 255], min_length=3,
                              max_length=3, description="per-channel mean subtracted (0..255 scale; ImageNet's)")
    std: list[float] = Field(default_factory=lambda: [0.229 * 255, 0.224 * 255, 0.225 * 255], min_length=3,
                             max_length=3, description="per-channel standard deviation divided by (ImageNet's)")


class ServiceSlo(StrictModel):
    """The service's latency targets, benchmark shape and acceptance bar."""

    request_p95_ms: float = Field(gt=0, description="end-to-end request time at the server, p95")
    queue_p95_ms: float = Field(gt=0, description="time in the dynamic-batching queue, p95")
    concurrency: int = Field(default=8, gt=0, description="concurrent requests of the benchmark")
    request_count: int = Field(default=500, gt=0, description="requests the benchmark sends")
    thresholds: AcceptanceThresholds = Field(description="the acceptance bar of the benchmark run")


class InferenceService(StrictModel):
    """A TensorRT engine served by Triton in its tenant's namespace, built from a pinned ONNX artifact."""

    name: str = Field(pattern=DNS_LABEL, max_length=40,
                      description="the service's name: its Deployment, Service, rules, Jobs and evidence carry it")
    tenant: Text = Field(description="the tenant that serves it (its namespace, queue and quota)")
    server: Literal["triton"] = Field(default="triton", description="the inference server (Triton only)")
    model: str = Field(pattern=MODEL_NAME, description="served model name (the Triton model clients call)")
    artifact: SourceArtifact
    engine: EngineTarget
    gpus: GpuRequest = Field(default_factory=GpuRequest)
    replicas: int = Field(default=1, ge=1, le=64, description="Triton server pods")
    instances_per_gpu: int = Field(default=1, ge=1, le=8, description="Triton instance_group count per GPU")
    dynamic_batching: Optional[DynamicBatching] = Field(default_factory=DynamicBatching,
                                                        description="null turns the dynamic batcher off")
    preprocessing: Optional[DaliPreprocessing] = Field(
        default=None, description="DALI preprocessing as the first step of an ensemble")
    slo: ServiceSlo = Field(description="latency targets, benchmark shape and acceptance bar")

    @model_validator(mode="after")
    def _batches_fit(self) -> "InferenceService":
        too_big = [b for b in (self.dynamic_batching.preferred_batch_sizes if self.dynamic_batching else [])
                   if b < 1 or b > self.engine.max_batch_size]
        if too_big:
            raise ValueError(f"dynamicBatching.preferredBatchSizes {too_big} must lie in 1..engine.maxBatchSize "
                             f"({self.engine.max_batch_size})")
        if self.preprocessing is not None and len(self.engine.inputs) != 1:
            raise ValueError("DALI preprocessing feeds one image tensor: the engine must have exactly one input")
        return self
