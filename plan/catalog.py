"""The project's own data files: hardware profiles and the compatibility matrix."""
from functools import lru_cache
from pathlib import Path
from typing import Optional

import yaml
from pydantic import Field, ValidationError

from plan.errors import ConfigError, Problem, problems_from_validation
from plan.profile import HardwareProfile
from plan.strict import StrictModel

ROOT = Path(__file__).resolve().parent.parent
PROFILES_DIR = ROOT / "profiles"
MATRIX_FILE = ROOT / "data" / "compatibility-matrix.yaml"


class LocalDecision(StrictModel):
    """A partner-selected, non-NVIDIA choice recorded outside the base RA."""

    decision: str
    reason: str = Field(min_length=10)


class ChartPin(StrictModel):
    display_name: str
    layer: str
    chart: str
    repository: str = ""
    version: str
    namespace: str
    ra_matrix: str
    deviation: Optional[str] = None
    source: str
    images: dict[str, str] = Field(default_factory=dict)
    image_repository: Optional[str] = None
    crds: list[str] = Field(default_factory=list)
    prerequisites: list[str] = Field(default_factory=list, description="what the site must provide for this chart")
    local_decision: Optional[LocalDecision] = None

    @property
    def is_oci(self) -> bool:
        return self.chart.startswith("oci://")

    @property
    def chart_name(self) -> str:
        return self.chart.rstrip("/").rsplit("/", 1)[-1]


class KubernetesPins(StrictModel):
    default_version: str
    supported_versions: list[str]


class CompatibilityMatrix(StrictModel):
    schema_version: int
    kubernetes: KubernetesPins
    components: dict[str, ChartPin]

    def pin(self, component: str) -> ChartPin:
        try:
            return self.components[component]
        except KeyError:
            raise KeyError(f"{MATRIX_FILE.name} has no entry for component {component!r}") from None


def _read_yaml(path: Path):
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(str(path), [Problem(str(path), f"cannot be read: {exc}", "fix the YAML syntax")]) from exc


@lru_cache(maxsize=1)
def load_matrix() -> CompatibilityMatrix:
    try:
        return CompatibilityMatrix.model_validate(_read_yaml(MATRIX_FILE))
    except ValidationError as exc:
        raise ConfigError(str(MATRIX_FILE), problems_from_validation("", exc)) from None


def profile_names() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


@lru_cache(maxsize=None)
def load_profile(name: str) -> HardwareProfile:
    path = PROFILES_DIR / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(path)
    data = _read_yaml(path)
    try:
        profile = HardwareProfile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(str(path), problems_from_validation("", exc)) from None
    if profile.name != name:
        raise ConfigError(str(path), [Problem("name", f"is {profile.name!r} but the file is {name}.yaml",
                                              f"set name: {name}")])
    return profile


SIGNALS_FILE = ROOT / "data" / "telemetry-signals.yaml"


class MetricSource(StrictModel):
    source: str
    metrics: dict[str, str]
    workload_namespace_label: Optional[str] = None
    gpu_labels: list[str] = Field(default_factory=list)


@lru_cache(maxsize=1)
def load_signals() -> dict[str, MetricSource]:
    data = _read_yaml(SIGNALS_FILE)
    try:
        return {group: MetricSource.model_validate(body) for group, body in data.items()}
    except ValidationError as exc:
        raise ConfigError(str(SIGNALS_FILE), problems_from_validation("", exc)) from None
