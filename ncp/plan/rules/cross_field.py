"""Cross-field rules the policy pack enforces that config already knows, refused here with the key and the fix, so
a site learns them from `offline.check`'s config error instead of from a policy violation after composing.

Every policy of the pack (policy/ncp_guardrails) and where config refuses what it can know:
- hardware-profile-and-evidence: site.hardwareProfile is required by the schema; site.validationEvidence here.
- charts-pinned: charts and versions come only from the matrix; config chooses none (chartMirror keeps the pins).
- gpu-sharing: MIG on a non-MIG profile and unaccepted MIG profiles (rule site.mig-layout); time-slicing
  under prod serving without evidence here.
- disaggregation-fabric: multi-node workers without a fabric (ncp/plan/rules/endpoints.py); disaggregated serving here.
- kv-routing-telemetry, tenant-isolation, least-privilege-rbac, secret-hygiene, gpu-workloads-through-kai: what
  the program composes (telemetry, namespaces, RBAC, Secrets, queues); no config key can break them.
- storage-tiers: tiers sharing a storageClass (ncp/plan/serving.py StorageTiers).
- model-provenance: floating revisions and unlisted sources (ncp/plan/serving.py, ncp/plan/rules/endpoints.py).
- acceptance-evidence: thresholds are part of every endpoint's slo; the validation suite in prod here.
- promotion-evidence: a gate on recorded runs (sites/<stack>/evidence/index.yaml), not config.
- image-references: prod serving digests (ncp/plan/rules/endpoints.py); the site-built tool images here.
"""
from typing import Optional, Sequence

from ncp.plan.catalog import load_allowlists
from ncp.plan.config import Environment, StackConfig
from ncp.plan.endpoint_plan import EndpointPlan
from ncp.plan.names import PROJECT
from ncp.plan.errors import Problem
from ncp.plan.profile import HardwareProfile

# Where the pack's mandatory level applies (policy/config/<environment>.json: "all": "mandatory"); lab's pack
# config makes every policy advisory. tests/test_cross_field.py reads the pack configs to keep this in step.
MANDATORY_ENVIRONMENTS = (Environment.STAGING, Environment.PROD)


def _set(path: str, value: str) -> str:
    return f"pulumi config set --path '{path}' {value}"


def _evidence(config: StackConfig) -> list[Problem]:
    """hardware-profile-and-evidence: the baseline record names where validation evidence is kept."""
    environment = config.site.environment
    if environment not in MANDATORY_ENVIRONMENTS or config.site.validation_evidence is not None:
        return []
    path = f"{PROJECT}:site.validationEvidence"
    return [Problem(path, f"is required in {environment.value} (policy hardware-profile-and-evidence)",
                    f"record where acceptance evidence is kept and who owns it: {_set(path + '.path', '<location>')} "
                    f"&& {_set(path + '.owner', '<team>')}")]


def _split_image(image: str) -> tuple[str, Optional[str], Optional[str]]:
    """(repository, tag, digest) of an image reference (a port in the registry host is not a tag)."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else None
    repository = name[: len(name) - len(tag) - 1] if tag else name
    return repository, tag, digest or None


def _tool_images(config: StackConfig) -> list[Problem]:
    """image-references: the site-built tool images carry a tag or digest, never latest, from an allowlisted
    registry (the runtime images come from the matrix; their prod digests are checked with the endpoints)."""
    if config.site.environment not in MANDATORY_ENVIRONMENTS:
        return []
    registries = load_allowlists().image_registries
    validation = config.components.serving.validation
    problems = []
    for key, image in (("suiteImage", validation.suite_image), ("benchmarkImage", validation.benchmark_image),
                       ("ncclImage", validation.nccl_image)):
        if image is None:
            continue
        path = f"{PROJECT}:components.serving.validation.{key}"
        repository, tag, digest = _split_image(image)
        if tag == "latest" or (not tag and not digest):
            problems.append(Problem(path, f"{image} has {'the mutable tag latest' if tag else 'no tag or digest'} "
                                          "(policy image-references)",
                                    "tag the image you built with its tool version and set it: "
                                    + _set(path, f"'{repository}:<version>'")))
        if not any(repository.startswith(prefix) for prefix in registries):
            problems.append(Problem(path, f"{image} is not from an allowlisted registry (policy image-references)",
                                    f"push the image to your org under one of {', '.join(registries)} and set that "
                                    f"reference: {_set(path, f'<registry>/{repository.split(chr(47))[-1]}:<version>')}"
                                    " (or add the registry to data/allowlists.yaml imageRegistries)"))
    return problems


def _nccl_image(config: StackConfig, profile: HardwareProfile) -> list[Problem]:
    """image-references (prod): the NCCL readiness Job runs as root with IPC_LOCK on every GPU node of the site, so
    prod runs it only from the site's own image pinned by digest (#22 item 12)."""
    if config.site.environment != Environment.PROD or not profile.has_rdma_fabric:
        return []  # without a fabric there is no NCCL readiness Job
    path = f"{PROJECT}:components.serving.validation.ncclImage"
    image = config.components.serving.validation.nccl_image
    if image is not None and _split_image(image)[2]:
        return []
    found = "is not set" if image is None else f"{image} is not pinned by digest"
    return [Problem(path, f"{found}: prod runs the NCCL readiness Job (root, IPC_LOCK, every GPU node) only from the "
                          "site's nccl-tests image by digest (policy image-references)",
                    "build the image (nccl-tests MPI binaries and openssh-server), push it and set it by digest: "
                    + _set(path, "'<registry>/nccl-tests:<version>@sha256:<digest>'"))]


