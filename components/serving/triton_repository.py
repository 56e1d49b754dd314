"""The Triton model repository of one inference service, as files: model configurations (protobuf text format, Triton
model_config.proto), the DALI preprocessing pipeline, the engine-build script and the server's engine check.

Layout Triton expects (triton-inference-server/server docs/user_guide/model_repository.md @v2.68.0):
<repo>/<model>/config.pbtxt and <repo>/<model>/1/<file>; the TensorRT backend loads `model.plan`, the DALI backend
serialises `model.py` marked @autoserialize (triton-inference-server/dali_backend README "Autoserialization").
"""
import json

from ncp.plan.inference_service_config import DaliPreprocessing
from ncp.plan.inference_services import ENGINE_FILE, PROVENANCE_FILE, InferenceServicePlan
from ncp.plan.names import ENSEMBLE_INPUT

DALI_INPUT, DALI_OUTPUT = "DALI_INPUT_0", "DALI_OUTPUT_0"
SOURCE_FILE = "source.onnx"
HUB = "https://huggingface.co"  # where hf:// sources resolve without a mirror


def _tensor(name: str, data_type: str, dims: list[int]) -> str:
    return f'  {{ name: "{name}" data_type: {data_type} dims: [ {", ".join(map(str, dims))} ] }}'


def _tensors(kind: str, tensors: list[str]) -> str:
    return f"{kind} [\n" + ",\n".join(tensors) + "\n]"


def engine_config(plan: InferenceServicePlan) -> str:
    """The TensorRT model. trtexec keeps FP32 I/O tensors whatever the build precision (no --inputIOFormats)."""
    service = plan.service
    lines = [f'name: "{plan.engine_model}"', 'platform: "tensorrt_plan"',
             f"max_batch_size: {service.engine.max_batch_size}",
             _tensors("input", [_tensor(n, "TYPE_FP32", d) for n, d in service.engine.inputs.items()]),
             _tensors("output", [_tensor(n, "TYPE_FP32", d) for n, d in service.engine.outputs.items()]),
             f"instance_group [ {{ count: {service.instances_per_gpu} kind: KIND_GPU }} ]"]
    batching = service.dynamic_batching
    if batching is not None:
        preferred = "".join(f" preferred_batch_size: {size}" for size in batching.preferred_batch_sizes)
        lines.append(f"dynamic_batching {{{preferred} max_queue_delay_microseconds: "
                     f"{batching.max_queue_delay_microseconds} }}")
    return "\n".join(lines) + "\n"


def _preprocessing(plan: InferenceServicePlan) -> DaliPreprocessing:
    """The service's DALI stage; the ensemble files are only written for a service that has one."""
    if plan.service.preprocessing is None:
        raise ValueError(f"{plan.name}: no DALI preprocessing to write an ensemble for")
    return plan.service.preprocessing


def dali_config(plan: InferenceServicePlan) -> str:
    height, width = _preprocessing(plan).resize
    channels = next(iter(plan.service.engine.inputs.values()))[0]
    return "\n".join([
        f'name: "{plan.preprocess_model}"', 'backend: "dali"', f"max_batch_size: {plan.service.engine.max_batch_size}",
        _tensors("input", [_tensor(DALI_INPUT, "TYPE_UINT8", [-1])]),
        _tensors("output", [_tensor(DALI_OUTPUT, "TYPE_FP32", [channels, height, width])]),
        "instance_group [ { count: 1 kind: KIND_GPU } ]"]) + "\n"


def dali_pipeline(plan: InferenceServicePlan) -> str:
    """Decode on the GPU (device mixed), resize, normalise to the engine's CHW float input."""
    pre = _preprocessing(plan)
    height, width = pre.resize
    return "\n".join([
        "import nvidia.dali as dali",
        "import nvidia.dali.fn as fn",
        "import nvidia.dali.types as types",
        "from nvidia.dali.plugin.triton import autoserialize",
        "",
        "",
        "@autoserialize",
        f"@dali.pipeline_def(batch_size={plan.service.engine.max_batch_size}, num_threads=4, device_id=0)",
        "def pipeline():",
        f'    images = fn.external_source(device="cpu", name="{DALI_INPUT}")',
        '    images = fn.decoders.image(images, device="mixed", output_type=types.RGB)',
        f"    images = fn.resize(images, resize_x={width}, resize_y={height})",
        '    return fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout="CHW",',
        f"                                    mean={list(pre.mean)!r}, std={list(pre.std)!r})",
    ]) + "\n"


