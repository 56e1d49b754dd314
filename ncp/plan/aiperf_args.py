"""The `aiperf profile` command line of an endpoint's benchmark Job (container `command`).

Every flag is one that `aiperf profile --help` lists in the pinned aiperf (0.8.0); tests/test_acceptance.py checks
that and runs the command for real against a local stub server. Choices follow the bench Job AIConfigurator itself
generates (top1/k8s_bench.yaml): ISL/OSL around the service profile's (stddev 0 unless the profile sets a
distribution), ignore_eos so every request produces OSL tokens, warm-up of 2 x concurrency requests, a fixed random
seed. With a concurrency sweep AIPerf runs once per level (`--concurrency 1,4,16`, a comma-separated list) and writes
each level's artifacts to `<artifact dir>/concurrency_<level>/` (aiperf/orchestrator/strategies.py
ParameterSweepStrategy.get_run_label and get_run_path@0.8.0: `f"{self.parameter_name}_{value}"` under base_dir).
"""
import base64
import json
from pathlib import PurePosixPath
from typing import Optional, Sequence

# The flags aiperf_command can emit.
FLAGS = ("--model", "--url", "--endpoint-type", "--streaming", "--ui", "--tokenizer", "--concurrency", "--isl",
         "--isl-stddev", "--osl", "--osl-stddev", "--request-count", "--warmup-request-count", "--random-seed",
         "--artifact-dir", "--extra-inputs", "--gpu-telemetry", "--no-gpu-telemetry", "--no-server-metrics",
         "--request-timeout-seconds")
# The top-level (vLLM/SGLang-style) switch Dynamo's frontend passes to every engine. Not `nvext.ignore_eos`: the
# Dynamo 1.5 frontend refuses the whole request when nvext carries it (400 "unknown field `ignore_eos`"; seen through
# the serving twin, tests/test_twin.py).
IGNORE_EOS = {"ignore_eos": True}
SWEEP_RUN = "concurrency_{}"  # a sweep level's artifact directory (module docstring)


def sweep_levels(concurrency: int, sweep: Sequence[int]) -> list[int]:
    """The levels a run measures: the sweep and the service profile's own concurrency, ascending; [] = no sweep."""
    return sorted({*sweep, concurrency}) if sweep else []


def judged_artifacts(artifact_dir: str, concurrency: int, sweep: Sequence[int] = ()) -> str:
    """Where the run judged against the thresholds writes its export: the artifact directory, or with a sweep the
    directory of the level at the profile's concurrency."""
    return str(PurePosixPath(artifact_dir) / SWEEP_RUN.format(concurrency)) if sweep else artifact_dir


