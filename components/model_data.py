"""Model data plane and storage tiers: per-tenant claims on separate storage classes, a pinned model staging Job
with a provenance record per endpoint, and ModelExpress when the site enables it."""
import json
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_kubernetes as k8s

from components.kube import (
    PRIORITY_SERVING, TENANT_LABEL, Layer, await_annotations, claim_volume, container_resources, labels, pod_placement,
    restricted_deployment, restricted_job, tier_labels,
)
from components.network_policy import model_source_access, source_env
from ncp.plan.names import (
    BENCHMARK_CLAIM, ENDPOINT_LABEL, MODEL_CLAIM, MODEL_EXPRESS, MODEL_REVISION, MODEL_SOURCE, MODELS_MOUNT, model_path,
)
from ncp.plan.serving import ModelStagingSettings, StorageTier
from ncp.plan.site_plan import NodePlacement

STAGING_COMPONENT = "model-staging"  # app.kubernetes.io/component of staging Jobs
STAGING_TIMEOUT_SECONDS = 4 * 3600


@dataclass(frozen=True)
class TenantStorageArgs:
    """Arguments of TenantStorage: the claims a tenant's endpoints share.

    Attributes:
        tenant: the tenant name (labels the claims).
        namespace: the tenant's namespace.
        model_artifacts: the storage tier of the model-artifacts claim (class, size, access mode).
        benchmark_output: the storage tier of the benchmark-output claim.
        skip_await: whether Pulumi skips waiting for the claims to bind.
    """

    tenant: str
    namespace: pulumi.Input[str]
    model_artifacts: StorageTier
    benchmark_output: StorageTier
    skip_await: bool


# RA: Storage: "Hot models may need node-local cache, shared cache, or GPU-to-GPU transfer paths."
class TenantStorage(Layer):
    """The claims a tenant's endpoints share: model artifacts (staged once, read by every worker) and benchmark
    output. Node-local model cache and KV offload are per-pod ephemeral volumes on their own classes."""

    MODEL_CLAIM = MODEL_CLAIM
    BENCHMARK_CLAIM = BENCHMARK_CLAIM

    def __init__(self, name: str, args: TenantStorageArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("TenantStorage", name, opts)
        self.claims = {}
        for claim, tier in ((self.MODEL_CLAIM, args.model_artifacts), (self.BENCHMARK_CLAIM, args.benchmark_output)):
            self.claims[claim] = k8s.core.v1.PersistentVolumeClaim(
                f"{name}-{claim}",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=claim, namespace=args.namespace,
                                                    labels=tier_labels(claim, **{TENANT_LABEL: args.tenant}),
                                                    annotations=await_annotations(args.skip_await)),
                spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                    storage_class_name=tier.storage_class, access_modes=[tier.access_mode],
                    resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": tier.size})),
                opts=self.child(),
            )
        self.register_outputs({"claims": list(self.claims)})


@dataclass(frozen=True)
class ModelStagingArgs:
    """Arguments of ModelStaging: the Job that downloads one pinned model revision into the tenant's
    model-artifacts claim, with a provenance record.

    Attributes:
        endpoint: the endpoint the model serves (names the Job).
        tenant: the tenant that owns the endpoint.
        namespace: the tenant's namespace.
        model_name: the served model name.
        source: where the model comes from (`hf://<org>/<repo>`).
        revision: the exact source revision (commit) to download.
        model_class: the model class (data/backend-disposition.yaml `modelClasses`), recorded in the provenance file.
        backend: the serving backend (`trtllm`, `vllm` or `sglang`), recorded in the provenance file.
        image: the image the Job runs (the endpoint's runtime image, which has `huggingface-cli`).
        service_account: the tenant workload ServiceAccount the Job runs as.
        credentials_secret: a Secret in the tenant namespace with the source's token (HF_TOKEN); None for public models.
        claim: the tenant's model-artifacts claim the Job writes into.
        skip_await: whether Pulumi skips waiting for the Job to complete.
        record: provenance facts beyond the model itself (sizing file, images, versions).
        source_access: how staging reaches the model source: direct, through a proxy or from a mirror.
        placement: the tenant's dedicated nodes, where it has them. Default: None.
    """

    endpoint: str
    tenant: str
    namespace: pulumi.Input[str]
    model_name: str
    source: str
    revision: str
    model_class: str
    backend: str
    image: str
    service_account: str
    credentials_secret: Optional[str]
    claim: k8s.core.v1.PersistentVolumeClaim
    skip_await: bool
    record: dict
    source_access: ModelStagingSettings
    placement: Optional[NodePlacement] = None