def _image_signatures(config: StackConfig) -> list[Problem]:
    """image-references (prod): tenant-namespace images are verified by signature at admission (#22 item 13)."""
    if config.site.environment != Environment.PROD or config.components.tenancy.image_signatures is not None:
        return []
    path = f"{PROJECT}:components.tenancy.imageSignatures.publicKeys"
    return [Problem(path, "is not set: prod verifies the images of tenant namespaces by signature at admission "
                          "(policy image-references; the Sigstore policy-controller is a site prerequisite)",
                    "install the Sigstore policy-controller and give the public key of the site's cosign signer: "
                    f"pulumi config set --path '{path}[0]' -- \"$(cat cosign.pub)\"")]


def _acceptance(config: StackConfig) -> list[Problem]:
    """acceptance-evidence (prod): the validation suite Job exists for the stack."""
    if config.site.environment != Environment.PROD or config.components.serving.validation.suite:
        return []
    path = f"{PROJECT}:components.serving.validation.suite"
    return [Problem(path, "is false: prod runs the ISV NCP Validation Suite (policy acceptance-evidence)",
                    f"pulumi config rm --path '{path}' (the suite is on by default)")]


def _time_slicing(config: StackConfig) -> list[Problem]:
    """gpu-sharing: time-sliced GPUs under LLM serving in prod need recorded validation evidence."""
    sharing = config.components.gpu_operator.time_slicing
    if (config.site.environment != Environment.PROD or not config.endpoints or sharing is None
            or sharing.validation_evidence):
        return []
    path = f"{PROJECT}:components.gpuOperator.timeSlicing"
    return [Problem(path, "time-slices the GPUs under prod LLM endpoints without validation evidence "
                          "(policy gpu-sharing)",
                    f"serve prod endpoints on whole GPUs (pulumi config rm --path '{path}'), or record the "
                    f"evidence that time-slicing meets the SLO: {_set(path + '.validationEvidence', '<location>')}")]


def _disaggregation(config: StackConfig, profile: HardwareProfile,
                    endpoints: Sequence[EndpointPlan]) -> list[Problem]:
    """disaggregation-fabric: disaggregated serving needs an east-west RDMA profile (and the Network Operator,
    which the program deploys exactly on those profiles)."""
    if profile.has_rdma_fabric:
        return []
    index_of = {endpoint.name: index for index, endpoint in enumerate(config.endpoints)}
    return [Problem(f"{PROJECT}:endpoints[{index_of[plan.endpoint.name]}].sizing",
                    f"{plan.endpoint.sizing} lays the endpoint out disaggregated (prefill/decode); profile "
                    f"{profile.name} has no east-west RDMA fabric (policy disaggregation-fabric)",
                    "re-size it aggregated for this profile (ncp sizing ... --out <a new file for this "
                    "endpoint>, then point its sizing key at that file), or move the site to an RDMA profile")
            for plan in endpoints if plan.mode == "disaggregated"]
