"""Shared building blocks for components: standard labels, restricted Jobs, RBAC rules, registry credentials,
pinned Helm releases and the rails' per-namespace attachments."""
import base64
import json
from typing import Any, Mapping, Optional, Sequence, TypeVar

import pulumi
import pulumi_kubernetes as k8s

from ncp.plan.catalog import AccessRule, ChartPin
from ncp.plan.names import PART_OF_LABEL, PROJECT, STORAGE_TIER_LABEL, TENANT_KEY
from ncp.plan.pod_security import PSA_LEVELS
from ncp.plan.site_plan import NodePlacement, RailAttachment
from ncp.plan.tenant_pods import load_tenant_pods

PART_OF = PROJECT
TENANT_LABEL = TENANT_KEY
# PriorityClass names the baseline creates and workloads use.
PRIORITY_SYSTEM, PRIORITY_SERVING, PRIORITY_BATCH = "ncp-system", "ncp-serving", "ncp-batch"
T = TypeVar("T")


class ResourceError(pulumi.RunError):
    """Bad arguments given to a component, reported against it (`resource`, and its type and name in the message).

    The Node.js SDK's pulumi.ResourceError(message, resource) has no Python counterpart at the pinned SDK
    (pulumi/pulumi sdk/python/lib/pulumi/errors.py@v3.272.0 defines RunError and the InputProperty errors only).
    A RunError ends the program with its message and no traceback (sdk/python/cmd/pulumi-language-python-exec:234
    @v3.272.0: `except pulumi.RunError as e: pulumi.log.error(str(e))`)."""

    def __init__(self, message: str, resource: pulumi.Resource):
        super().__init__(message)
        self.resource = resource


