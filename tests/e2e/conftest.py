"""Fixtures of the real-engine e2e: the engine environment, a local control plane with the real upstream CRDs and a
simulated node pool (scheduler + KWOK), and a throwaway copy of the project."""
from pathlib import Path

import pytest

from ncp.plan.catalog import integration_points
from tests.e2e.cluster import UPSTREAM, EngineMissing, engine_environment, start_control_plane, stop_control_plane
from tests.e2e.simulated import kwok_logs_config
from tools.project_copy import copy_project

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def engine_env() -> dict:
    try:
        return engine_environment()
    except EngineMissing as missing:
        pytest.fail(str(missing))


@pytest.fixture(scope="module")
def cluster(engine_env, tmp_path_factory):
    """(api, env): a fresh control plane per test module (ports from NCP_E2E_* in the environment)."""
    if not UPSTREAM.is_dir():
        pytest.skip(f"{UPSTREAM} is absent: the e2e installs the real upstream CRDs from there")
    # Pods naming KAI's scheduler are placed by the real kube-scheduler's second profile (KAI is not running).
    state = tmp_path_factory.mktemp("control-plane")
    env = {**engine_env, "NCP_E2E_STATE": str(state),
           "NCP_E2E_SCHEDULER_NAMES": integration_points().kai.scheduler_name,
           "NCP_E2E_KWOK_CONFIG": str(kwok_logs_config(state / "kwok"))}
    try:
        yield start_control_plane(env)
    finally:
        stop_control_plane(env)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A copy of the project (Pulumi writes the stack's encryption salt into its stack file), sharing .venv."""
    copy = tmp_path_factory.mktemp("project") / "ncp-inference"
    return copy_project(copy)
