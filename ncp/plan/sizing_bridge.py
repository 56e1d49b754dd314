"""Read an endpoint's AIConfigurator sizing file into worker groups, and check it was made for this endpoint."""
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ncp.plan.catalog import ROOT
from ncp.plan.endpoint_plan import WorkerGroup
from ncp.plan.profile import HardwareProfile
from ncp.plan.serving import Endpoint
from ncp.plan.sizing_file import Mode, SizingFileError, load_sizing  # the AIConfigurator runner's own file format
from ncp.cli_exit import BadInput


class SizingMismatch(BadInput):
    def __init__(self, message: str, fix: str):
        super().__init__(message)
        self.message, self.fix = message, fix


@dataclass(frozen=True)
class Layout:
    mode: Mode
    workers: list[WorkerGroup]
    estimate: dict


def sizing_command(endpoint: Endpoint, profile: HardwareProfile, gpus: int, out: Optional[str] = None) -> str:
    slo = endpoint.slo
    return (f"ncp sizing --model {endpoint.model.name} --system {profile.aiconfigurator_system} "
            f"--backend {endpoint.backend} --total-gpus {gpus} --isl {slo.isl} --osl {slo.osl} "
            f"--ttft {slo.ttft_ms:g} --tpot {slo.tpot_ms:g} --out {out or endpoint.sizing}")


def _mismatch_fix(endpoint: Endpoint, profile: HardwareProfile, gpus: int) -> str:
    """Name the likely cause first: a file named after another endpoint is shared by mistake (re-sizing into it
    would overwrite that endpoint's layout); a file named after this endpoint is stale."""
    own = Path(endpoint.sizing).with_name(f"{endpoint.name}.yaml").as_posix()
    if own != Path(endpoint.sizing).as_posix():
        return (f"{endpoint.sizing} belongs to another endpoint; size this one into its own file and point "
                f"`sizing` at it: {sizing_command(endpoint, profile, gpus, own)}")
    return f"the endpoint changed since it was sized; re-size it: {sizing_command(endpoint, profile, gpus)}"


def read_layout(path: Path, endpoint: Endpoint, profile: HardwareProfile) -> Layout:
    fix = sizing_command(endpoint, profile, profile.gpu.per_node)
    if profile.aiconfigurator_system is None:
        raise SizingMismatch(f"profile {profile.name} has no AIConfigurator system to size for",
                             "record aiconfiguratorSystem in the profile")
    try:
        result = load_sizing(path)
    except SizingFileError as error:
        raise SizingMismatch(str(error), fix) from None
    request = result.request
    expected = {"model": endpoint.model.name, "system": profile.aiconfigurator_system, "backend": endpoint.backend,
                "isl": endpoint.slo.isl, "osl": endpoint.slo.osl, "ttft_ms": endpoint.slo.ttft_ms,
                "tpot_ms": endpoint.slo.tpot_ms}
    differences = [f"{key} {getattr(request, key)!r} != {value!r}" for key, value in expected.items()
                   if getattr(request, key) != value]
    if differences:
        raise SizingMismatch(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} was sized for a "
                             f"different endpoint ({'; '.join(differences)})",
                             _mismatch_fix(endpoint, profile, request.total_gpus))
    workers = [WorkerGroup(role=role, **group.model_dump()) for role, group in result.groups().items()]
    return Layout(mode=result.mode, workers=workers,
                  estimate=result.estimate_summary())
