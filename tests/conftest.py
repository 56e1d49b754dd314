import os
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


# scripts/test.sh runs the tests that need no engine while tools/e2e/bootstrap.sh still builds it (cold CI: the two
# overlap). In that run the engine is hidden, so a test that asks for it fails here instead of passing on a warm cache
# or skipping on a cold one: such a module declares `pytestmark = pytest.mark.engine` (tests/e2e/ is marked as a whole).
ENGINE_HIDDEN_ENV = "NCP_TESTS_ENGINE_HIDDEN"
E2E_DIR = Path(__file__).parent / "e2e"
ENGINE_MISSING_SIGNS = ("bootstrap.sh", "not bootstrapped", "not built")


def pytest_configure(config):
    """Before collection, so module-level reads and fixtures of every scope see the frozen copies too."""
    ncp.plan.sources.stack_file = frozen_stack_file
    if os.environ.get(ENGINE_HIDDEN_ENV):
        os.environ["NCP_ENGINE_CACHE"] = str(Path(config.rootpath) / ".engine-hidden-while-it-builds")


def pytest_unconfigure(config):
    ncp.plan.sources.stack_file = PROJECT_STACK_FILE


def pytest_collection_modifyitems(config, items):
    for item in items:
        if E2E_DIR in Path(item.fspath).parents:
            item.add_marker(pytest.mark.engine)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With the engine hidden, a skip for want of the engine is a misfiled test: fail it, naming the fix."""
    outcome = yield
    report = outcome.get_result()
    if not (os.environ.get(ENGINE_HIDDEN_ENV) and report.skipped and isinstance(report.longrepr, tuple)):
        return
    reason = str(report.longrepr[2])
    if any(sign in reason for sign in ENGINE_MISSING_SIGNS):
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} needs the offline engine ({reason.splitlines()[0]}) but is not marked: "
                           f"add `pytestmark = pytest.mark.engine` to its module so scripts/test.sh runs it after "
                           f"tools/e2e/bootstrap.sh")


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