class Layer(pulumi.ComponentResource):
    """A component of the RA stack. Dependencies given to the component (opts.depends_on) hold for every child:
    Pulumi does not pass a component's depends_on down to the resources it creates."""

    def __init__(self, type_name: str, name: str, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(f"{PROJECT}:layers:{type_name}", name, None, opts)
        self._title = f"{type_name} {name!r}"
        self._after = resource_list(opts.depends_on if opts is not None else None, f"{self._title} depends_on")

    def child(self, *depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
        """Options for a child: parented here, after the component's own dependencies and the ones given."""
        return pulumi.ResourceOptions(parent=self, depends_on=[*self._after, *depends_on])

    def refuse(self, problems: Sequence[str]) -> None:
        """Raise a ResourceError against this component naming every problem of its arguments, if there is one.
        Components call it before they create any child."""
        if problems:
            raise ResourceError(f"{self._title}: bad arguments: " + "; ".join(problems), self)


def resource_list(depends_on: Optional[pulumi.Input[Sequence[pulumi.Input[pulumi.Resource]] | pulumi.Resource]],
                  what: str) -> list[pulumi.Input[pulumi.Resource]]:
    """ResourceOptions.depends_on as a list: one resource, a list or tuple of them, or none. The program never
    passes an Output of resources; one would be a programming error, named here."""
    if depends_on is None:
        return []
    if isinstance(depends_on, pulumi.Resource):
        return [depends_on]
    if isinstance(depends_on, (list, tuple)):
        return list(depends_on)
    raise TypeError(f"{what}: expected a resource or a list of resources, got {type(depends_on).__name__}")


def plain_list(value: Optional[pulumi.Input[Sequence[pulumi.Input[T]]]], what: str) -> list[pulumi.Input[T]]:
    """A list-valued Args field the program itself filled (a list or tuple, or unset) as a list."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    raise TypeError(f"{what}: expected a list the program built, got {type(value).__name__}")


def required(value: Optional[T], what: str) -> T:
    """A value the plan guarantees wherever a component uses it (its validation refuses a config without it);
    its absence is a bug in the plan's rules, said plainly instead of an AttributeError deep in a component."""
    if value is None:
        raise RuntimeError(f"{what} is unset: the plan validated without it; a validation rule is missing")
    return value


def plain(value: object, kind: type[T], what: str) -> T:
    """An Args value the program itself built, as its class (not an Output or awaitable)."""
    if not isinstance(value, kind):
        raise TypeError(f"{what}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def at_least(name: str, value: int, minimum: int) -> list[str]:
    """The problem of a count below its minimum, or none."""
    return [] if value >= minimum else [f"{name} must be at least {minimum} (got {value})"]


def one_of(name: str, value: str, allowed: Sequence[str]) -> list[str]:
    """The problem of a value outside its allowed set, or none."""
    return [] if value in allowed else [f"{name} must be one of {', '.join(allowed)} (got {value!r})"]


def repeated(kind: str, names: Sequence[str]) -> list[str]:
    """One problem per name given more than once."""
    return [f"{kind} {name} is given twice" for name in sorted({n for n in names if names.count(n) > 1})]


def labels(component: str, name: Optional[str] = None, **extra: str) -> dict[str, str]:
    """Standard app.kubernetes.io labels every object the program creates carries."""
    result = {
        "app.kubernetes.io/name": name or component,
        "app.kubernetes.io/component": component,
        PART_OF_LABEL: PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
    }
    result.update(extra)
    return result


def tier_labels(tier: str, **extra: str) -> dict[str, str]:
    """Labels of an object on a storage tier (claims, ephemeral volumes): the tier names its storage class."""
    return labels("model-data", tier, **{STORAGE_TIER_LABEL: tier}, **extra)


def psa_labels(enforce: str) -> dict[str, str]:
    """Pod Security Admission: enforce the given level, warn and audit at restricted."""
    if enforce not in PSA_LEVELS:
        raise ValueError(f"unknown Pod Security level {enforce!r}")
    return {
        "pod-security.kubernetes.io/enforce": enforce,
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/audit": "restricted",
    }


NON_ROOT_ID = 10001


def restricted_pod() -> k8s.core.v1.PodSecurityContextArgs:
    """Pod security settings that pass Pod Security Admission `restricted`."""
    # Above 10000: no collision with users of the node's /etc/passwd (CIS 5.7, kube-score, checkov CKV_K8S_40).
    return k8s.core.v1.PodSecurityContextArgs(run_as_non_root=True, run_as_user=NON_ROOT_ID, run_as_group=NON_ROOT_ID,
                                              fs_group=NON_ROOT_ID, seccomp_profile=k8s.core.v1.SeccompProfileArgs(
                                                  type="RuntimeDefault"))


def restricted_container(read_only_root: bool = False) -> k8s.core.v1.SecurityContextArgs:
    return k8s.core.v1.SecurityContextArgs(allow_privilege_escalation=False,
                                           read_only_root_filesystem=read_only_root or None,
                                           capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]))


# A read-only root filesystem still needs somewhere to write scratch files (bash here-documents, Python caches,
# tool homes): an emptyDir at /tmp, with HOME pointing there.
SCRATCH_MOUNT, SCRATCH_SIZE = "/tmp", "2Gi"


def scratch(container: k8s.core.v1.ContainerArgs) -> tuple[k8s.core.v1.ContainerArgs, k8s.core.v1.VolumeArgs]:
    """The container with a read-only root filesystem, HOME and a writable emptyDir at /tmp; and that volume."""
    container.security_context = restricted_container(read_only_root=True)
    container.volume_mounts = [*plain_list(container.volume_mounts, "volume_mounts"),
                               k8s.core.v1.VolumeMountArgs(name="scratch", mount_path=SCRATCH_MOUNT)]
    home = k8s.core.v1.EnvVarArgs(name="HOME", value=SCRATCH_MOUNT)
    env = container.env
    container.env = env.apply(lambda values: [*values, home]) if isinstance(env, pulumi.Output) \
        else [*plain_list(env, "env"), home]
    resources = plain(container.resources or k8s.core.v1.ResourceRequirementsArgs(),
                      k8s.core.v1.ResourceRequirementsArgs, "resources")
    container.resources = k8s.core.v1.ResourceRequirementsArgs(
        requests={**plain(resources.requests or {}, dict, "requests"), "ephemeral-storage": "1Gi"},
        limits={**plain(resources.limits or {}, dict, "limits"), "ephemeral-storage": SCRATCH_SIZE})
    return container, scratch_volume()


def scratch_volume() -> k8s.core.v1.VolumeArgs:
    """The emptyDir `scratch` mounts at /tmp (one per pod, shared by its containers)."""
    return k8s.core.v1.VolumeArgs(name="scratch", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(
        size_limit=SCRATCH_SIZE))


# Suspended Jobs run on demand; Pulumi must not wait for them to complete. Test clusters without kubelets or
# provisioners (components.skipAwait) skip the waits on claims and staging too.
ON_DEMAND = {"pulumi.com/skipAwait": "true"}


def await_annotations(skip_await: bool) -> dict[str, str]:
    return dict(ON_DEMAND) if skip_await else {}


def container_resources(container: str, gpus: Optional[dict[str, str]] = None) -> k8s.core.v1.ResourceRequirementsArgs:
    """A tenant-namespace container's requests and limits as data/tenant-pods.yaml gives them (the plan counts the
    same figures against the tenant's quota), with the GPUs it takes."""
    resources = load_tenant_pods().container(container)
    return k8s.core.v1.ResourceRequirementsArgs(requests={**resources.requests.model_dump(), **(gpus or {})},
                                                limits={**resources.limits.model_dump(), **(gpus or {})})


def claim_volume(name: str, claim: str, read_only: bool = False) -> k8s.core.v1.VolumeArgs:
    return k8s.core.v1.VolumeArgs(name=name, persistent_volume_claim=k8s.core.v1.PersistentVolumeClaimVolumeSourceArgs(
        claim_name=claim, read_only=read_only or None))


def pod_placement(placement: Optional[NodePlacement], **extra: Any) -> dict[str, Any]:
    """PodSpecArgs keywords that place a pod on the tenant's dedicated nodes (when it has them), merged with a
    workload's own selector and tolerations (`extra`: node_selector, tolerations, scheduler_name)."""
    keywords = dict(extra)
    if placement is not None:
        keywords["node_selector"] = {**(extra.get("node_selector") or {}), **placement.node_selector}
        own = list(extra.get("tolerations") or [])
        keywords["tolerations"] = own + [t for t in placement.tolerations if t not in own]
    return keywords


def restricted_job(
    resource_name: str,
    *,
    name: str,
    namespace: pulumi.Input[str],
    labels: dict[str, str],
    annotations: dict[str, str],
    container: k8s.core.v1.ContainerArgs,
    volumes: list[k8s.core.v1.VolumeArgs],
    service_account: str,
    opts: pulumi.ResourceOptions,
    suspend: bool = False,
    backoff_limit: int = 0,
    ttl_seconds: Optional[int] = None,
    automount_token: bool = False,
    pull_secret: Optional[str] = None,
    placement: Optional[Mapping[str, Any]] = None,
) -> k8s.batch.v1.Job:
    """A batch Job whose pod passes PSA `restricted`, with a read-only root filesystem (scratch space at /tmp),
    at the batch priority. Suspended Jobs are run on demand (kubectl patch job ... -p '{"spec":{"suspend":false}}'),
    so Pulumi does not wait for them. `placement`: PodSpecArgs keywords for a GPU Job (scheduler_name,
    node_selector, tolerations)."""
    container, scratch_volume = scratch(container)
    return k8s.batch.v1.Job(
        resource_name,
        metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=namespace, labels=labels,
                                            annotations={**annotations, **(ON_DEMAND if suspend else {})}),
        spec=k8s.batch.v1.JobSpecArgs(
            backoff_limit=backoff_limit,
            suspend=suspend or None,
            ttl_seconds_after_finished=ttl_seconds,
            template=k8s.core.v1.PodTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                spec=k8s.core.v1.PodSpecArgs(
                    restart_policy="Never",
                    service_account_name=service_account,
                    automount_service_account_token=automount_token,
                    priority_class_name=PRIORITY_BATCH,
                    security_context=restricted_pod(),
                    containers=[container],
                    volumes=[*volumes, scratch_volume],
                    image_pull_secrets=[k8s.core.v1.LocalObjectReferenceArgs(name=pull_secret)]
                    if pull_secret else None,
                    **(placement or {}),
                ),
            ),
        ),
        opts=opts,
    )


