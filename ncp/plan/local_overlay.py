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
from ncp.plan.names import PROJECT, STAND_IN_CHART_LABEL

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
                              f"unset {OVERLAY_ENV})")]
    components = (document or {}).get("components") if isinstance(document, dict) else None
    if not isinstance(components, dict) or set(document) != {"components"}:
        return None, [Problem(where, "must be a mapping with one key, `components`",
                              manual_edit(named, "(top level)", f"keep only `components:`, as {CONTROL_PLANE_OVERLAY} "
                                          "does"))]
    unknown = [".".join(leaf) for leaf in _leaves(components) if leaf not in OVERLAY_KEYS]
    if unknown:
        allowed = ", ".join("components." + ".".join(key) for key in sorted(OVERLAY_KEYS))
        return None, [Problem(f"{where}: components.{key}", "is not a local control plane setting",
                              manual_edit(named, f"components.{key}", f"remove it: site settings belong in "
                                          f"{source}; an overlay sets only {allowed}")) for key in unknown]
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


def _mapping(value: Any) -> dict:
    """A config section as written, or {} where it is absent or not a mapping (the schema reports that)."""
    return value if isinstance(value, dict) else {}


def _rm(key: str) -> str:
    return f"pulumi config rm --path '{PROJECT}:components.{key}'"


def local_setting_problems(raw: Mapping[str, Any], overlay: Optional[LocalOverlay]) -> list[Problem]:
    """What the stack file itself must not hold, and what an air-gapped site must: checked on the stack's own
    config, before the overlay is merged (the overlay is the one place stand-ins and skipAwait may come from)."""
    site, components = _mapping(raw.get("site")), _mapping(raw.get("components"))
    environment = site.get("environment")
    mirror = components.get("chartMirror")
    problems = []
    if environment in REVIEWED_ENVIRONMENTS and components.get("skipAwait") is True:
        problems.append(Problem(f"{PROJECT}:components.skipAwait",
                                f"is refused in {environment}: a site waits for every release to become ready",
                                f"{_rm('skipAwait')}  ({USE_OVERLAY})"))
    stand_ins = isinstance(mirror, str) and is_stand_in_mirror(mirror)
    if stand_ins and environment in REVIEWED_ENVIRONMENTS:
        problems.append(Problem(f"{PROJECT}:components.chartMirror",
                                f"{mirror} holds the e2e stand-in charts (one ConfigMap each), refused in "
                                f"{environment}", f"{_rm('chartMirror')}  ({USE_OVERLAY}; an air-gapped site "
                                "points it at the real charts: ncp mirror)"))
    elif isinstance(mirror, str) and not (ROOT / mirror).is_dir():
        problems.append(Problem(f"{PROJECT}:components.chartMirror", f"{mirror} is not a directory of the project",
                                "unpack the pinned charts there (ncp mirror --stack <site> prints the "
                                "helm pull commands) or " + _rm("chartMirror")))
    staging = _mapping(_mapping(components.get("serving")).get("modelStaging"))
    if staging.get("airGapped") is True and overlay is None:
        if mirror is None:
            problems.append(Problem(f"{PROJECT}:components.chartMirror",
                                    "is required on an air-gapped site (serving.modelStaging.airGapped): the charts "
                                    "cannot come from public registries",
                                    "build the mirror on a connected machine (ncp mirror --stack "
                                    "<site>), then pulumi config set --path "
                                    f"'{PROJECT}:components.chartMirror' <project directory>"))
        elif stand_ins and environment not in REVIEWED_ENVIRONMENTS:
            problems.append(Problem(f"{PROJECT}:components.chartMirror",
                                    f"{mirror} holds stand-in charts, not a mirror of the pinned charts",
                                    "build the mirror: ncp mirror --stack <site>"))
    return problems


def mirror_problems(mirror: Optional[str], charts: list[tuple[str, str]]) -> list[Problem]:
    """A chart mirror holds each deployed chart (name, pinned version) unpacked: <mirror>/<name>/Chart.yaml at that
    version, or Helm installs something else (or nothing) from it."""
    if mirror is None or not (ROOT / mirror).is_dir():
        return []  # no mirror, or reported by local_setting_problems
    problems = []
    for name, version in charts:
        chart_file = ROOT / mirror / name / "Chart.yaml"
        try:
            found = (yaml.safe_load(chart_file.read_text()) or {}).get("version") if chart_file.is_file() else None
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            found = "unreadable"
        if found != version:
            held = f"holds {name} {found}" if found else f"has no {name}/Chart.yaml"
            problems.append(Problem(f"{PROJECT}:components.chartMirror",
                                    f"{mirror} {held}; the matrix pins {name} {version}",
                                    f"pull it into the mirror: helm pull <{name} source> --version {version} --untar "
                                    f"--untardir {mirror} (ncp mirror --stack <site> --script "
                                    "mirror.sh writes every command)"))
    return problems
