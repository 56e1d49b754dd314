"""Shared building blocks for components: standard labels and pinned Helm releases."""
from typing import Any, Mapping, Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s

from plan.catalog import ChartPin

PART_OF = "ncp-inference"
TENANT_LABEL = "ncp-inference.io/tenant"
# Kubernetes sets it on every namespace (since 1.22): how a NetworkPolicy selects a namespace by name.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
POD_SECURITY_REASON = "ncp-inference.io/pod-security-reason"  # why a tenant namespace is not restricted
LAYER_LABEL = "ncp-inference.io/layer"
PSA_LEVELS = ("privileged", "baseline", "restricted")
# PriorityClass names the baseline creates and workloads use.
PRIORITY_SYSTEM, PRIORITY_SERVING, PRIORITY_BATCH = "ncp-system", "ncp-serving", "ncp-batch"


class Layer(pulumi.ComponentResource):
    """A component of the RA stack. Dependencies given to the component (opts.depends_on) hold for every child:
    Pulumi does not pass a component's depends_on down to the resources it creates."""

    def __init__(self, type_name: str, name: str, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(f"ncp-inference:layers:{type_name}", name, None, opts)
        depends_on = opts.depends_on if opts is not None else None
        if depends_on is not None and not isinstance(depends_on, (list, tuple)):
            depends_on = [depends_on]
        self._after = list(depends_on or [])

    def child(self, *depends_on: pulumi.Resource) -> pulumi.ResourceOptions:
        """Options for a child: parented here, after the component's own dependencies and the ones given."""
        return pulumi.ResourceOptions(parent=self, depends_on=[*self._after, *depends_on])


def labels(component: str, name: Optional[str] = None, **extra: str) -> dict[str, str]:
    """Standard app.kubernetes.io labels every object the program creates carries."""
    result = {
        "app.kubernetes.io/name": name or component,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
    }
    result.update(extra)
    return result


def psa_labels(enforce: str) -> dict[str, str]:
    """Pod Security Admission: enforce the given level, warn and audit at restricted."""
    if enforce not in PSA_LEVELS:
        raise ValueError(f"unknown Pod Security level {enforce!r}")
    return {
        "pod-security.kubernetes.io/enforce": enforce,
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/audit": "restricted",
    }


def restricted_pod() -> k8s.core.v1.PodSecurityContextArgs:
    """Pod security settings that pass Pod Security Admission `restricted`."""
    return k8s.core.v1.PodSecurityContextArgs(run_as_non_root=True, run_as_user=1000, run_as_group=1000,
                                              fs_group=1000, seccomp_profile=k8s.core.v1.SeccompProfileArgs(
                                                  type="RuntimeDefault"))


def restricted_container() -> k8s.core.v1.SecurityContextArgs:
    return k8s.core.v1.SecurityContextArgs(allow_privilege_escalation=False,
                                           capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]))


# Suspended Jobs run on demand; Pulumi must not wait for them to complete. Test clusters without kubelets or
# provisioners (components.skipAwait) skip the waits on claims and staging too.
ON_DEMAND = {"pulumi.com/skipAwait": "true"}


def await_annotations(skip_await: bool) -> dict[str, str]:
    return dict(ON_DEMAND) if skip_await else {}


def claim_volume(name: str, claim: str, read_only: bool = False) -> k8s.core.v1.VolumeArgs:
    return k8s.core.v1.VolumeArgs(name=name, persistent_volume_claim=k8s.core.v1.PersistentVolumeClaimVolumeSourceArgs(
        claim_name=claim, read_only=read_only or None))


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
    placement: Optional[Mapping[str, Any]] = None,
) -> k8s.batch.v1.Job:
    """A batch Job whose pod passes PSA `restricted` and runs at the batch priority. Suspended Jobs are run on
    demand (kubectl patch job ... -p '{"spec":{"suspend":false}}'), so Pulumi does not wait for them. `placement`:
    PodSpecArgs keywords for a GPU Job (scheduler_name, node_selector, tolerations)."""
    container.security_context = restricted_container()
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
                    volumes=volumes,
                    **(placement or {}),
                ),
            ),
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
