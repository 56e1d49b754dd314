"""Shared building blocks for components: standard labels and pinned Helm releases."""
from typing import Any, Mapping, Optional, Sequence

import pulumi
import pulumi_kubernetes as k8s

from plan.catalog import ChartPin

PART_OF = "ncp-inference"
TENANT_LABEL = "ncp-inference.io/tenant"
LAYER_LABEL = "ncp-inference.io/layer"
PSA_LEVELS = ("privileged", "baseline", "restricted")


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


def helm_release(
    name: str,
    pin: ChartPin,
    values: Mapping[str, Any],
    namespace: pulumi.Input[str],
    parent: pulumi.Resource,
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
        values=dict(values),
        create_namespace=False,
        skip_await=skip_await,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on or [])),
    )
