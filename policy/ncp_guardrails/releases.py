"""How every policy identifies a Helm release: by its chart's name, whatever source the chart came from.

The program installs a matrix chart from its Helm repository (chart `gpu-operator`), its OCI registry (chart
`oci://ghcr.io/ai-dynamo/grove/grove-charts`) or, on a site that sets `chartMirror`, from a directory of the mirror
(chart `./<mirror>/grove-charts`). Only the last path segment, the chart's name, is the same in all three, so that is
what a release is known by here. Whether the source is the one allowed is charts-pinned's question, never an
identification's: comparing whole chart strings would miss every mirrored release."""
from typing import Optional

from ncp_guardrails.data import pins
from ncp_guardrails.kube import get, releases


def chart_name(chart: str) -> str:
    """`gpu-operator`, `oci://host/path/gpu-operator` and `./mirror/gpu-operator` all name the chart gpu-operator."""
    return str(chart or "").rstrip("/").rsplit("/", 1)[-1]


def component_of(props) -> Optional[str]:
    """The compatibility-matrix key (e.g. gpuOperator) of the chart a release installs; None for a chart the matrix
    does not pin."""
    wanted = chart_name(get(props, "chart", default=""))
    keys = [key for key, pin in pins().items() if chart_name(pin["chart"]) == wanted]
    if len(keys) > 1:
        raise ValueError(f"pins.yaml: components {keys} share the chart name {wanted!r}; releases of it cannot be told "
                         "apart (give one of them a distinct chart in data/compatibility-matrix.yaml)")
    return keys[0] if keys else None


def identified(resources) -> list:
    """(matrix key or None, release) for every Helm release of the stack."""
    return [(component_of(release.props), release) for release in releases(resources)]


def deployed(resources) -> dict:
    """Matrix key -> the release installing that component."""
    return {key: release for key, release in identified(resources) if key is not None}