def ensemble_config(plan: InferenceServicePlan) -> str:
    (engine_input,) = plan.service.engine.inputs
    outputs = plan.service.engine.outputs
    output_map = " ".join(f'output_map {{ key: "{n}" value: "{n}" }}' for n in outputs)
    return "\n".join([
        f'name: "{plan.entry_model}"', 'platform: "ensemble"', f"max_batch_size: {plan.service.engine.max_batch_size}",
        _tensors("input", [_tensor(ENSEMBLE_INPUT, "TYPE_UINT8", [-1])]),
        _tensors("output", [_tensor(n, "TYPE_FP32", d) for n, d in outputs.items()]),
        "ensemble_scheduling { step [",
        f'  {{ model_name: "{plan.preprocess_model}" model_version: -1 input_map {{ key: "{DALI_INPUT}" value: '
        f'"{ENSEMBLE_INPUT}" }} output_map {{ key: "{DALI_OUTPUT}" value: "preprocessed" }} }},',
        f'  {{ model_name: "{plan.engine_model}" model_version: -1 input_map {{ key: "{engine_input}" value: '
        f'"preprocessed" }} {output_map} }}',
        "] }"]) + "\n"


def repository_files(plan: InferenceServicePlan) -> dict[str, str]:
    """ConfigMap keys (flat) -> content. Keys are `<model>.config.pbtxt` and `<model>.model.py`."""
    files = {f"{plan.engine_model}.config.pbtxt": engine_config(plan)}
    if plan.preprocess_model:
        files[f"{plan.preprocess_model}.config.pbtxt"] = dali_config(plan)
        files[f"{plan.preprocess_model}.model.py"] = dali_pipeline(plan)
        files[f"{plan.entry_model}.config.pbtxt"] = ensemble_config(plan)
    return files


def expected_provenance(plan: InferenceServicePlan) -> dict:
    """What the engine's provenance must say for this service to load it."""
    artifact, engine = plan.service.artifact, plan.service.engine
    return {"source": artifact.source, "revision": artifact.revision, "file": artifact.file,
            "sha256": artifact.sha256, "gpuProduct": engine.gpu_product, "precision": engine.precision,
            "tensorrtRelease": plan.versions["tensorrt"]}


def trtexec_args(plan: InferenceServicePlan, source: str, target: str) -> list[str]:
    """trtexec flags (TensorRT samples/trtexec README @ 5302b28): shapes for batch 1..maxBatchSize, optimised at the
    largest preferred batch; one precision flag (fp32 is the default, no flag)."""
    engine, batching = plan.service.engine, plan.service.dynamic_batching
    preferred = batching.preferred_batch_sizes if batching else []
    optimum = max(preferred, default=engine.max_batch_size)

    def shapes(batch: int) -> str:
        return ",".join(f"{name}:{'x'.join(map(str, [batch, *dims]))}" for name, dims in engine.inputs.items())

    args = ["trtexec", f"--onnx={source}", f"--saveEngine={target}", f"--minShapes={shapes(1)}",
            f"--optShapes={shapes(optimum)}", f"--maxShapes={shapes(engine.max_batch_size)}", "--skipInference"]
    return args + ([f"--{engine.precision}"] if engine.precision != "fp32" else [])


