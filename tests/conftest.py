from pathlib import Path

import pytest

import ncp.plan.sources
from ncp.readmodel.recorder import run_stack_file
from tests.evidence_keys import evidence_keys  # noqa: F401 - the site signing key fixture of evidence tests

SHARED_UPSTREAM = Path(__file__).resolve().parents[2] / "shared" / "upstream"
# The example stacks a site copies and edits; tests read frozen copies of them (tests/fixtures/stacks/README.md).
EXAMPLE_STACKS = ("lab", "prod", "gb300", "vision")
FROZEN_STACKS = Path(__file__).parent / "fixtures" / "stacks"
PROJECT_STACK_FILE = ncp.plan.sources.stack_file


def frozen_stack_file(stack: str) -> Path:
    """Pulumi.<stack>.yaml for the tests: an example name resolves to its frozen copy, any other to the project."""
    return FROZEN_STACKS / f"Pulumi.{stack}.yaml" if stack in EXAMPLE_STACKS else PROJECT_STACK_FILE(stack)


def pytest_configure(config):
    """Before collection, so module-level reads and fixtures of every scope see the frozen copies too."""
    ncp.plan.sources.stack_file = frozen_stack_file


def pytest_unconfigure(config):
    ncp.plan.sources.stack_file = PROJECT_STACK_FILE


@pytest.fixture()
def example_stacks(monkeypatch):
    """For tests that validate the examples as examples (tests/test_examples.py): the project's own stack files."""
    monkeypatch.setattr(ncp.plan.sources, "stack_file", PROJECT_STACK_FILE)


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