def staging_script(source: str, revision: str, target: str) -> str:
    """Download exactly `revision` of an hf:// source and write a provenance file with every file's sha256."""
    repo = source.split("://", 1)[1]
    return "\n".join([
        "set -euo pipefail",
        f'target="{target}"',
        'if [ -f "$target/.ncp-provenance.json" ]; then echo "already staged: $target"; exit 0; fi',
        f'huggingface-cli download "{repo}" --revision "{revision}" --local-dir "$target.partial"',
        'python3 - "$target.partial" <<\'PY\'',
        "import hashlib, json, os, sys",
        "root = sys.argv[1]",
        "files = {}",
        "for folder, _, names in os.walk(root):",
        "    for name in sorted(names):",
        "        path = os.path.join(folder, name)",
        "        digest = hashlib.sha256()",
        "        with open(path, 'rb') as handle:",
        "            for block in iter(lambda: handle.read(1 << 20), b''):",
        "                digest.update(block)",
        "        files[os.path.relpath(path, root)] = digest.hexdigest()",
        f"record = {{'source': {source!r}, 'revision': {revision!r}, 'files': files}}",
        "json.dump(record, open(os.path.join(root, '.ncp-provenance.json'), 'w'), indent=2, sort_keys=True)",
        "PY",
        'mv "$target.partial" "$target"',
    ])


class ModelStaging(Layer):
    """Stages the endpoint's model at its pinned revision onto the tenant's model-artifacts claim and records its
    provenance (a ConfigMap here, and .ncp-provenance.json with file digests beside the model)."""

    def __init__(self, name: str, args: ModelStagingArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("ModelStaging", name, opts)
        target = model_path(args.model_name, args.revision)
        annotations = {MODEL_SOURCE: args.source, MODEL_REVISION: args.revision}
        meta_labels = labels(STAGING_COMPONENT, args.endpoint, **{ENDPOINT_LABEL: args.endpoint,
                                                                 TENANT_LABEL: args.tenant})
        self.provenance = k8s.core.v1.ConfigMap(
            f"{name}-provenance",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{args.endpoint}-model-provenance", namespace=args.namespace,
                                                labels=meta_labels, annotations=annotations),
            data={"provenance.json": json.dumps({
                "model": args.model_name, "source": args.source, "revision": args.revision,
                "class": args.model_class, "backend": args.backend, "path": target, **args.record,
            }, indent=2, sort_keys=True)},
            opts=self.child(),
        )
        egress = model_source_access(f"{name}-egress", owner=args.endpoint, tenant=args.tenant,
                                     namespace=args.namespace, component=STAGING_COMPONENT,
                                     access=args.source_access, opts=self.child())
        # Pulumi waits for the download to finish before the endpoint is created (up to STAGING_TIMEOUT).
        staging_await = await_annotations(args.skip_await) or {
            "pulumi.com/timeoutSeconds": str(STAGING_TIMEOUT_SECONDS)}
        self.job = restricted_job(
            f"{name}-job", name=f"{args.endpoint}-model-staging", namespace=args.namespace, labels=meta_labels,
            annotations={**annotations, **staging_await},
            container=k8s.core.v1.ContainerArgs(
                name="stage",
                image=args.image,
                command=["/bin/bash", "-c", staging_script(args.source, args.revision, target)],
                env=staging_env(args),
                volume_mounts=[k8s.core.v1.VolumeMountArgs(name="models", mount_path=MODELS_MOUNT)],
                resources=container_resources("modelStaging"),
            ),
            volumes=[claim_volume("models", TenantStorage.MODEL_CLAIM)],
            service_account=args.service_account, backoff_limit=3, ttl_seconds=86400,
            placement=pod_placement(args.placement), opts=self.child(args.claim, egress),
        )
        self.model_path = target
        self.register_outputs({"job": f"{args.endpoint}-model-staging", "modelPath": target})


