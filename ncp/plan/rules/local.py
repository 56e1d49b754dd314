"""Rules over the settings of a test cluster a site's stack file never holds (ncp/plan/local_overlay.py): no
stand-in charts or skipAwait in a reviewed environment, a chart mirror where the site is air-gapped, and a mirror that
holds every deployed chart at its pinned version."""
from typing import Any, Mapping, Optional

import yaml

from ncp.plan.catalog import ROOT
from ncp.plan.errors import Problem
from ncp.plan.local_overlay import REVIEWED_ENVIRONMENTS, USE_OVERLAY, LocalOverlay, is_stand_in_mirror
from ncp.plan.names import PROJECT


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
