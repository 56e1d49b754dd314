"""Settings of a test cluster that a site's stack file never holds.

The local control plane (tools/e2e/control-plane.sh: an API server with no kubelets and no route to chart repositories)
needs three settings no real site wants: charts from the stand-in charts (tests/e2e/charts, one ConfigMap each),
no waiting for pods that never run, and NVSentinel's datastore credentials from an existing Secret (the engine built
offline has no pulumi-random provider). They come from an overlay file named by $NCP_LOCAL_OVERLAY (the control
plane's is tools/e2e/local-control-plane.yaml; `control-plane.sh env` exports it), merged over the stack's config.
A stack file in staging or prod that holds the stand-ins or skipAwait itself is refused, and an air-gapped site
must name a chart mirror of the real charts.
"""
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import yaml

from ncp.plan.catalog import ROOT
from ncp.plan.errors import Problem, manual_edit
from ncp.plan.names import STAND_IN_CHART_LABEL

OVERLAY_ENV = "NCP_LOCAL_OVERLAY"
CONTROL_PLANE_OVERLAY = "tools/e2e/local-control-plane.yaml"
# The keys an overlay may set (config paths under `components`): nothing a site decides.
OVERLAY_KEYS = {("chartMirror",), ("skipAwait",), ("health", "datastoreSecret")}
REVIEWED_ENVIRONMENTS = ("staging", "prod")
USE_OVERLAY = f"the local control plane sets it from its overlay (export {OVERLAY_ENV}={CONTROL_PLANE_OVERLAY})"


@dataclass(frozen=True)
class LocalOverlay:
    path: str
    components: dict


def _leaves(value: Any, prefix: tuple = ()) -> list[tuple]:
    if isinstance(value, dict) and value:
        return [leaf for key, child in value.items() for leaf in _leaves(child, (*prefix, str(key)))]
    return [prefix]


def read_overlay(source: str) -> tuple[Optional[LocalOverlay], list[Problem]]:
    """The overlay $NCP_LOCAL_OVERLAY names (None when unset), or the problems that make it unusable."""
    named = os.environ.get(OVERLAY_ENV)
    if not named:
        return None, []
    path = Path(named) if Path(named).is_absolute() else ROOT / named
    where = f"{OVERLAY_ENV}={named}"
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        return None, [Problem(where, f"cannot be read as YAML: {error}",
                              f"point it at a readable overlay: export {OVERLAY_ENV}={CONTROL_PLANE_OVERLAY} (or "
                              f"unset {OVERLAY_ENV})", rule="input.local-overlay")]
    components = (document or {}).get("components") if isinstance(document, dict) else None
    if not isinstance(components, dict) or set(document) != {"components"}:
        return None, [Problem(where, "must be a mapping with one key, `components`",
                              manual_edit(named, "(top level)", f"keep only `components:`, as {CONTROL_PLANE_OVERLAY} "
                                          "does"), rule="input.local-overlay")]
    unknown = [".".join(leaf) for leaf in _leaves(components) if leaf not in OVERLAY_KEYS]
    if unknown:
        allowed = ", ".join("components." + ".".join(key) for key in sorted(OVERLAY_KEYS))
        return None, [Problem(f"{where}: components.{key}", "is not a local control plane setting",
                              manual_edit(named, f"components.{key}", f"remove it: site settings belong in "
                                          f"{source}; an overlay sets only {allowed}"),
                                          rule="input.local-overlay") for key in unknown]
    return LocalOverlay(named, components), []


def merged(raw: Mapping[str, Any], overlay: Optional[LocalOverlay]) -> dict[str, Any]:
    """The stack's config with the overlay's settings over it."""
    if overlay is None:
        return dict(raw)
    components = dict(raw.get("components") or {})
    for key, value in overlay.components.items():
        base = components.get(key)
        components[key] = {**base, **value} if isinstance(base, dict) and isinstance(value, dict) else value
    return {**raw, "components": components}


def is_stand_in_mirror(mirror: str) -> bool:
    """Whether a chart mirror holds the e2e stand-in charts (their templates carry STAND_IN_CHART_LABEL)."""
    directory = ROOT / mirror
    return directory.is_dir() and any(STAND_IN_CHART_LABEL in template.read_text(errors="replace")
                                      for template in directory.glob("*/templates/*.yaml"))