def policy_rules(rules: Sequence[AccessRule]) -> list[k8s.rbac.v1.PolicyRuleArgs]:
    """RBAC PolicyRules from the data files' access rules."""
    result = []
    for rule in rules:
        if rule.non_resource_urls:
            result.append(k8s.rbac.v1.PolicyRuleArgs(non_resource_urls=rule.non_resource_urls, verbs=rule.verbs))
        else:
            result.append(k8s.rbac.v1.PolicyRuleArgs(api_groups=rule.api_groups, resources=rule.resources,
                                                     verbs=rule.verbs))
    return result


NGC_REGISTRY = "nvcr.io"
NGC_USERNAME = "$oauthtoken"  # NGC's fixed username for API-key logins


def docker_config_json(api_key: str) -> str:
    auth = base64.b64encode(f"{NGC_USERNAME}:{api_key}".encode()).decode()
    return json.dumps({"auths": {NGC_REGISTRY: {"username": NGC_USERNAME, "password": api_key, "auth": auth}}})


def ngc_pull_secret(resource_name: str, metadata: k8s.meta.v1.ObjectMetaArgs, api_key: pulumi.Output[str],
                    opts: pulumi.ResourceOptions) -> k8s.core.v1.Secret:
    """An nvcr.io image pull secret made from the NGC API key (kept secret in state)."""
    config: pulumi.Output[str] = pulumi.Output.secret(api_key.apply(docker_config_json))
    return k8s.core.v1.Secret(resource_name, metadata=metadata, type="kubernetes.io/dockerconfigjson",
                              string_data={".dockerconfigjson": config}, opts=opts)