def build_script(plan: InferenceServicePlan) -> str:
    """Fetch the pinned ONNX file, refuse any other digest, build the engine, write provenance beside it."""
    artifact = plan.service.artifact
    repo = artifact.source.split("://", 1)[1]
    # HF_ENDPOINT names the site's hub mirror where it has one (components/model_data.py source_env), as for staging.
    url = f"${{HF_ENDPOINT:-{HUB}}}/{repo}/resolve/{artifact.revision}/{artifact.file}"
    work, engine_dir = "/tmp/build", plan.engine_dir
    expected = expected_provenance(plan)
    return "\n".join([
        "set -euo pipefail",
        f'dir="{engine_dir}"',
        f'if [ -f "$dir/{PROVENANCE_FILE}" ]; then echo "already built: $dir"; exit 0; fi',
        f'mkdir -p {work} "$dir.partial"',
        f"python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' "
        f'"{url}" {work}/{SOURCE_FILE}',
        f'echo "{artifact.sha256}  {work}/{SOURCE_FILE}" | sha256sum -c -',
        " ".join(trtexec_args(plan, f"{work}/{SOURCE_FILE}", f"$dir.partial/{ENGINE_FILE}"))
        + f" | tee {work}/trtexec.log",
        f'python3 - "$dir.partial" {work}/trtexec.log <<\'PY\'',
        "import hashlib, json, re, subprocess, sys",
        "root, log = sys.argv[1], open(sys.argv[2]).read()",
        f"record = json.loads({json.dumps(json.dumps(expected, sort_keys=True))})",
        "gpu = subprocess.run(['nvidia-smi', '--query-gpu=name,driver_version', '--format=csv,noheader'],",
        "                     capture_output=True, text=True, check=True).stdout.splitlines()[0].split(', ')",
        "if gpu[0].replace(' ', '-') != record['gpuProduct']:  # GFD's product label is the name, dashed",
        "    sys.exit(f'built on {gpu[0]}, not on the target {record[\"gpuProduct\"]}: refusing to record it')",
        "version = re.search(r'TensorRT version: ([0-9.]+)', log)",
        "digest = hashlib.sha256(open(root + '/" + ENGINE_FILE + "', 'rb').read()).hexdigest()",
        "record.update({'gpuName': gpu[0], 'driverVersion': gpu[1],",
        "               'tensorrtVersion': version.group(1) if version else None,",
        "               'outputs': {'" + ENGINE_FILE + "': digest}})",
        f"json.dump(record, open(root + '/{PROVENANCE_FILE}', 'w'), indent=2, sort_keys=True)",
        "PY",
        'mv "$dir.partial" "$dir"',
    ])


def verify_script(plan: InferenceServicePlan, repository: str, config_dir: str) -> str:
    """The server's init step: refuse an engine whose provenance names another source, GPU product, precision or
    TensorRT release, or whose bytes changed since the build; then lay out the model repository."""
    expected = expected_provenance(plan)
    models = [plan.engine_model] + ([plan.preprocess_model, plan.entry_model] if plan.preprocess_model else [])
    return "\n".join([
        "set -euo pipefail",
        f'python3 - "{plan.engine_dir}" <<\'PY\'',
        "import hashlib, json, sys",
        f"expected = json.loads({json.dumps(json.dumps(expected, sort_keys=True))})",
        f"record = json.load(open(sys.argv[1] + '/{PROVENANCE_FILE}'))",
        "wrong = {k: (record.get(k), v) for k, v in expected.items() if record.get(k) != v}",
        "if wrong:",
        "    sys.exit(f'engine refused: built for {wrong} (recorded, expected)')",
        f"digest = hashlib.sha256(open(sys.argv[1] + '/{ENGINE_FILE}', 'rb').read()).hexdigest()",
        f"if digest != record['outputs']['{ENGINE_FILE}']:",
        "    sys.exit('engine refused: its sha256 differs from the build record')",
        "PY",
        *[f'mkdir -p "{repository}/{m}/1" && cp "{config_dir}/{m}.config.pbtxt" "{repository}/{m}/config.pbtxt"'
          for m in models],
        f'ln -s "{plan.engine_dir}/{ENGINE_FILE}" "{repository}/{plan.engine_model}/1/{ENGINE_FILE}"',
        *([f'cp "{config_dir}/{plan.preprocess_model}.model.py" "{repository}/{plan.preprocess_model}/1/model.py"']
          if plan.preprocess_model else []),
    ])
