from pathlib import Path

import pytest

from offline.recorder import run_stack_file

SHARED_UPSTREAM = Path(__file__).resolve().parents[2] / "shared" / "upstream"


@pytest.fixture(scope="session")
def lab():
    return run_stack_file("lab")


@pytest.fixture(scope="session")
def prod():
    return run_stack_file("prod")


@pytest.fixture(scope="session")
def upstream() -> Path:
    if not SHARED_UPSTREAM.is_dir():
        pytest.skip(f"{SHARED_UPSTREAM} is absent: upstream chart values and CRD schemas are not available here")
    return SHARED_UPSTREAM