def restricted_deployment(
    resource_name: str,
    *,
    name: str,
    namespace: pulumi.Input[str],
    labels: dict[str, str],
    pod: k8s.core.v1.PodSpecArgs,
    skip_await: bool,
    opts: pulumi.ResourceOptions,
) -> k8s.apps.v1.Deployment:
    """One replica of a service pod that passes PSA `restricted`, its containers on a read-only root filesystem
    with scratch space at /tmp; selected by its app.kubernetes.io/name label."""
    pod.security_context = restricted_pod()
    pod.containers = [scratch(plain(container, k8s.core.v1.ContainerArgs, "containers"))[0]
                      for container in plain_list(pod.containers, "containers")]
    pod.volumes = [*plain_list(pod.volumes, "volumes"), scratch_volume()]
    return k8s.apps.v1.Deployment(
        resource_name,
        metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=namespace, labels=labels,
                                            annotations=await_annotations(skip_await)),
        spec=k8s.apps.v1.DeploymentSpecArgs(
            replicas=1,
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels={"app.kubernetes.io/name": labels[
                "app.kubernetes.io/name"]}),
            template=k8s.core.v1.PodTemplateSpecArgs(metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels), spec=pod),
        ),
        opts=opts,
    )


def helm_release(
    name: str,
    pin: ChartPin,
    values: pulumi.Input[Mapping[str, Any]],
    namespace: pulumi.Input[str],
    parent: Layer,
    skip_await: bool,
    depends_on: Optional[Sequence[pulumi.Resource]] = None,
) -> k8s.helm.v3.Release:
    """A Helm release of exactly the chart and version the compatibility matrix pins; `name` is also the Helm
    release name (KAI expects release and namespace both `kai-scheduler`)."""
    repository_opts = k8s.helm.v3.RepositoryOptsArgs(repo=pin.repository) if pin.repository else None
    return k8s.helm.v3.Release(
        name,
        name=name,
        chart=pin.chart,
        version=pin.version,
        namespace=namespace,
        repository_opts=repository_opts,
        values=values,
        create_namespace=False,
        skip_await=skip_await,
        opts=parent.child(*(depends_on or [])),
    )


def network_attachment(resource_name: str, attachment: RailAttachment, namespace: pulumi.Input[str],
                       opts: pulumi.ResourceOptions) -> k8s.apiextensions.CustomResource:
    """A rail's NetworkAttachmentDefinition in `namespace`, for the pods of that namespace only (they name it without a
    namespace; admission refuses references into another namespace)."""
    return k8s.apiextensions.CustomResource(
        resource_name,
        api_version="k8s.cni.cncf.io/v1",
        kind="NetworkAttachmentDefinition",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=attachment.name, namespace=namespace,
                                            labels=labels("network-enablement", attachment.name),
                                            annotations=dict(attachment.annotations) or None),
        spec={"config": attachment.config},
        opts=opts,
    )