# RA: Serving Performance: "record time to first token, inter-token latency, request latency, output throughput"
def aiperf_command(*, model: str, url: str, tokenizer: str, isl: int, osl: int, concurrency: int,
                   request_count: int, artifact_dir: str, warmup_request_count: Optional[int] = None,
                   random_seed: int = 100, endpoint_type: str = "chat", streaming: bool = True,
                   ignore_eos: bool = True, gpu_telemetry: Optional[str] = None, server_metrics: bool = True,
                   request_timeout_seconds: Optional[float] = None, extra_args: Sequence[str] = (),
                   isl_stddev: int = 0, osl_stddev: int = 0, sweep: Sequence[int] = ()) -> list[str]:
    """argv of `aiperf profile` for a Kubernetes Job.

    isl_stddev/osl_stddev: the spread of the input and output lengths around isl/osl (tokens; 0 fixes them).
    sweep: further concurrency levels; AIPerf then measures each level and `concurrency` (sweep_levels) in turn.

    tokenizer: a local path (the staged model directory) keeps the Job offline with HF_HUB_OFFLINE=1; a Hub id
    needs network. gpu_telemetry: a DCGM exporter metrics URL; None disables GPU telemetry (AIPerf's default probes
    localhost:9400/9401, which is not the GPU node in a Job). server_metrics: scrape the endpoint's /metrics.
    """
    for name, value in (("isl", isl), ("osl", osl), ("concurrency", concurrency), ("request_count", request_count),
                        *(("sweep", level) for level in sweep)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    for name, value in (("isl_stddev", isl_stddev), ("osl_stddev", osl_stddev)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    levels = sweep_levels(concurrency, sweep)
    warmup = 2 * max([concurrency, *levels]) if warmup_request_count is None else warmup_request_count
    argv = ["aiperf", "profile", "--model", model, "--url", url, "--endpoint-type", endpoint_type]
    if streaming:  # TTFT and inter-token latency are measured only on streamed responses
        argv.append("--streaming")
    argv += ["--ui", "none", "--tokenizer", tokenizer,
             "--concurrency", ",".join(map(str, levels)) if levels else str(concurrency),
             "--isl", str(isl), "--isl-stddev", str(isl_stddev), "--osl", str(osl), "--osl-stddev", str(osl_stddev),
             "--request-count", str(request_count), "--warmup-request-count", str(warmup),
             "--random-seed", str(random_seed), "--artifact-dir", artifact_dir]
    if ignore_eos:
        argv += ["--extra-inputs", json.dumps(IGNORE_EOS, separators=(",", ":"))]
    argv += ["--gpu-telemetry", gpu_telemetry] if gpu_telemetry else ["--no-gpu-telemetry"]
    if not server_metrics:
        argv.append("--no-server-metrics")
    if request_timeout_seconds is not None:
        argv += ["--request-timeout-seconds", f"{request_timeout_seconds:g}"]
    return argv + list(extra_args)


# The flags kserve_command adds to those above.
KSERVE_FLAGS = ("--custom-endpoint", "--tokenizer", "--server-metrics")
ZEROS = "__ZEROS_{}__"


def kserve_payload_template(inputs: dict[str, list[int]]) -> str:
    """A Jinja template (AIPerf's `template` endpoint, aiperf/endpoints/template_endpoint.py@0.8.0) of one KServe v2
    inference request (Triton's HTTP protocol, POST /v2/models/<model>/infer) with one all-zero FP32 tensor per
    input at batch 1. The tensors are generated at render time, so the command line stays short."""
    payload = {"inputs": [{"name": name, "shape": [1, *dims], "datatype": "FP32", "data": ZEROS.format(index)}
                          for index, (name, dims) in enumerate(inputs.items())]}
    template = json.dumps(payload, separators=(",", ":"))
    for index, dims in enumerate(inputs.values()):
        size = 1
        for dim in dims:
            size *= dim
        template = template.replace(f'"{ZEROS.format(index)}"', f"{{{{ ([0.0] * {size}) | tojson }}}}")
    return template


# An 8x8 baseline RGB JPEG (written by Pillow, quality 75, optimised tables): what an image client sends to a model
# with DALI preprocessing, which decodes, resizes and normalises it on the GPU (any size decodes).
BENCHMARK_JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwcKDcpLDAxNDQ0Hyc5"
    "PTgyPC4zNDL/2wBDAQkJCQwLDBgNDRgyIRwhMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjL/wAAR"
    "CAAIAAgDASIAAhEBAxEB/8QAFQABAQAAAAAAAAAAAAAAAAAAAAf/xAAUEAEAAAAAAAAAAAAAAAAAAAAA/8QAFQEBAQAAAAAAAAAAAAAAAAAA"
    "BQb/xAAUEQEAAAAAAAAAAAAAAAAAAAAA/9oADAMBAAIRAxEAPwCSgC1y/9k=")


def kserve_image_payload(input_name: str, image: bytes = BENCHMARK_JPEG) -> str:
    """One KServe v2 request carrying an encoded image as a UINT8 tensor [1, bytes] (the ensemble's input)."""
    return json.dumps({"inputs": [{"name": input_name, "shape": [1, len(image)], "datatype": "UINT8",
                                   "data": list(image)}]}, separators=(",", ":"))


def kserve_command(*, url: str, model: str, inputs: dict[str, list[int]], concurrency: int, request_count: int,
                   artifact_dir: str, tokenizer: str = "gpt2", warmup_request_count: Optional[int] = None,
                   random_seed: int = 100, server_metrics: Optional[str] = None,
                   image_input: Optional[str] = None) -> list[str]:
    """argv of `aiperf profile` against a Triton model over KServe v2 HTTP: request latency and throughput (no
    tokens, so no TTFT/ITL; `--streaming` off). AIPerf loads a tokenizer whatever the endpoint; the offline Job
    passes a local one (HF_HUB_OFFLINE=1) and the text it would count is never sent. server_metrics: Triton's
    metrics URL, scraped during the run into server_metrics_export.json (the preprocessing threshold reads it).
    image_input: the input name of a model that takes encoded images (a DALI ensemble): each request sends
    BENCHMARK_JPEG instead of zero tensors of `inputs`."""
    for name, value in (("concurrency", concurrency), ("request_count", request_count)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    payload = kserve_image_payload(image_input) if image_input else kserve_payload_template(inputs)
    extra = {"payload_template": payload, "response_field": "outputs[0].data"}
    warmup = 2 * concurrency if warmup_request_count is None else warmup_request_count
    return ["aiperf", "profile", "--model", model, "--url", url, "--endpoint-type", "template",
            "--custom-endpoint", f"/v2/models/{model}/infer", "--ui", "none", "--tokenizer", tokenizer,
            "--concurrency", str(concurrency), "--request-count", str(request_count),
            "--warmup-request-count", str(warmup), "--random-seed", str(random_seed), "--artifact-dir", artifact_dir,
            "--extra-inputs", json.dumps(extra, separators=(",", ":")), "--no-gpu-telemetry"] + (
        ["--server-metrics", server_metrics] if server_metrics else ["--no-server-metrics"])