def staging_env(args: ModelStagingArgs) -> list[k8s.core.v1.EnvVarArgs]:
    """The staging container's environment: no telemetry, the route to the source, the token where the model needs
    one, and a writable Hugging Face home."""
    env = [k8s.core.v1.EnvVarArgs(name="HF_HUB_DISABLE_TELEMETRY", value="1")] + [
        k8s.core.v1.EnvVarArgs(name=key, value=value) for key, value in source_env(args.source_access).items()]
    if args.credentials_secret:
        env.append(k8s.core.v1.EnvVarArgs(name="HF_TOKEN", value_from=k8s.core.v1.EnvVarSourceArgs(
            secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=args.credentials_secret, key="HF_TOKEN"))))
    return env + [k8s.core.v1.EnvVarArgs(name="HF_HOME", value="/tmp/hf-home")]


@dataclass(frozen=True)
class ModelExpressArgs:
    """Arguments of ModelExpress: one tenant's model cache server, which that tenant's workers load through.

    Attributes:
        namespace: the tenant's namespace (the server has no authentication: it serves whoever reaches it, so only
            its own tenant's pods may; docs/decisions/0005-model-express-per-tenant.md).
        image: the ModelExpress server image (compatibility matrix `modelExpress`).
        port: the server's gRPC port. Unit: TCP port number.
        cache: the storage tier of the server's cache claim.
        skip_await: whether Pulumi skips waiting for the Deployment to become ready.
    """

    namespace: pulumi.Input[str]
    image: str
    port: int
    cache: StorageTier
    skip_await: bool


class ModelExpress(Layer):
    """A tenant's ModelExpress server (no published chart: a Deployment, Service and cache claim built from the pinned
    image) in the tenant's namespace, reached under that namespace's NetworkPolicies only."""

    NAME = MODEL_EXPRESS

    def __init__(self, name: str, args: ModelExpressArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("ModelExpress", name, opts)
        child = self.child()
        meta_labels = labels("model-express", self.NAME)
        selector = {"app.kubernetes.io/name": self.NAME}
        claim = k8s.core.v1.PersistentVolumeClaim(
            f"{name}-cache",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{self.NAME}-cache", namespace=args.namespace,
                                                labels=tier_labels("model-cache"),
                                                annotations=await_annotations(args.skip_await)),
            spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                storage_class_name=args.cache.storage_class, access_modes=["ReadWriteOnce"],
                resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": args.cache.size})),
            opts=child,
        )
        restricted_deployment(
            f"{name}-server", name=self.NAME, namespace=args.namespace, labels=meta_labels,
            pod=k8s.core.v1.PodSpecArgs(
                automount_service_account_token=False,
                # The serving class, as the tenant's picker: tenant namespaces admit no pod at the platform's
                # system class (their platform-priorities quota).
                priority_class_name=PRIORITY_SERVING,
                containers=[k8s.core.v1.ContainerArgs(
                    name="server", image=args.image,
                    ports=[k8s.core.v1.ContainerPortArgs(name="grpc", container_port=args.port)],
                    # The figures the plan counts against the tenant's quota.
                    resources=container_resources("modelExpress"),
                    env=[k8s.core.v1.EnvVarArgs(name="MODEL_EXPRESS_SERVER_PORT", value=str(args.port)),
                         k8s.core.v1.EnvVarArgs(name="MODEL_EXPRESS_CACHE_DIRECTORY", value="/cache"),
                         k8s.core.v1.EnvVarArgs(name="MX_METADATA_BACKEND", value="kubernetes")],
                    volume_mounts=[k8s.core.v1.VolumeMountArgs(name="cache", mount_path="/cache")],
                )],
                volumes=[claim_volume("cache", f"{self.NAME}-cache")],
            ),
            skip_await=args.skip_await, opts=self.child(claim),
        )
        k8s.core.v1.Service(
            f"{name}-service",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=self.NAME, namespace=args.namespace, labels=meta_labels),
            spec=k8s.core.v1.ServiceSpecArgs(selector=selector, ports=[k8s.core.v1.ServicePortArgs(
                name="grpc", port=args.port, target_port="grpc")]),
            opts=child,
        )
        self.url = pulumi.Output.from_input(args.namespace).apply(
            lambda ns: f"{self.NAME}.{ns}.svc.cluster.local:{args.port}")
        self.register_outputs({"url": self.url})
